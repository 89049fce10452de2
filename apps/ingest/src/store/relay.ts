import {
  addJobOnce,
  appendDeadLetters,
  type BridgeQueues,
  type DeadLetter,
  deadLetterPath,
  type JobSpecReading,
  newDeadLetterId,
  readJobSpec,
} from '@gk/queue';
import { describeRedisError, type Logger, withTimeout } from '@gk/runtime';
import type { SpoolMetrics } from './metrics.js';
import type { Spool, SpoolEntry } from './spool.js';

/** An entry this version can never store as written (unreadable, unknown queue, bad payload). */
export class UnreadableEntryError extends Error {
  override name = 'UnreadableEntryError';
}

/**
 * Redis error replies that pass: memory, loading, failover, cluster resharding, credentials and
 * permissions are the server's state, not the entry's. Any other error reply (WRONGTYPE, ERR …)
 * is about what this entry asks and would be answered the same way forever.
 */
const TRANSIENT_REPLIES = new Set([
  'OOM',
  'LOADING',
  'BUSY',
  'MASTERDOWN',
  'CLUSTERDOWN',
  'TRYAGAIN',
  'READONLY',
  'NOREPLICAS',
  'MOVED',
  'ASK',
  'NOAUTH',
  'WRONGPASS',
  'NOPERM',
]);

/** Permanent: retrying this entry will never store it. Connection errors and timeouts are not. */
export function permanentReason(err: unknown): 'unreadable' | 'rejected' | null {
  if (err instanceof UnreadableEntryError) return 'unreadable';
  if (!(err instanceof Error) || err.name !== 'ReplyError') return null;
  const code = err.message.split(/\s/, 1)[0] ?? '';
  return TRANSIENT_REPLIES.has(code) ? null : 'rejected';
}

export interface RelayOptions {
  spool: Spool;
  queues: BridgeQueues;
  logger: Logger;
  metrics: () => SpoolMetrics | undefined;
  /** Entries relayed per round trip. */
  batch: number;
  /** Wait between attempts after a failure: doubles up to the max. */
  retryMs: { min: number; max: number };
  /** How long Redis gets to acknowledge a batch. */
  batchTimeoutMs: number;
  /** Attempts that fail with a permanent error before an entry is dead-lettered. */
  poisonAttempts: number;
  /** Called whenever Redis answered the relay (stored or refused an entry). */
  onRedisAnswered: () => void;
  /** Called with the message of a failure that is Redis not answering. */
  onRedisProblem: (message: string) => void;
}

/**
 * Moves spooled entries into their queues, oldest first, while the spool holds any. Never throws:
 * every failure (Redis, the spool file, the dead-letter file) is caught, logged once per run of
 * failures, counted, and retried with backoff. An entry that keeps failing with a permanent error
 * goes to the dead-letter file beside the spool after `poisonAttempts`, so the entries behind it
 * flow; anything else waits for its turn (that keeps this replica's order).
 */
export class SpoolRelay {
  readonly #o: RelayOptions;
  #running: Promise<void> | null = null;
  #closing = false;
  #wake: (() => void) | null = null;
  /** Permanent failures per entry (by seq) so far. */
  readonly #attempts = new Map<number, number>();
  /** Last time an entry left the spool (relayed or dead-lettered), or the spool was empty. */
  #progressAt = Date.now();
  /** Why the relay is not moving (null while it is). */
  #problem: string | null = null;

  constructor(options: RelayOptions) {
    this.#o = options;
  }

