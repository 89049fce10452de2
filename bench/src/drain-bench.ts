import type { GladlyStandIn, KlaviyoStandIn } from '@gk/stand-ins';
import { freePort } from '@gk/testing';
import { type BenchProcess, SCRIPTS, startProcess } from './processes.js';
import { round } from './stats.js';
import { bridgeWorkerEnv } from './worker-bench.js';
import { preloadDeliveries, until } from './workload.js';

/** Klaviyo's published limits, which the stand-in enforces in this phase. */
export const KLAVIYO_LIMITS = {
  /** Create Event: 350/s burst, 3,500/min steady. */
  single: { perSecond: 3_500 / 60, burst: 350 },
  /** Bulk Create Events: 10/s burst, 150/min steady. */
  bulk: { perSecond: 150 / 60, burst: 10 },
} as const;

export interface DrainBenchResult {
  /** Deliveries waiting when the `auto` worker starts. */
  backlog: number;
  single: { eventsPerSecond: number; measuredSeconds: number; events: number };
  auto: {
    eventsPerSecond: number;
    /** From the first event recorded to the last. */
    seconds: number;
    bulkRequests: number;
    singleRequests: number;
    workerPeakRssBytes: number | null;
  };
  /** auto / single events per second (goal ≥ 10). */
  ratio: number;
}

export interface DrainBenchOptions {
  redisUrl: string;
  logDir: string;
  gladly: GladlyStandIn;
  klaviyo: KlaviyoStandIn;
  /** Backlog the `auto` worker drains (the figure: 100,000). */
  deliveries: number;
  /** How long `single` is measured (a full single drain would take half an hour). */
  singleSeconds: number;
}

/**
 * A backlog after an outage, drained under Klaviyo's real limits: `single` (one Create Event per
 * delivery) measured over its first `singleSeconds`, then `auto` (bulk while the backlog is long)
 * draining all of it, each by one worker process on its own queue prefix. Events per second are
 * counted by the stand-in (events recorded, first to last).
 */
export async function benchDrain(options: DrainBenchOptions): Promise<DrainBenchResult> {
  const { klaviyo } = options;
  klaviyo.setRateLimit(KLAVIYO_LIMITS.single.perSecond, KLAVIYO_LIMITS.single.burst);
  klaviyo.setBulkRateLimit(KLAVIYO_LIMITS.bulk.perSecond, KLAVIYO_LIMITS.bulk.burst);
  try {
    // Single: a backlog it cannot drain within the window (58 events/s at most).
    klaviyo.reset();
    const singleBacklog = Math.min(options.deliveries, Math.ceil(options.singleSeconds * 100));
    await preloadDeliveries(options.redisUrl, 'bench-drain-single', 'drs', singleBacklog);
    const times: number[] = [];
    const onEvent = () => times.push(Date.now());
    klaviyo.on('event', onEvent);
    const single = await startDrainWorker('single', 'bench-drain-single', options);
    try {
      await until(() => times.length > 0, 60_000, 'the first single event');
      const first = times[0] ?? Date.now();
      await until(
        () => Date.now() >= first + options.singleSeconds * 1000,
        options.singleSeconds * 1000 + 5_000,
        'the window',
      );
    } finally {
      klaviyo.off('event', onEvent);
      await single.stop();
    }
    const first = times[0] ?? 0;
    const inWindow = times.filter((t) => t <= first + options.singleSeconds * 1000).length;
    const singleRate = inWindow / options.singleSeconds;

    // Auto: the whole backlog.
    klaviyo.reset();
    await preloadDeliveries(options.redisUrl, 'bench-drain-auto', 'dra', options.deliveries);
    const autoTimes: number[] = [];
    const onAuto = () => autoTimes.push(Date.now());
    klaviyo.on('event', onAuto);
    const auto = await startDrainWorker('auto', 'bench-drain-auto', options);
    let rss: number | null = null;
    try {
      await until(() => autoTimes.length >= options.deliveries, 900_000, 'auto to drain the backlog');
    } finally {
      klaviyo.off('event', onAuto);
      rss = auto.peakRssBytes();
      await auto.stop();
    }
    const seconds = ((autoTimes.at(-1) ?? 0) - (autoTimes[0] ?? 0)) / 1000;
    const autoRate = (options.deliveries - 1) / Math.max(seconds, 0.001);
    return {
      backlog: options.deliveries,
      single: {
        eventsPerSecond: round(singleRate, 1),
        measuredSeconds: options.singleSeconds,
        events: inWindow,
      },
      auto: {
        eventsPerSecond: round(autoRate, 1),
        seconds: round(seconds, 1),
        bulkRequests: klaviyo.bulkAccepted,
        singleRequests: klaviyo.accepted,
        workerPeakRssBytes: rss,
      },
      ratio: round(autoRate / singleRate, 2),
    };
  } finally {
    klaviyo.setRateLimit(null);
    klaviyo.setBulkRateLimit(null);
    klaviyo.reset();
  }
}

async function startDrainWorker(
  mode: 'single' | 'auto',
  prefix: string,
  options: DrainBenchOptions,
): Promise<BenchProcess> {
  const port = await freePort();
  return startProcess({
    name: `worker-drain-${mode}`,
    script: SCRIPTS.worker,
    // The defaults a user runs with, but for the mode (and no Gladly lookups in this phase).
    env: bridgeWorkerEnv(options, {
      QUEUE_PREFIX: prefix,
      WORKER_PORT: String(port),
      KLAVIYO_DELIVERY_MODE: mode,
      LOG_LEVEL: 'warn',
    }),
    logDir: options.logDir,
    readyUrl: `http://127.0.0.1:${port}/readyz`,
  });
}
