import type { GladlyStandIn, KlaviyoStandIn } from '@gk/stand-ins';
import { freePort } from '@gk/testing';
import { type BenchProcess, SCRIPTS, startProcess } from './processes.js';
import { type RateProfile, rateProfile, round } from './stats.js';
import { bridgeWorkerEnv } from './worker-bench.js';
import { preloadDeliveries, until } from './workload.js';

export interface RateLimitResult {
  limitPerSecond: number;
  workers: number;
  backlog: number;
  delivered: number;
  /** The stand-in's own limit: Klaviyo's documented account limits. */
  standInLimit: { steadyPerSecond: number; burst: number };
  profile: RateProfile;
  /** meanPerSecond / limit − 1. */
  deviation: number;
  throttled: number;
  workerPeakRssBytes: number | null;
}

export interface RateLimitOptions {
  redisUrl: string;
  logDir: string;
  gladly: GladlyStandIn;
  klaviyo: KlaviyoStandIn;
  limitPerSecond: number;
  workers: number;
  backlog: number;
}

/** Klaviyo: 350/s burst, 3,500/min steady per account. */
const KLAVIYO_STEADY_PER_SECOND = 3500 / 60;
const KLAVIYO_BURST = 350;

/**
 * A backlog drained by several worker processes sharing one global limit: the Klaviyo stand-in's
 * request rate over the drain (first request to last), its busiest wall-clock second, and its
 * 429s. The stand-in enforces Klaviyo's documented limits, so a 429 means the real one would too.
 */
export async function benchRateLimit(options: RateLimitOptions): Promise<RateLimitResult> {
  const prefix = 'bench-rate';
  options.klaviyo.reset();
  options.klaviyo.setRateLimit(KLAVIYO_STEADY_PER_SECOND, KLAVIYO_BURST);
  await preloadDeliveries(options.redisUrl, prefix, 'rl', options.backlog);
  const workers: BenchProcess[] = [];
  try {
    for (let i = 0; i < options.workers; i += 1) {
      const port = await freePort();
      workers.push(
        await startProcess({
          name: `worker-rate-limit-${i}`,
          script: SCRIPTS.worker,
          env: bridgeWorkerEnv(options, {
            QUEUE_PREFIX: prefix,
            WORKER_PORT: String(port),
            KLAVIYO_RATE_LIMIT_PER_SECOND: String(options.limitPerSecond),
            // The single-event limiter is what this phase measures (bulk has its own: the drain phase).
            KLAVIYO_DELIVERY_MODE: 'single',
          }),
          logDir: options.logDir,
          readyUrl: `http://127.0.0.1:${port}/readyz`,
        }),
      );
    }
    const expectedSeconds = options.backlog / options.limitPerSecond;
    await until(
      () => options.klaviyo.accepted >= options.backlog,
      (expectedSeconds * 1.5 + 30) * 1000,
      'the backlog to drain',
    );
    const profile = rateProfile(options.klaviyo.requestTimes);
    return {
      limitPerSecond: options.limitPerSecond,
      workers: options.workers,
      backlog: options.backlog,
      delivered: options.klaviyo.accepted,
      standInLimit: { steadyPerSecond: round(KLAVIYO_STEADY_PER_SECOND, 2), burst: KLAVIYO_BURST },
      profile: {
        meanPerSecond: round(profile.meanPerSecond, 2),
        maxInOneSecond: profile.maxInOneSecond,
        maxInAnyWindow: profile.maxInAnyWindow,
        seconds: round(profile.seconds, 1),
      },
      deviation: round(profile.meanPerSecond / options.limitPerSecond - 1, 4),
      throttled: options.klaviyo.throttled,
      workerPeakRssBytes: Math.max(0, ...workers.map((w) => w.peakRssBytes() ?? 0)) || null,
    };
  } finally {
    await Promise.all(workers.map((w) => w.stop()));
    options.klaviyo.setRateLimit(null);
  }
}
