import { readGladlyEvent } from '@gk/domain';
import { EVENTS_WINDOW_MS, type GladlyEventsQuery } from '@gk/gladly';
import {
  addJobOnce,
  type BridgeQueues,
  customerChangeJob,
  type RedisConnection,
  transitionJob,
} from '@gk/queue';
import type { Logger } from '@gk/runtime';
import { defineScript, runScript } from '../redis-script.js';
import type { ReconcileTrigger, SelfHealingMetrics } from './metrics.js';

/**
 * Each run re-reads this much before its watermark: an event Gladly recorded late (its Events API
 * is up to 15 s behind) with a timestamp just before the last run's end is still seen.
 */
export const RECONCILE_OVERLAP_MS = 60_000;
/** `startAt` must be inside Gladly's 24 h window when Gladly receives the request. */
const WINDOW_SAFETY_MS = 60_000;
/** Gladly's Events API carries conversation and customer events (profile changes and merges). */
export const RECONCILE_ENTITIES = ['CONVERSATION', 'CUSTOMER'] as const;

export interface ReconcileSummary {
  trigger: ReconcileTrigger;
  startAt: string;
  endAt: string;
  read: number;
  recovered: { transitions: number; customerChanges: number };
  alreadyPresent: number;
  skipped: number;
  invalid: number;
  /** Seconds of the gap older than Gladly's 24 h window (never readable). */
  lostSeconds: number;
}

export interface ReconcilerDeps {
  connection: RedisConnection;
  queues: BridgeQueues;
  /** Streams the Events API's lines (streamGladlyEvents bound to the configured Gladly). */
  readEvents: (query: GladlyEventsQuery) => AsyncIterable<string>;
  /** Redis key holding the watermark (ms): how far continuous reconciliation has read. */
  watermarkKey: string;
  lagMs: number;
  /** Gladly's shared GET budget (BullMQ's limiter of the transitions queue); 0 = lifted. */
  gladlyRatePerSecond: number;
  metrics: SelfHealingMetrics;
  logger: Logger;
  now?: () => number;
}

/** Moves the watermark forward only (two runs finishing out of order never move it back). */
const ADVANCE_WATERMARK = defineScript(`
local current = tonumber(redis.call('GET', KEYS[1]) or '0')
local next = tonumber(ARGV[1])
if next > current then redis.call('SET', KEYS[1], ARGV[1]) return next end
return current
`);

/**
 * Takes one request from the transitions queue's limiter, the same Redis counter BullMQ's limiter
 * uses for Gladly lookups (INCR, expiring after a second): reconciliation spends the same budget
 * of Gladly's 10 GET/s per organisation. Answers how long to wait when it is spent.
 */
const TAKE_RATE_TOKEN = defineScript(`
local n = redis.call('INCR', KEYS[1])
if n == 1 then redis.call('PEXPIRE', KEYS[1], 1000) end
if n > tonumber(ARGV[1]) then
  local ttl = redis.call('PTTL', KEYS[1])
  if ttl < 0 then redis.call('PEXPIRE', KEYS[1], 1000) ttl = 1000 end
  return ttl
end
return 0
`);

export class WatermarkGapError extends Error {}

export interface Reconciler {
  /**
   * Continuous reconciliation: from the watermark (minus the overlap) to now minus the lag, all of
   * it in one run so it never falls more than one interval behind. Without a watermark it starts
   * at now minus the lag (nothing before it is read).
   */
  runScheduled(): Promise<ReconcileSummary | null>;
  /** A one-off read from `fromMs` (the watchdog's, after Gladly deactivated the webhook). */
  recover(fromMs: number, trigger: ReconcileTrigger): Promise<ReconcileSummary>;
  /** Non-empty while the last scheduled run had to skip part of its gap (for /readyz). */
  warnings(): string[];
}

