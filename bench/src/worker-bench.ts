import type { GladlyStandIn, KlaviyoStandIn } from '@gk/stand-ins';
import { freePort } from '@gk/testing';
import { Redis } from 'ioredis';
import { type BenchProcess, SCRIPTS, startProcess } from './processes.js';
import { redisCpuMs } from './redis-stats.js';
import { median, rateProfile, round } from './stats.js';
import { GLADLY_TOKEN, GLADLY_USER, KLAVIYO_KEY, preloadDeliveries, until } from './workload.js';

export interface DrainResult {
  /** All rounds pooled: deliveries over drain seconds. */
  deliveriesPerSecond: number;
  /** One figure per round. */
  rounds: number[];
  /** CPU time of the worker process per delivery, from its first POST to its last (µs). */
  cpuMicrosPerDelivery: number;
  /** Redis server CPU time per delivery, from the worker's start to the end of the drain (µs). */
  redisCpuMicrosPerDelivery: number;
}

export interface WorkerBenchResult {
  concurrency: number;
  deliveriesPerRound: number;
  baseline: DrainResult;
  bridge: DrainResult;
  /** bridge / baseline per round (each bridge round against the baseline round just before it). */
  roundRatios: number[];
  /** The median of roundRatios: a burst of load from elsewhere on the machine skews one pair, not the figure. */
  ratio: number;
  workerPeakRssBytes: number | null;
  /** The baseline worker's, under the same drain. */
  baselinePeakRssBytes: number | null;
}

export interface WorkerBenchOptions {
  redisUrl: string;
  logDir: string;
  gladly: GladlyStandIn;
  klaviyo: KlaviyoStandIn;
  concurrency: number;
  deliveries: number;
  rounds: number;
}

/** The env of a bridge worker against the stand-ins. */
export function bridgeWorkerEnv(
  options: { redisUrl: string; gladly: GladlyStandIn; klaviyo: KlaviyoStandIn },
  extra: Record<string, string>,
): Record<string, string> {
  return {
    REDIS_URL: options.redisUrl,
    HOST: '127.0.0.1',
    GLADLY_API_URL: options.gladly.url,
    GLADLY_API_USER: GLADLY_USER,
    GLADLY_API_TOKEN: GLADLY_TOKEN,
    KLAVIYO_API_URL: options.klaviyo.url,
    KLAVIYO_API_KEY: KLAVIYO_KEY,
    ...extra,
  };
}

/**
 * Drains a backlog of deliveries (one per distinct email) through the Klaviyo stand-in, with the
 * bridge's worker and with the baseline worker in turns (baseline, bridge, baseline, …) so that
 * drift on a shared machine hits both alike. The rate is taken from the stand-in's clock: from
 * the first POST of a round to its last, so process start-up is not counted.
 */
