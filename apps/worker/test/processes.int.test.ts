import { toTransition } from '@gk/domain';
import {
  type BridgeQueues,
  closeQueues,
  createQueues,
  createWorkerConnection,
  transitionJobId,
} from '@gk/queue';
import {
  type GladlyStandIn,
  type KlaviyoStandIn,
  startGladlyStandIn,
  startKlaviyoStandIn,
} from '@gk/stand-ins';
import { type TestRedis, uniquePrefix, useTestRedis, waitFor } from '@gk/testing';
import type { Redis } from 'ioredis';
import { afterAll, afterEach, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import { GLADLY_TOKEN, GLADLY_USER, KLAVIYO_KEY } from './harness.js';
import { startWorkerProcess, type WorkerProcess } from './worker-process.js';

let redis: TestRedis;
let gladly: GladlyStandIn;
let klaviyo: KlaviyoStandIn;
let prefix: string;
let connection: Redis;
let queues: BridgeQueues;
const running: WorkerProcess[] = [];

beforeAll(async () => {
  redis = await useTestRedis();
});
afterAll(async () => {
  await redis.stop();
});
beforeEach(async () => {
  gladly = await startGladlyStandIn({ user: GLADLY_USER, token: GLADLY_TOKEN });
  klaviyo = await startKlaviyoStandIn({ apiKey: KLAVIYO_KEY });
  prefix = uniquePrefix('proc');
  connection = createWorkerConnection(redis.target) as Redis;
  queues = createQueues(connection, prefix);
});
afterEach(async () => {
  for (const w of running.splice(0)) {
    if (w.child.exitCode === null && w.child.signalCode === null) w.child.kill('SIGKILL');
    await w.exited;
  }
  await closeQueues(queues);
  connection.disconnect();
  await Promise.all([gladly.close(), klaviyo.close()]);
});

function env(extra: Record<string, string> = {}): Record<string, string> {
  return {
    ...redis.env,
    QUEUE_PREFIX: prefix,
    GLADLY_API_URL: gladly.url,
    GLADLY_API_USER: GLADLY_USER,
    GLADLY_API_TOKEN: GLADLY_TOKEN,
    KLAVIYO_API_URL: klaviyo.url,
    KLAVIYO_API_KEY: KLAVIYO_KEY,
    LOG_LEVEL: 'info',
    ...extra,
  };
}

async function start(extra: Record<string, string> = {}) {
  const w = await startWorkerProcess(env(extra));
  running.push(w);
  return w;
}

async function send(id: string, customerId: string, at: string, type = 'CONVERSATION/CREATED' as const) {
  const t = toTransition(
    { id, type, timestamp: at, content: { customerId, conversationId: 'c1' } },
    new Date(),
  );
  await queues.transitions.add('transition', t, { jobId: transitionJobId(id) });
}

describe('the built worker process', () => {
  it('refuses to start on a missing or bad variable, naming it', async () => {
    const w = await startWorkerProcess(
      { ...env(), KLAVIYO_API_KEY: '', WORKER_CONCURRENCY: 'lots', GLADLY_API_URL: 'not a url' },
      false,
    );
    running.push(w);
    expect(await w.exited).toBe(1);
    expect(w.output()).toContain('KLAVIYO_API_KEY');
    expect(w.output()).toContain('WORKER_CONCURRENCY');
    expect(w.output()).toContain('GLADLY_API_URL');
    expect(w.output()).not.toContain(GLADLY_TOKEN);
  });

  it('answers /healthz and /readyz, and exits 0 on SIGTERM', async () => {
    const w = await start();
    const health = await fetch(`http://127.0.0.1:${w.port}/healthz`);
    expect(health.status).toBe(200);
    const metrics = await (await fetch(`http://127.0.0.1:${w.port}/metrics`)).text();
    expect(metrics).toContain('gk_process_cpu_user_seconds_total');
    w.child.kill('SIGTERM');
    expect(await w.exited).toBe(0);
  });

  it('after a kill -9 mid-delivery, the job runs again and Klaviyo sees the same unique_id', async () => {
    gladly.setCustomer('cust-kill', ['killed@example.com']);
    klaviyo.setLatency(1_500);
    const first = await start({ WORKER_LOCK_DURATION_MS: '2000' });
    await send('evt-kill', 'cust-kill', '2026-11-20T14:00:00Z');
    await waitFor(() => klaviyo.posts >= 1, { what: 'the first POST to be in flight' });
    first.child.kill('SIGKILL');
    await first.exited;
    klaviyo.setLatency(0);
    await start({ WORKER_LOCK_DURATION_MS: '2000' });
    await waitFor(async () => (await queues.deliveries.getCompletedCount()) === 1, {
      timeoutMs: 20_000,
      what: 'the delivery to complete after the kill',
    });
    expect(klaviyo.events).toHaveLength(1);
    expect(klaviyo.events[0]?.uniqueId).toBe('evt-kill');
    // The stand-in recorded the in-flight POST too: the re-run was deduped, not recorded twice.
    expect(klaviyo.posts).toBeGreaterThanOrEqual(2);
    expect(klaviyo.duplicates).toBe(klaviyo.posts - 1);
  });

  it('holds the Klaviyo rate limit globally across two worker processes', async () => {
    const emails = Array.from({ length: 40 }, (_, i) => `rate${i}@example.com`);
    gladly.setCustomer('cust-rate', emails);
    await start({ KLAVIYO_RATE_LIMIT_PER_SECOND: '10', GLADLY_RATE_LIMIT_PER_SECOND: '0' });
    await start({ KLAVIYO_RATE_LIMIT_PER_SECOND: '10', GLADLY_RATE_LIMIT_PER_SECOND: '0' });
    await send('evt-rate', 'cust-rate', '2026-11-20T14:00:00Z');
    await waitFor(() => klaviyo.events.length === 40, { timeoutMs: 20_000, what: '40 events' });
    const times = klaviyo.requestTimes.slice().sort((a, b) => a - b);
    // No sliding one-second window holds more than 2× the limit (fixed windows can abut), and the
    // drain as a whole stays near the limit.
    let worst = 0;
    for (let i = 0, j = 0; i < times.length; i++) {
      while ((times[i] ?? 0) - (times[j] ?? 0) >= 1_000) j++;
      worst = Math.max(worst, i - j + 1);
    }
    expect(worst).toBeLessThanOrEqual(20);
    const span = ((times.at(-1) ?? 0) - (times[0] ?? 0)) / 1000;
    expect(span).toBeGreaterThanOrEqual(2.5);
    expect(klaviyo.throttled).toBe(0);
  });
});