export function createReconciler(deps: ReconcilerDeps): Reconciler {
  const now = deps.now ?? Date.now;
  const { metrics, logger } = deps;
  let lostWarning: string | null = null;

  async function takeRateToken(): Promise<void> {
    if (deps.gladlyRatePerSecond <= 0) return;
    const key = deps.queues.transitions.toKey('limiter');
    for (;;) {
      const waitMs = Number(
        await runScript(deps.connection, TAKE_RATE_TOKEN, [key], [deps.gladlyRatePerSecond]),
      );
      if (waitMs <= 0) return;
      await new Promise((resolve) => setTimeout(resolve, Math.min(waitMs, 1_000)));
    }
  }

  async function read(startMs: number, endMs: number, trigger: ReconcileTrigger): Promise<ReconcileSummary> {
    const earliest = now() - EVENTS_WINDOW_MS + WINDOW_SAFETY_MS;
    const lostMs = Math.max(0, earliest - startMs);
    const from = Math.max(startMs, earliest);
    const summary: ReconcileSummary = {
      trigger,
      startAt: new Date(from).toISOString(),
      endAt: new Date(endMs).toISOString(),
      read: 0,
      recovered: { transitions: 0, customerChanges: 0 },
      alreadyPresent: 0,
      skipped: 0,
      invalid: 0,
      lostSeconds: Math.round(lostMs / 1000),
    };
    if (lostMs > 0) {
      metrics.reconcileGapLost.inc();
      metrics.reconcileGapLostSeconds.inc(lostMs / 1000);
      logger.warn(
        {
          trigger,
          from: new Date(startMs).toISOString(),
          readFrom: summary.startAt,
          lostSeconds: summary.lostSeconds,
        },
        "reconciliation gap is older than Gladly's 24 h Events API window: events before readFrom cannot be recovered (npm run backfill cannot either)",
      );
    }
    if (endMs <= from) return summary;
    await takeRateToken();
    const lines = deps.readEvents({
      startAt: new Date(from),
      endAt: new Date(endMs),
      entities: RECONCILE_ENTITIES,
    });
    const receivedAt = new Date(now());
    for await (const line of lines) {
      summary.read += 1;
      let body: unknown;
      try {
        body = JSON.parse(line);
      } catch {
        summary.invalid += 1;
        continue;
      }
      // The same reading, job spec and add-once store as the webhook: what arrived is a no-op.
      const reading = readGladlyEvent(body, receivedAt);
      if (reading.kind === 'transition') {
        const result = await addJobOnce(deps.queues, transitionJob(reading.transition));
        if (result.outcome === 'accepted') summary.recovered.transitions += 1;
        else summary.alreadyPresent += 1;
      } else if (reading.kind === 'customer_change') {
        const result = await addJobOnce(deps.queues, customerChangeJob(reading.change));
        if (result.outcome === 'accepted') summary.recovered.customerChanges += 1;
        else summary.alreadyPresent += 1;
      } else if (reading.kind === 'malformed' || reading.kind === 'invalid') {
        summary.invalid += 1;
      } else summary.skipped += 1;
    }
    metrics.reconcileRead.inc({ trigger }, summary.read);
    metrics.reconcileRecovered.inc({ trigger, kind: 'transition' }, summary.recovered.transitions);
    metrics.reconcileRecovered.inc({ trigger, kind: 'customer_change' }, summary.recovered.customerChanges);
    const recovered = summary.recovered.transitions + summary.recovered.customerChanges;
    const log = recovered > 0 || summary.invalid > 0 ? logger.info.bind(logger) : logger.debug.bind(logger);
    log(
      { reconcile: summary },
      recovered > 0 ? 'reconciliation recovered events the webhook missed' : 'reconciliation done',
    );
    return summary;
  }

  async function counted<T>(trigger: ReconcileTrigger, run: () => Promise<T>): Promise<T> {
    try {
      const result = await run();
      metrics.reconcileRuns.inc({ trigger, outcome: 'ok' });
      return result;
    } catch (err) {
      metrics.reconcileRuns.inc({ trigger, outcome: 'failed' });
      logger.warn({ trigger, err: (err as Error).message }, 'reconciliation failed; the next run retries');
      throw err;
    }
  }

  return {
    runScheduled: () =>
      counted('schedule', async () => {
        const endMs = now() - deps.lagMs;
        const stored = await deps.connection.get(deps.watermarkKey);
        if (stored === null) {
          await runScript(deps.connection, ADVANCE_WATERMARK, [deps.watermarkKey], [endMs]);
          metrics.reconcileWatermark.set(endMs / 1000);
          logger.info(
            { watermark: new Date(endMs).toISOString() },
            'reconciliation starts from now minus the lag',
          );
          return null;
        }
        const summary = await read(Number(stored) - RECONCILE_OVERLAP_MS, endMs, 'schedule');
        lostWarning =
          summary.lostSeconds > 0
            ? `reconciliation skipped ${summary.lostSeconds} s of events older than Gladly's 24 h window (until ${summary.startAt})`
            : null;
        const mark = Number(
          await runScript(deps.connection, ADVANCE_WATERMARK, [deps.watermarkKey], [endMs]),
        );
        metrics.reconcileWatermark.set(mark / 1000);
        return summary;
      }),
    recover: (fromMs, trigger) => counted(trigger, () => read(fromMs, now() - deps.lagMs, trigger)),
    warnings: () => (lostWarning ? [lostWarning] : []),
  };
}
