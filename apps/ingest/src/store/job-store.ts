import { addJobOnce, type BridgeQueues, type JobSpec, storedJobSpec } from '@gk/queue';
import { describeRedisError, type Logger, type ReadinessCheck, withTimeout } from '@gk/runtime';
import type { Registry } from 'prom-client';
import { createSpoolMetrics, type SpoolMetrics } from './metrics.js';
import { SpoolRelay } from './relay.js';
import { type Spool, SpoolFullError } from './spool.js';

export interface StoreResult {
  /** `spooled`: on local disk, fsync'd; the relay moves it to its queue once Redis answers. */
  outcome: 'accepted' | 'duplicate' | 'spooled';
  jobId: string;
}

/** The webhook could store nothing durably (neither Redis nor the spool took it): answer 503. */
export class StoreUnavailableError extends Error {
  override name = 'StoreUnavailableError';
  constructor(
    message: string,
    readonly reason: 'redis' | 'spool_full' | 'spool_error',
  ) {
    super(message);
  }
}

export interface JobStoreOptions {
  queues: BridgeQueues;
  /** null: no spool (INGEST_SPOOL_ENABLED=false); a webhook Redis does not store is answered 503. */
  spool: Spool | null;
  logger: Logger;
  /** Gladly gives up after 15 s; Redis gets this long before the webhook goes to the spool. */
  enqueueTimeoutMs?: number;
  /** Entries relayed per round trip. */
  relayBatch?: number;
  /** Wait between relay attempts after a failure: doubles up to the max. */
  relayRetryMs?: { min: number; max: number };
  /** Relay attempts failing with a permanent error before an entry is dead-lettered. */
  poisonAttempts?: number;
  /** Not ready when Redis answers but the relay made no progress this long while entries wait. */
  stallSeconds?: number;
}

/**
 * Gladly gives up on a delivery after 15 s: a store Redis has not acknowledged within this time
 * goes to the spool (or is answered 503 without one). A timed-out add may still land later:
 * harmless, because the job id is derived from the event id, so the relay's add (or Gladly's
 * retry) then finds it as a duplicate.
 */
export const ENQUEUE_TIMEOUT_MS = 1_500;

/** Enough to tell a poison entry from a bad moment, few enough that it holds up little. */
export const POISON_ATTEMPTS = 5;

export const DEFAULT_STALL_SECONDS = 300;

/**
 * Where the ingest stores a webhook's job: Redis when it answers, else the local spool, which the
 * relay empties into Redis, oldest first, as soon as Redis answers again.
 *
 * While the spool holds anything, new jobs go to the spool too, behind the older ones: the queues
 * then receive this ingest's jobs in the order Gladly sent them. When the spool cannot take a job
 * (full, or its disk fails), Redis is tried directly: a durable 200 is worth more than the order.
 * An entry leaves the spool only after Redis acknowledged its add (or it is dead-lettered); it is
 * added with the job id the webhook derived, so an entry relayed twice or already in Redis stores
 * nothing new.
 */
export class JobStore {
  readonly #queues: BridgeQueues;
  readonly #spool: Spool | null;
  readonly #logger: Logger;
  readonly #relay: SpoolRelay | null;
  readonly #timeoutMs: number;
  readonly #stallMs: number;
  #metrics: SpoolMetrics | undefined;
  /** The last Redis failure seen by the webhook path, the relay or readiness; null once it answers. */
  #redisProblem: string | null = null;
  /** Adds waiting for the current turn of the event loop to end (see #nextTurn). */
  #waiting: Array<() => void> = [];

