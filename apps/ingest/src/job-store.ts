import type { CustomerChange, Transition } from '@gk/domain';
import { type BridgeQueues, customerChangeJobId, QueueName, queueByName, transitionJobId } from '@gk/queue';
import { describeRedisError, type Logger, type ReadinessCheck, withTimeout } from '@gk/runtime';
import type { Registry } from 'prom-client';
import { addJobOnce, type EnqueueResult } from './enqueue-transition.js';
import { type Spool, type SpooledJob, SpoolFullError } from './spool.js';
import { createSpoolMetrics, type SpoolMetrics } from './spool-metrics.js';

export interface StoreResult {
  /** `spooled`: on local disk, fsync'd; the relay moves it to its queue once Redis answers. */
  outcome: EnqueueResult['outcome'] | 'spooled';
  jobId: string;
}

/** The webhook could store nothing durably (Redis down and no spool, or the spool full): answer 503. */
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
  /** Wait between relay attempts while Redis does not answer: doubles up to the max. */
  relayRetryMs?: { min: number; max: number };
}

/**
 * Gladly gives up on a delivery after 15 s: a store Redis has not acknowledged within this time
 * goes to the spool (or is answered 503 without one). A timed-out add may still land later:
 * harmless, because the job id is derived from the event id, so the relay's add (or Gladly's
 * retry) then finds it as a duplicate.
 */
export const ENQUEUE_TIMEOUT_MS = 1_500;

export function transitionSpoolJob(transition: Transition): SpooledJob {
  return {
    queue: QueueName.transitions,
    name: transition.gladlyType,
    jobId: transitionJobId(transition.eventId),
    data: transition,
  };
}

export function customerChangeSpoolJob(change: CustomerChange): SpooledJob {
  return {
    queue: QueueName.customerChanges,
    name: change.gladlyType,
    jobId: customerChangeJobId(change.eventId),
    data: change,
  };
}

/**
 * Where the ingest stores a webhook's job: Redis when it answers, else the local spool, which a
 * relay empties into Redis, oldest first, as soon as Redis answers again.
 *
 * While the spool holds anything, new jobs go to the spool too, behind the older ones: the queues
 * then receive this ingest's jobs in the order Gladly sent them. An entry leaves the spool only
 * after Redis acknowledged its add; it is added with the job id the webhook derived, so an entry
 * relayed twice (a crash between the add and the spool's bookkeeping) or already in Redis (an add
 * that timed out but landed) stores nothing new.
 */
export class JobStore {
  readonly #queues: BridgeQueues;
  readonly #spool: Spool | null;
  readonly #logger: Logger;
  #metrics: SpoolMetrics | undefined;
  readonly #timeoutMs: number;
  readonly #batch: number;
  readonly #retry: { min: number; max: number };
  #relaying: Promise<void> | null = null;
  #closing = false;
  /** Ends the relay's wait between attempts (on close). */
  #wake: (() => void) | null = null;
  /** The last Redis failure seen by the webhook path, the relay or readiness; null once it answers. */
  #redisProblem: string | null = null;

  constructor(options: JobStoreOptions) {
    this.#queues = options.queues;
    this.#spool = options.spool;
    this.#logger = options.logger;
    this.#timeoutMs = options.enqueueTimeoutMs ?? ENQUEUE_TIMEOUT_MS;
    this.#batch = options.relayBatch ?? 200;
    this.#retry = options.relayRetryMs ?? { min: 250, max: 5_000 };
  }

  get spool(): Spool | null {
    return this.#spool;
  }

  /** Registers the spool's metrics (depth, capacity, spooled, relayed, rejected) on `registry`. */
  instrument(registry: Registry): void {
    this.#metrics = createSpoolMetrics(registry, this.#spool);
  }

