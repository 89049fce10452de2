import { Agent } from 'node:http';
import { performance } from 'node:perf_hooks';
import type { GladlyStandIn, KlaviyoRecordedEvent, KlaviyoStandIn } from '@gk/stand-ins';
import { freePort } from '@gk/testing';
import { KLAVIYO_LIMITS } from './drain-bench.js';
import { sendAtRate, startBenchIngest } from './e2e-bench.js';
import { SCRIPTS, startProcess } from './processes.js';
import { round } from './stats.js';
import { bridgeWorkerEnv } from './worker-bench.js';
import { emailsOf, schedule, until } from './workload.js';

export interface OutageBenchResult {
  ratePerSecond: number;
  outageSeconds: number;
  afterSeconds: number;
  /** Deliveries of webhooks Gladly sent during the outage. */
  outageDeliveries: number;
  /** From Klaviyo's recovery until the last delivery of the outage was recorded (goal ≤ 15 s). */
  recoverySeconds: number;
  /** Deliveries of the outage still missing when the bench gave up (0 when all arrived). */
  missing: number;
  /** Profiles whose final `In Gladly Conversation` differs from the newest transition sent. */
  wrongFinalStates: number;
  profilesChecked: number;
  /** Requests Klaviyo answered during the outage (the breaker's probes and what preceded it). */
  requestsDuringOutage: number;
  workerPeakRssBytes: number | null;
  ingestPeakRssBytes: number | null;
}

export interface OutageBenchOptions {
  redisUrl: string;
  logDir: string;
  gladly: GladlyStandIn;
  klaviyo: KlaviyoStandIn;
  ratePerSecond: number;
  outageSeconds: number;
  /** Traffic goes on this long after Klaviyo recovers. */
  afterSeconds: number;
}

const PROP = 'In Gladly Conversation';

/**
 * Webhooks at a steady rate through the built ingest and worker (defaults: `auto` delivery, the
 * breaker on) while Klaviyo answers 503 to everything, then Klaviyo recovers and traffic goes on.
 * Measured: how long after the recovery the last event of the outage is in Klaviyo, and whether
 * every profile ends at the state of its newest transition. The stand-in enforces Klaviyo's limits.
 */
export async function benchOutage(options: OutageBenchOptions): Promise<OutageBenchResult> {
  const { klaviyo } = options;
  const prefix = 'bench-outage';
  const webhooks = schedule(
    options.ratePerSecond * (options.outageSeconds + options.afterSeconds),
    options.ratePerSecond,
    'out',
  );
  for (const w of webhooks) options.gladly.setCustomer(w.customerId, emailsOf(w.customerId));
  klaviyo.reset();
  klaviyo.setRateLimit(KLAVIYO_LIMITS.single.perSecond, KLAVIYO_LIMITS.single.burst);
  klaviyo.setBulkRateLimit(KLAVIYO_LIMITS.bulk.perSecond, KLAVIYO_LIMITS.bulk.burst);

  const ingestPort = await freePort();
  const workerPort = await freePort();
  const ingest = await startBenchIngest('ingest-outage', ingestPort, prefix, options, { LOG_LEVEL: 'warn' });
  const worker = await startProcess({
    name: 'worker-outage',
    script: SCRIPTS.worker,
    // A user's defaults (auto delivery, the breaker, Klaviyo's default limit of 50/s), but no
    // Gladly limit: Gladly is not what this phase measures.
    env: bridgeWorkerEnv(options, {
      QUEUE_PREFIX: prefix,
      WORKER_PORT: String(workerPort),
      GLADLY_RATE_LIMIT_PER_SECOND: '0',
      LOG_LEVEL: 'warn',
    }),
    logDir: options.logDir,
    readyUrl: `http://127.0.0.1:${workerPort}/readyz`,
  });

  const deliveredAt = new Map<string, number>();
  const onEvent = (e: KlaviyoRecordedEvent) => deliveredAt.set(`${e.uniqueId}|${e.email}`, performance.now());
  klaviyo.on('event', onEvent);
  const agent = new Agent({ keepAlive: true, maxSockets: 16, scheduling: 'fifo' });
  const url = new URL(`http://127.0.0.1:${ingestPort}/webhooks/gladly`);
  let recoveredAt = Number.NaN;
  let requestsAtRecovery = 0;
  try {
    klaviyo.setOutage(503);
    const outageSlots = options.ratePerSecond * options.outageSeconds;
    const recover = setTimeout(
      () => {
        klaviyo.setOutage(null);
        recoveredAt = performance.now();
        requestsAtRecovery = klaviyo.posts + klaviyo.bulkPosts;
      },
      options.outageSeconds * 1000 + 50,
    );
    const sent = await sendAtRate(agent, url, webhooks, options.ratePerSecond).finally(() =>
      clearTimeout(recover),
    );
    const outageKeys = webhooks
      .slice(0, outageSlots)
      .flatMap((w) => (sent.acceptedAt.has(w.id) ? emailsOf(w.customerId).map((e) => `${w.id}|${e}`) : []));
    const allKeys = webhooks.flatMap((w) =>
      sent.acceptedAt.has(w.id) ? emailsOf(w.customerId).map((e) => `${w.id}|${e}`) : [],
    );
    await until(() => allKeys.every((k) => deliveredAt.has(k)), 120_000, 'every delivery').catch(() => {});
    const lastOutage = Math.max(...outageKeys.map((k) => deliveredAt.get(k) ?? Number.POSITIVE_INFINITY));

    // The newest transition sent per customer decides each of its addresses' final state.
    const newest = new Map<string, boolean>();
    for (const w of webhooks) {
      if (sent.acceptedAt.has(w.id)) newest.set(w.customerId, w.type === 'CONVERSATION/CREATED');
    }
    let wrong = 0;
    let checked = 0;
    for (const [customerId, open] of newest) {
      for (const email of emailsOf(customerId)) {
        checked += 1;
        if (klaviyo.profile(email)?.properties[PROP] !== open) wrong += 1;
      }
    }
    return {
      ratePerSecond: options.ratePerSecond,
      outageSeconds: options.outageSeconds,
      afterSeconds: options.afterSeconds,
      outageDeliveries: outageKeys.length,
      recoverySeconds: round((lastOutage - recoveredAt) / 1000, 2),
      missing: allKeys.filter((k) => !deliveredAt.has(k)).length,
      wrongFinalStates: wrong,
      profilesChecked: checked,
      requestsDuringOutage: requestsAtRecovery,
      workerPeakRssBytes: worker.peakRssBytes(),
      ingestPeakRssBytes: ingest.peakRssBytes(),
    };
  } finally {
    klaviyo.off('event', onEvent);
    klaviyo.setOutage(null);
    klaviyo.setRateLimit(null);
    klaviyo.setBulkRateLimit(null);
    agent.destroy();
    await ingest.stop();
    await worker.stop();
  }
}