export async function benchWorker(options: WorkerBenchOptions): Promise<WorkerBenchResult> {
  type Totals = { n: number; seconds: number; cpuMs: number; redisCpuMs: number; rounds: number[] };
  const totals: Record<'baseline' | 'bridge', Totals> = {
    baseline: { n: 0, seconds: 0, cpuMs: 0, redisCpuMs: 0, rounds: [] },
    bridge: { n: 0, seconds: 0, cpuMs: 0, redisCpuMs: 0, rounds: [] },
  };
  let workerPeakRssBytes: number | null = null;
  let baselinePeakRssBytes: number | null = null;
  const admin = new Redis(options.redisUrl);
  try {
    for (let r = 0; r < options.rounds; r += 1) {
      for (const kind of ['baseline', 'bridge'] as const) {
        const prefix = `bench-wr-${kind}-${r}`;
        options.klaviyo.reset();
        await preloadDeliveries(options.redisUrl, prefix, `wr${r}${kind}`, options.deliveries);
        const port = await freePort();
        const redisCpuBefore = await redisCpuMs(admin);
        const proc = await startWorkerProcess(kind, r, prefix, port, options);
        // CPU from the first POST on, so start-up (module loading, connecting) is not counted.
        let cpuAtFirst: number | null = null;
        const onFirst = () => {
          cpuAtFirst = proc.cpuMs();
          options.klaviyo.off('event', onFirst);
        };
        options.klaviyo.on('event', onFirst);
        let cpuAtLast: number | null = null;
        try {
          await until(() => options.klaviyo.accepted >= options.deliveries, 180_000, `${kind} to drain`);
          cpuAtLast = proc.cpuMs();
          totals[kind].redisCpuMs += (await redisCpuMs(admin)) - redisCpuBefore;
        } finally {
          options.klaviyo.off('event', onFirst);
          const rss = proc.peakRssBytes() ?? 0;
          if (kind === 'bridge') workerPeakRssBytes = Math.max(workerPeakRssBytes ?? 0, rss);
          else baselinePeakRssBytes = Math.max(baselinePeakRssBytes ?? 0, rss);
          await proc.stop();
        }
        if (options.klaviyo.posts !== options.klaviyo.accepted) {
          throw new Error(
            `${kind}: ${options.klaviyo.posts - options.klaviyo.accepted} POSTs were not answered 202`,
          );
        }
        const profile = rateProfile(options.klaviyo.requestTimes);
        totals[kind].n += options.deliveries - 1;
        totals[kind].seconds += profile.seconds;
        totals[kind].cpuMs += (cpuAtLast ?? Number.NaN) - (cpuAtFirst ?? Number.NaN);
        totals[kind].rounds.push(round(profile.meanPerSecond, 1));
      }
    }
  } finally {
    admin.disconnect();
  }
  const drain = (t: Totals): DrainResult => ({
    deliveriesPerSecond: round(t.n / t.seconds, 1),
    rounds: t.rounds,
    cpuMicrosPerDelivery: round((t.cpuMs * 1000) / t.n, 0),
    redisCpuMicrosPerDelivery: round((t.redisCpuMs * 1000) / (options.deliveries * options.rounds), 0),
  });
  const roundRatios = totals.bridge.rounds.map((b, i) =>
    round(b / (totals.baseline.rounds[i] ?? Number.NaN), 3),
  );
  return {
    concurrency: options.concurrency,
    deliveriesPerRound: options.deliveries,
    baseline: drain(totals.baseline),
    bridge: drain(totals.bridge),
    roundRatios,
    ratio: round(median(roundRatios), 3),
    workerPeakRssBytes,
    baselinePeakRssBytes,
  };
}

function startWorkerProcess(
  kind: 'baseline' | 'bridge',
  r: number,
  prefix: string,
  port: number,
  options: WorkerBenchOptions,
): Promise<BenchProcess> {
  if (kind === 'baseline') {
    return startProcess({
      name: `baseline-worker-${r}`,
      script: SCRIPTS.baselineWorker,
      env: {
        REDIS_URL: options.redisUrl,
        QUEUE_PREFIX: prefix,
        WORKER_CONCURRENCY: String(options.concurrency),
        KLAVIYO_API_URL: options.klaviyo.url,
        KLAVIYO_API_KEY: KLAVIYO_KEY,
      },
      logDir: options.logDir,
    });
  }
  return startProcess({
    name: `worker-rate-${r}`,
    script: SCRIPTS.worker,
    env: bridgeWorkerEnv(options, {
      QUEUE_PREFIX: prefix,
      WORKER_PORT: String(port),
      WORKER_CONCURRENCY: String(options.concurrency),
      KLAVIYO_RATE_LIMIT_PER_SECOND: '0',
      // Per delivery against the baseline's single requests (bulk: the drain phase).
      KLAVIYO_DELIVERY_MODE: 'single',
      GLADLY_RATE_LIMIT_PER_SECOND: '0',
    }),
    logDir: options.logDir,
    readyUrl: `http://127.0.0.1:${port}/readyz`,
  });
}