  /** Redis answers again (its connection is ready): relay now rather than after the current wait. */
  nudgeRelay(): void {
    if (this.#wake) this.#wake();
    else this.startRelay();
  }

  /**
   * Stores `job`: through `enqueue` (Redis) when the spool is empty, else (or when Redis fails or
   * does not answer within the timeout) in the spool. Throws StoreUnavailableError when neither
   * could take it.
   */
  async store(job: SpooledJob, enqueue: () => Promise<EnqueueResult>): Promise<StoreResult> {
    const spool = this.#spool;
    if (!spool || spool.depth === 0) {
      try {
        const result = await withTimeout(
          enqueue(),
          this.#timeoutMs,
          `redis did not acknowledge within ${this.#timeoutMs} ms`,
        );
        this.#redisProblem = null;
        return result;
      } catch (err) {
        const message = err instanceof Error ? err.message : String(err);
        this.#noteRedisProblem(message);
        if (!spool) throw new StoreUnavailableError(message, 'redis');
        // A timed-out add may still land: the relay's add of the same id is then a no-op.
      }
    }
    try {
      await spool.append(job);
    } catch (err) {
      const full = err instanceof SpoolFullError;
      this.#metrics?.spoolRejected.inc({ reason: full ? 'full' : 'error' });
      if (!full) this.#logger.error({ err: (err as Error).message }, 'could not write to the spool');
      throw new StoreUnavailableError((err as Error).message, full ? 'spool_full' : 'spool_error');
    }
    this.#metrics?.spooled.inc({ queue: job.queue });
    this.startRelay();
    return { outcome: 'spooled', jobId: job.jobId };
  }

  /** Starts relaying spooled entries (at start, for what a previous run left) unless already at it. */
  startRelay(): void {
    if (!this.#spool || this.#relaying || this.#closing || this.#spool.depth === 0) return;
    this.#relaying = this.#relay().finally(() => {
      this.#relaying = null;
      // An entry spooled just as the loop ended.
      if (!this.#closing && (this.#spool?.depth ?? 0) > 0) this.startRelay();
    });
  }

  /** Lets the relay finish the batch in flight, then closes the spool (its file stays if not empty). */
  async close(): Promise<void> {
    this.#closing = true;
    this.#wake?.();
    await this.#relaying;
    await this.#spool?.close();
  }

  /**
   * The ingest's Redis readiness: with a spool that can take entries, an unreachable Redis does
   * not make the ingest unready (it keeps answering Gladly 200, which is the point of the spool;
   * a load balancer that pulled every replica would make Gladly see failures instead).
   */
  redisReadiness(redisCheck: ReadinessCheck): ReadinessCheck {
    return async () => {
      const problem = await redisCheck();
      this.#redisProblem = problem;
      if (!problem) return null;
      const spool = this.#spool;
      if (!spool) return problem;
      if (spool.broken) return `${problem}; the spool cannot be written (${spool.broken.message})`;
      if (spool.full) return `${problem}; the spool is full (${spool.depth} entries)`;
      return null;
    };
  }

  /** What /readyz shows besides ready or not: the spool's depth, and why it is in use. */
  report(): { spool?: { depth: number; maxEntries: number }; warnings: string[] } {
    const spool = this.#spool;
    if (!spool) return { warnings: [] };
    const warnings: string[] = [];
    if (this.#redisProblem) warnings.push(`${this.#redisProblem}: webhooks are spooled locally`);
    else if (spool.depth > 0) warnings.push(`relaying ${spool.depth} spooled entries to Redis`);
    return { spool: { depth: spool.depth, maxEntries: spool.maxEntries }, warnings };
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

  #pause(ms: number): Promise<void> {
    return new Promise((resolve) => {
      const timer = setTimeout(() => {
        this.#wake = null;
        resolve();
      }, ms);
      this.#wake = () => {
        clearTimeout(timer);
        this.#wake = null;
        resolve();
      };
    });
  }

  async #relay(): Promise<void> {
    const spool = this.#spool;
    if (!spool) return;
    let wait = this.#retry.min;
    let failing = false;
    while (!this.#closing && spool.depth > 0) {
      const batch = await spool.peek(this.#batch);
      if (batch.length === 0) {
        // Entries appended but not yet synced: they are readable in a moment.
        await this.#pause(5);
        continue;
      }
      // Sent together (one round trip with auto-pipelining); Redis runs them in this order.
      const results = await withTimeout(
        Promise.allSettled(
          // async: an entry that cannot be added (say, a queue this version does not know) is a
          // rejection like any other, tried again later, never a crash.
          batch.map(async (e) =>
            addJobOnce(
              queueByName(this.#queues, e.job.queue as QueueName),
              e.job.name,
              e.job.data,
              e.job.jobId,
            ),
          ),
        ),
        Math.max(this.#timeoutMs * 2, 3_000),
        'redis did not acknowledge the relayed batch',
      ).catch((err: unknown) => [{ status: 'rejected' as const, reason: err }]);
      // Only an unbroken run from the oldest is removed: anything after a failure is tried again.
      let through = 0;
      let error: unknown;
      for (const [i, r] of results.entries()) {
        const entry = batch[i];
        if (r.status === 'rejected' || !entry) {
          error = r.status === 'rejected' ? r.reason : undefined;
          break;
        }
        this.#metrics?.relayed.inc({ queue: entry.job.queue, outcome: r.value.outcome });
        through = entry.seq;
      }
      if (through > 0) await spool.markRelayed(through);
      if (error === undefined && through === batch[batch.length - 1]?.seq) {
        if (failing) this.#logger.info({ depth: spool.depth }, 'redis answers again; relaying the spool');
        failing = false;
        wait = this.#retry.min;
        this.#redisProblem = null;
        continue;
      }
      const message = error instanceof Error ? error.message : String(error);
      if (!failing) {
        this.#logger.warn(
          { err: { message }, depth: spool.depth },
          'spool relay: redis did not store; retrying',
        );
      }
      failing = true;
      this.#redisProblem = `redis unreachable (${describeRedisError(error)})`;
      await this.#pause(wait);
      wait = Math.min(wait * 2, this.#retry.max);
    }
    if (spool.depth === 0 && !this.#closing)
      this.#logger.info('spool relayed: every spooled entry is in Redis');
  }
}