  /** Milliseconds since an entry last left the spool while entries waited (0 when empty). */
  stalledMs(now = Date.now()): number {
    if (this.#o.spool.depth === 0) return 0;
    return now - this.#progressAt;
  }

  get problem(): string | null {
    return this.#problem;
  }

  /** Starts relaying unless already at it or nothing waits. */
  start(): void {
    const spool = this.#o.spool;
    if (this.#running || this.#closing || spool.depth === 0 || spool.broken) {
      if (spool.depth === 0) this.#progressAt = Date.now();
      return;
    }
    this.#running = this.#run()
      .catch((err: unknown) => {
        // Not expected (every step catches its own), but never an unhandled rejection.
        this.#o.logger.error(
          { err: { message: (err as Error).message } },
          'spool relay stopped unexpectedly',
        );
      })
      .finally(() => {
        this.#running = null;
        if (!this.#closing && spool.depth > 0 && !spool.broken) setTimeout(() => this.start(), 50).unref();
      });
  }

  /** Ends the current wait (Redis answers again). */
  nudge(): void {
    if (this.#wake) this.#wake();
    else this.start();
  }

  /** Lets the batch in flight finish. */
  async close(): Promise<void> {
    this.#closing = true;
    this.#wake?.();
    await this.#running;
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

  #ioError(op: 'peek' | 'mark' | 'dead_letter', err: unknown, logged: boolean): void {
    this.#o.metrics()?.ioErrors.inc({ op });
    const message = err instanceof Error ? err.message : String(err);
    this.#problem = `spool ${op} failed: ${message}`;
    if (!logged)
      this.#o.logger.error({ err: { message, op } }, 'spool relay: file operation failed; retrying');
  }

  async #run(): Promise<void> {
    const { spool, logger } = this.#o;
    let wait = this.#o.retryMs.min;
    let failing = false;
    const backOff = async () => {
      failing = true;
      await this.#pause(wait);
      wait = Math.min(wait * 2, this.#o.retryMs.max);
    };
    while (!this.#closing && spool.depth > 0 && !spool.broken) {
      let batch: SpoolEntry[];
      try {
        batch = await spool.peek(this.#o.batch);
      } catch (err) {
        this.#ioError('peek', err, failing);
        await backOff();
        continue;
      }
      if (batch.length === 0) {
        // Entries appended but not yet synced: they are readable in a moment.
        await this.#pause(5);
        continue;
      }
      const readings: JobSpecReading[] = batch.map((e) =>
        e.job === undefined
          ? { ok: false, reason: 'the record no longer reads back (damaged on disk)' }
          : readJobSpec(e.job),
      );
      // Sent together (one round trip with auto-pipelining); Redis runs them in this order.
      const results = await withTimeout(
        Promise.allSettled(
          readings.map(async (r) => {
            if (!r.ok) throw new UnreadableEntryError(r.reason);
            return addJobOnce(this.#o.queues, r.spec);
          }),
        ),
        this.#o.batchTimeoutMs,
        'redis did not acknowledge the relayed batch',
      ).catch((err: unknown) => [{ status: 'rejected' as const, reason: err }]);

      // Only an unbroken run from the oldest leaves the spool (stored, or given up on).
      let through = 0;
      let stop: unknown;
      const dead: { seq: number; letter: DeadLetter; queue: string; reason: 'unreadable' | 'rejected' }[] =
        [];
      let ioFailed = false;
      for (const [i, r] of results.entries()) {
        const entry = batch[i];
        if (!entry) break;
        if (r.status === 'fulfilled') {
          const reading = readings[i];
          if (reading?.ok)
            this.#o.metrics()?.relayed.inc({ queue: reading.spec.queue, outcome: r.value.outcome });
          this.#attempts.delete(entry.seq);
          through = entry.seq;
          continue;
        }
        const permanent = permanentReason(r.reason);
        if (permanent) {
          const attempts = (this.#attempts.get(entry.seq) ?? 0) + 1;
          this.#attempts.set(entry.seq, attempts);
          if (attempts >= this.#o.poisonAttempts) {
            const message = r.reason instanceof Error ? r.reason.message : String(r.reason);
            const named = (entry.job as { queue?: unknown } | undefined)?.queue;
            const queue = typeof named === 'string' ? named.slice(0, 40) : 'unknown';
            dead.push({
              seq: entry.seq,
              letter: {
                id: newDeadLetterId(),
                at: new Date().toISOString(),
                reason: `${permanent}: ${message}`,
                attempts,
                job: entry.job ?? null,
              },
              queue,
              reason: permanent,
            });
            through = entry.seq;
            continue;
          }
        }
        stop = r.reason;
        break;
      }
      if (results.some((r) => r.status === 'fulfilled' || permanentReason(r.reason)))
        this.#o.onRedisAnswered();

      if (dead.length > 0) {
        try {
          await appendDeadLetters(
            deadLetterPath(spool.path),
            dead.map((d) => d.letter),
          );
          for (const d of dead) {
            this.#o.metrics()?.deadLettered.inc({ queue: d.queue, reason: d.reason });
            this.#attempts.delete(d.seq);
            logger.error(
              {
                deadLetter: d.letter.id,
                queue: d.queue,
                reason: d.letter.reason,
                attempts: d.letter.attempts,
              },
              'spool entry moved to the dead-letter file (npm run jobs -- spool list)',
            );
          }
        } catch (err) {
          // Not on disk: they stay in the spool, and so does everything behind them.
          this.#ioError('dead_letter', err, failing);
          ioFailed = true;
          const firstDead = batch.findIndex((e) => e.seq === dead[0]?.seq);
          through = firstDead > 0 ? (batch[firstDead - 1]?.seq ?? 0) : 0;
          stop = err;
        }
      }
      if (through > 0) {
        // Something moved: the next wait starts short again.
        this.#progressAt = Date.now();
        wait = this.#o.retryMs.min;
        try {
          await spool.markRelayed(through);
        } catch (err) {
          // In memory they are done (they are in Redis); only the marker on disk is missing.
          this.#ioError('mark', err, failing);
          ioFailed = true;
          stop ??= err;
        }
      }
      if (stop === undefined) {
        if (failing) logger.info({ depth: spool.depth }, 'spool relay moving again');
        failing = false;
        this.#problem = null;
        wait = this.#o.retryMs.min;
        continue;
      }
      if (!ioFailed) {
        const message = stop instanceof Error ? stop.message : String(stop);
        if (!permanentReason(stop)) this.#o.onRedisProblem(message);
        if (!failing)
          logger.warn({ err: { message }, depth: spool.depth }, 'spool relay: not stored; retrying');
        // Shown by /readyz: a Redis failure by a fixed description, never its raw text (address).
        this.#problem = permanentReason(stop) ? message : `redis ${describeRedisError(stop)}`;
      }
      await backOff();
    }
    if (spool.depth === 0) {
      this.#progressAt = Date.now();
      this.#problem = null;
      if (!this.#closing) logger.info('spool relayed: every spooled entry is in Redis');
    }
  }
}