  constructor(options: JobStoreOptions) {
    this.#queues = options.queues;
    this.#spool = options.spool;
    this.#logger = options.logger;
    this.#timeoutMs = options.enqueueTimeoutMs ?? ENQUEUE_TIMEOUT_MS;
    this.#stallMs = (options.stallSeconds ?? DEFAULT_STALL_SECONDS) * 1_000;
    this.#relay = options.spool
      ? new SpoolRelay({
          spool: options.spool,
          queues: options.queues,
          logger: options.logger,
          metrics: () => this.#metrics,
          batch: options.relayBatch ?? 200,
          retryMs: options.relayRetryMs ?? { min: 250, max: 5_000 },
          batchTimeoutMs: Math.max(this.#timeoutMs * 2, 3_000),
          poisonAttempts: options.poisonAttempts ?? POISON_ATTEMPTS,
          onRedisAnswered: () => {
            this.#redisProblem = null;
          },
          onRedisProblem: (message) => this.#noteRedisProblem(message),
        })
      : null;
  }

  get spool(): Spool | null {
    return this.#spool;
  }

  /** Registers the spool's metrics (depth, capacity, spooled, relayed, rejected, dead-lettered, I/O errors). */
  instrument(registry: Registry): void {
    this.#metrics = createSpoolMetrics(registry, this.#spool);
  }

  /** Redis answers again (its connection is ready): relay now rather than after the current wait. */
  nudgeRelay(): void {
    this.#relay?.nudge();
  }

  /** Starts relaying spooled entries (at start, for what a previous run left) unless already at it. */
  startRelay(): void {
    this.#relay?.start();
  }

  /**
   * Stores `spec`'s job: in Redis when the spool is empty (or unusable), else in the spool, and
   * in the spool when Redis fails or does not answer within the timeout. Throws
   * StoreUnavailableError when neither could take it.
   */
  async store(spec: JobSpec): Promise<StoreResult> {
    const spool = this.#spool;
    let redisTried = false;
    if (!spool || spool.depth === 0 || spool.broken) {
      redisTried = true;
      try {
        return await this.#toRedis(spec);
      } catch (err) {
        const message = err instanceof Error ? err.message : String(err);
        this.#noteRedisProblem(message);
        if (!spool) throw new StoreUnavailableError(message, 'redis');
        // A timed-out add may still land: the relay's add of the same id is then a no-op.
      }
    }
    try {
      await spool.append(storedJobSpec(spec));
    } catch (err) {
      const full = err instanceof SpoolFullError;
      this.#metrics?.spoolRejected.inc({ reason: full ? 'full' : 'error' });
      if (!full) {
        this.#metrics?.ioErrors.inc({ op: 'append' });
        this.#logger.error({ err: { message: (err as Error).message } }, 'could not write to the spool');
      }
      if (!redisTried) {
        try {
          return await this.#toRedis(spec);
        } catch (redisErr) {
          this.#noteRedisProblem(redisErr instanceof Error ? redisErr.message : String(redisErr));
        }
      }
      throw new StoreUnavailableError((err as Error).message, full ? 'spool_full' : 'spool_error');
    }
    this.#metrics?.spooled.inc({ queue: spec.queue });
    this.#relay?.start();
    return { outcome: 'spooled', jobId: spec.jobId };
  }

  /** Lets the relay finish the batch in flight, then closes the spool (its file stays if not empty). */
  async close(): Promise<void> {
    await this.#relay?.close();
    await this.#spool?.close();
  }

  /**
   * The ingest's Redis readiness. With a spool that can take entries, an unreachable Redis does
   * not make the ingest unready (it keeps answering Gladly 200, which is the point of the spool;
   * a load balancer that pulled every replica would make Gladly see failures instead). Not ready:
   * the spool is full; or Redis is down and the spool cannot be written; or Redis answers but the
   * relay has moved nothing for the stall time while entries wait (another replica is healthier).
   */
  redisReadiness(redisCheck: ReadinessCheck): ReadinessCheck {
    return async () => {
      const problem = await redisCheck();
      if (!problem) this.#redisProblem = null;
      else this.#redisProblem = problem;
      const spool = this.#spool;
      if (!spool) return problem;
      if (spool.full) {
        return `the spool is full (${spool.depth} of ${spool.maxEntries} entries)${problem ? `; ${problem}` : ''}`;
      }
      if (problem) {
        return spool.broken ? `${problem}; the spool cannot be written (${spool.broken.message})` : null;
      }
      const stalled = this.#relay?.stalledMs() ?? 0;
      if (stalled > this.#stallMs) {
        const why = this.#relay?.problem;
        return `the spool relay has made no progress for ${Math.round(stalled / 1000)} s while ${spool.depth} entries wait${why ? ` (${why})` : ''}`;
      }
      return null;
    };
  }

  /** What /readyz shows besides ready or not: the spool's depth, and why it is in use. */
  report(): { spool?: { depth: number; maxEntries: number }; warnings: string[] } {
    const spool = this.#spool;
    if (!spool) return { warnings: [] };
    const warnings: string[] = [];
    if (spool.broken) warnings.push(spool.broken.message);
    if (this.#redisProblem) warnings.push(`${this.#redisProblem}: webhooks are spooled locally`);
    else if (spool.depth > 0) {
      const why = this.#relay?.problem;
      warnings.push(`relaying ${spool.depth} spooled entries to Redis${why ? ` (${why})` : ''}`);
    }
    return { spool: { depth: spool.depth, maxEntries: spool.maxEntries }, warnings };
  }

  /**
   * Resolves once the current turn of the event loop is over. Webhooks read in one turn then add
   * their jobs together, and ioredis' auto-pipelining (which flushes on the next tick) sends all
   * of them in one socket write instead of one write per webhook. The wait is one turn.
   */
  #nextTurn(): Promise<void> {
    return new Promise((resolve) => {
      if (this.#waiting.push(resolve) > 1) return;
      setImmediate(() => {
        const waiting = this.#waiting;
        this.#waiting = [];
        for (const release of waiting) release();
      });
    });
  }

  async #toRedis(spec: JobSpec): Promise<StoreResult> {
    const result = await withTimeout(
      this.#nextTurn().then(() => addJobOnce(this.#queues, spec)),
      this.#timeoutMs,
      `redis did not acknowledge within ${this.#timeoutMs} ms`,
    );
    this.#redisProblem = null;
    return result;
  }

  #noteRedisProblem(message: string): void {
    if (this.#redisProblem === null) {
      this.#logger.warn(
        { err: { message } },
        this.#spool ? 'redis did not store a webhook; spooling' : 'redis did not store a webhook',
      );
    }
    // /readyz shows this: a fixed description, never the raw text (it can name Redis' address).
    this.#redisProblem = `redis unreachable (${describeRedisError(message)})`;
  }
}
