/**
 * The reconciler and the webhook watchdog in-process, against real Redis and the Gladly stand-in:
 * their error paths (Events API refusals, a gap past 24 h, invalid lines, a webhook that is
 * missing, disabled by hand or cannot be enabled yet).
 */
import { createServer } from 'node:http';
import type { AddressInfo } from 'node:net';
import { createGladlyWebhooksClient, type GladlyWebhooksClient, streamGladlyEvents } from '@gk/gladly';
import {
  type BridgeQueues,
  closeQueues,
  createQueues,
  createWorkerConnection,
  queuePrefix,
  type RedisConnection,
  transitionJobId,
} from '@gk/queue';
import {
  closeServer,
  createHealthServer,
  createLogger,
  createMetricsRegistry,
  listen,
  Readiness,
} from '@gk/runtime';
import { type GladlyEventRecord, type GladlyStandIn, startGladlyStandIn } from '@gk/stand-ins';
import { type TestRedis, uniquePrefix, useTestRedis } from '@gk/testing';
import type { Registry } from 'prom-client';
import { afterAll, afterEach, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import { createSelfHealingMetrics, type SelfHealingMetrics } from '../../src/self-healing/metrics.js';
import { createReconciler, RECONCILE_OVERLAP_MS } from '../../src/self-healing/reconciler.js';
import { createWebhookWatchdog, RECOVERY_MARGIN_MS } from '../../src/self-healing/webhook-watchdog.js';

const USER = 'api@acme.test';
const TOKEN = 'reconciler-token-6a2b';

let redis: TestRedis;
let connection: RedisConnection;
let gladly: GladlyStandIn;
let queues: BridgeQueues;
let registry: Registry;
let metrics: SelfHealingMetrics;
let prefix: string;
const logger = createLogger({ name: 'test', level: 'silent' });

beforeAll(async () => {
  redis = await useTestRedis();
  connection = createWorkerConnection(redis.target, 'reconciler-test');
});
afterAll(async () => {
  connection.disconnect();
  await redis.stop();
});
beforeEach(async () => {
  gladly = await startGladlyStandIn({ user: USER, token: TOKEN });
  prefix = queuePrefix(uniquePrefix('reconcile'), redis.cluster);
  queues = createQueues(connection, prefix);
  registry = createMetricsRegistry('worker');
  metrics = createSelfHealingMetrics(registry);
});
afterEach(async () => {
  await closeQueues(queues);
  await gladly.close();
});

const event = (id: string, type: string, at: number, customerId = 'cust-1'): GladlyEventRecord => ({
  id,
  type,
  timestamp: new Date(at).toISOString(),
  initiator: { id: 'agent-1', type: 'AGENT' },
  content: { customerId, conversationId: 'conv-1' },
});

function reconciler(now: () => number = Date.now, lagMs = 1_000) {
  return createReconciler({
    connection,
    queues,
    readEvents: (query) => streamGladlyEvents({ baseUrl: gladly.url, user: USER, token: TOKEN }, query),
    watermarkKey: `${prefix}:test-watermark`,
    lagMs,
    gladlyRatePerSecond: 5,
    metrics,
    logger,
    now,
  });
}

async function metric(name: string, labels: Record<string, string> = {}): Promise<number> {
  const found = (await registry.getMetricsAsJSON()).find((m) => m.name === name);
  return (found?.values ?? [])
    .filter((v) => Object.entries(labels).every(([k, want]) => String(v.labels[k]) === want))
    .reduce((n, v) => n + v.value, 0);
}

describe('reconciler', () => {
  it('starts at now minus the lag, then stores transitions and customer changes once', async () => {
    const r = reconciler();
    expect(await r.runScheduled()).toBeNull();
    const now = Date.now();
    gladly.recordEvents(
      event('before-start', 'CONVERSATION/CREATED', now - RECONCILE_OVERLAP_MS - 120_000),
      event('rc-1', 'CONVERSATION/CREATED', now - 500),
      event('rc-2', 'CUSTOMER_PROFILE/UPDATED', now - 400),
      event('rc-note', 'CONVERSATION/NOTE_CREATED', now - 300),
    );
    await new Promise((resolve) => setTimeout(resolve, 1_100));
    const first = await r.runScheduled();
    expect(first?.recovered).toEqual({ transitions: 1, customerChanges: 1 });
    expect(first?.skipped).toBe(1);
    expect(await queues.transitions.getJob(transitionJobId('before-start'))).toBeUndefined();
    expect(await queues.transitions.getJob(transitionJobId('rc-1'))).toBeDefined();
    // The next run reads the overlap again: nothing new.
    const second = await r.runScheduled();
    expect(second?.recovered).toEqual({ transitions: 0, customerChanges: 0 });
    expect(second?.alreadyPresent).toBe(2);
    expect(await metric('gk_reconcile_recovered_total', { trigger: 'schedule' })).toBe(2);
    // The shared Gladly limiter was spent (BullMQ's counter of the transitions queue).
    expect(await connection.exists(queues.transitions.toKey('limiter'))).toBe(1);
  });

  it('counts invalid lines and a failed Events API answer; a failed run leaves the watermark', async () => {
    const r = reconciler();
    await r.runScheduled();
    const key = `${prefix}:test-watermark`;
    const mark = await connection.get(key);
    gladly.recordEvents({
      id: 'bad',
      type: 'CONVERSATION/CLOSED',
      timestamp: new Date(Date.now() - 500).toISOString(),
    });
    await new Promise((resolve) => setTimeout(resolve, 1_100));
    expect((await r.runScheduled())?.invalid).toBe(1);

    gladly.setCredentials(USER, 'rotated');
    const before = await connection.get(key);
    await expect(r.runScheduled()).rejects.toThrow(/credentials/);
    expect(await connection.get(key)).toBe(before);
    expect(Number(before)).toBeGreaterThan(Number(mark));
    expect(await metric('gk_reconcile_runs_total', { trigger: 'schedule', outcome: 'failed' })).toBe(1);
  });

  it("says so when its gap is older than Gladly's 24 h, reads what is left and moves on", async () => {
    const key = `${prefix}:test-watermark`;
    await connection.set(key, String(Date.now() - 30 * 3600_000));
    gladly.recordEvents(event('recent', 'CONVERSATION/CREATED', Date.now() - 3600_000));
    const r = reconciler();
    const summary = await r.runScheduled();
    expect(summary?.lostSeconds).toBeGreaterThan(5 * 3600);
    expect(summary?.recovered.transitions).toBe(1);
    expect(r.warnings()[0]).toMatch(/24 h/);
    // The worker's /readyz shows it as a warning, still ready.
    const server = createHealthServer({ readiness: new Readiness(), warnings: () => r.warnings() });
    await listen(server, 0, '127.0.0.1');
    try {
      const res = await fetch(`http://127.0.0.1:${(server.address() as AddressInfo).port}/readyz`);
      expect(res.status).toBe(200);
      const body = (await res.json()) as { status: string; warnings?: string[] };
      expect(body.status).toBe('ready');
      expect(body.warnings?.[0]).toMatch(/skipped .* older than Gladly's 24 h window/);
    } finally {
      await closeServer(server);
    }
    expect(await metric('gk_reconcile_gap_lost_total')).toBe(1);
    expect(Number(await connection.get(key))).toBeGreaterThan(Date.now() - 5_000);
    // The next run is inside the window again: the warning clears.
    await r.runScheduled();
    expect(r.warnings()).toEqual([]);
  });
});

describe('webhook watchdog', () => {
  const url = 'http://127.0.0.1:1/webhooks/gladly';
  let client: GladlyWebhooksClient;
  let recoveries: { fromMs: number; key: string; delayMs: number }[];
  beforeEach(() => {
    client = createGladlyWebhooksClient({ baseUrl: gladly.url, user: USER, token: TOKEN });
    recoveries = [];
  });
  const watchdog = (webhooks = client, hookUrl = url) =>
    createWebhookWatchdog({
      webhooks,
      url: hookUrl,
      metrics,
      logger,
      afterEnableDelayMs: 2_000,
      queueRecovery: async (fromMs, key, delayMs) => {
        recoveries.push({ fromMs, key, delayMs });
      },
    });

  it('reports a missing webhook and a Gladly it cannot read', async () => {
    expect((await watchdog()()).state).toBe('missing');
    expect(await metric('gk_gladly_webhook_state', { state: 'missing' })).toBe(1);
    const wrong = createGladlyWebhooksClient({ baseUrl: gladly.url, user: USER, token: 'wrong' });
    expect((await watchdog(wrong)()).state).toBe('unknown');
    expect(await metric('gk_gladly_webhook_state', { state: 'missing' })).toBe(0);
  });

  it('leaves a webhook disabled by hand alone', async () => {
    await gladly.webhooks.create({
      name: 'bridge',
      url: 'https://bridge.example/webhooks/gladly',
      events: ['CONVERSATION/CREATED'],
      enabled: false,
    });
    expect(await watchdog(client, 'https://bridge.example/webhooks/gladly')()).toEqual({
      state: 'disabled',
      reenabled: false,
    });
    expect(recoveries).toEqual([]);
    expect(await metric('gk_gladly_webhook_missing_events')).toBe(5);
  });

  it('after a deactivation: queues the recovery, retries the enable while the PING fails, then re-enables', async () => {
    let status = 200;
    const receiver = createServer((req, res) => {
      req.resume();
      req.on('end', () => res.writeHead(status).end());
    });
    await new Promise<void>((resolve) => receiver.listen(0, '127.0.0.1', resolve));
    try {
      const hookUrl = `http://127.0.0.1:${(receiver.address() as AddressInfo).port}/webhooks/gladly`;
      gladly.webhooks.configure({ timeFactor: 0.00001 });
      const hook = await gladly.webhooks.create({
        name: 'bridge',
        url: hookUrl,
        events: ['CONVERSATION/CREATED'],
      });
      status = 503;
      gladly.emitEvents(event('lost', 'CONVERSATION/CREATED', Date.now()));
      const deadline = Date.now() + 5_000;
      while (gladly.webhooks.get(hook.id)?.enabled && Date.now() < deadline)
        await new Promise((r) => setTimeout(r, 20));
      const disabledAt = Date.parse(gladly.webhooks.get(hook.id)?.disabledAtDueToRetryLimit ?? '');
      expect(disabledAt).toBeGreaterThan(0);

      const run = watchdog(client, hookUrl);
      expect(await run()).toEqual({ state: 'disabled_retry_limit', reenabled: false });
      const fromMs = disabledAt - RECOVERY_MARGIN_MS;
      expect(recoveries).toEqual([{ fromMs, key: `${disabledAt}-disabled`, delayMs: 0 }]);
      expect(await metric('gk_gladly_webhook_enable_failures_total')).toBe(1);

      status = 200;
      expect(await run()).toEqual({ state: 'enabled', reenabled: true });
      expect(recoveries.at(-1)).toEqual({ fromMs, key: `${disabledAt}-enabled`, delayMs: 2_000 });
      expect(await metric('gk_gladly_webhook_reenabled_total')).toBe(1);
      expect(await metric('gk_gladly_webhook_state', { state: 'enabled' })).toBe(1);
      expect(await metric('gk_gladly_webhook_state', { state: 'disabled_retry_limit' })).toBe(0);
    } finally {
      receiver.closeAllConnections();
      await new Promise((resolve) => receiver.close(resolve));
    }
  });
});
