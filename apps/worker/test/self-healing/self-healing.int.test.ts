/**
 * Self-healing end to end, on the built services (startStack: redis-server, built ingest and
 * workers, Gladly and Klaviyo stand-ins). The Gladly stand-in sends the webhooks as Gladly does:
 * retries at 30 s, 5 min, 30 min and 1 h scaled by TIME_FACTOR (the hour becomes 3.6 s), then it
 * deactivates the webhook; its Events API lags real time by EVENTS_DELAY_MS.
 */
import { createGladlyWebhooksClient } from '@gk/gladly';
import type { GladlyEventRecord } from '@gk/stand-ins';
import { sleep, uniquePrefix, waitFor } from '@gk/testing';
import { afterEach, describe, expect, it } from 'vitest';
import { GLADLY_TOKEN, GLADLY_USER } from '../harness.js';
import { HOOK_PASSWORD, HOOK_USER, type Stack, startStack } from '../system/stack.js';

const TIME_FACTOR = 0.001;
const RETRY_HOUR_MS = 3_600_000 * TIME_FACTOR;
const EVENTS_DELAY_MS = 500;
const METRIC = 'In Gladly Conversation';

interface Sent {
  id: string;
  customer: number;
  type: 'CONVERSATION/CREATED' | 'CONVERSATION/CLOSED' | 'CONVERSATION/REOPENED';
  timestamp: string;
}

let stack: Stack | undefined;

afterEach(async () => {
  await stack?.close();
  stack = undefined;
});

const emailsOf = (run: string, c: number) => [
  `${run}-${c}@example.test`,
  ...(c % 3 === 0 ? [`${run}-${c}-alt@example.test`] : []),
];

async function startSelfHealingStack(run: string, customers: number, workerEnv: Record<string, string>) {
  const s = await startStack({
    prefix: uniquePrefix(run),
    workers: 2,
    webhookUrl: true,
    workerEnv: {
      GLADLY_RATE_LIMIT_PER_SECOND: '50',
      KLAVIYO_RATE_LIMIT_PER_SECOND: '0',
      RECONCILE_LAG_SECONDS: '1',
      ...workerEnv,
    },
  });
  stack = s;
  for (let c = 0; c < customers; c++) s.gladly.setCustomer(`${run}-cust-${c}`, emailsOf(run, c));
  s.gladly.webhooks.configure({ timeFactor: TIME_FACTOR });
  s.gladly.setEventsDelay(EVENTS_DELAY_MS);
  const hook = await createGladlyWebhooksClient({
    baseUrl: s.gladly.url,
    user: GLADLY_USER,
    token: GLADLY_TOKEN,
  }).create({
    name: 'bridge',
    url: `${s.ingestUrl}/webhooks/gladly`,
    events: ['CONVERSATION/CREATED', 'CONVERSATION/CLOSED', 'CONVERSATION/REOPENED'],
    credentials: { username: HOOK_USER, password: HOOK_PASSWORD },
  });
  return { stack: s, hookId: hook.id };
}

/** Gladly records an event and sends it (the stand-in's sender), as a customer's conversation moves. */
function makeEmitter(s: Stack, run: string) {
  const sent: Sent[] = [];
  const next = new Map<number, number>();
  return {
    sent,
    emit(customer: number): Sent {
      const n = next.get(customer) ?? 0;
      next.set(customer, n + 1);
      const type =
        n === 0 ? 'CONVERSATION/CREATED' : n % 2 === 1 ? 'CONVERSATION/CLOSED' : 'CONVERSATION/REOPENED';
      const e: Sent = { id: `${run}-ev-${sent.length}`, customer, type, timestamp: new Date().toISOString() };
      sent.push(e);
      const record: GladlyEventRecord = {
        id: e.id,
        type: e.type,
        timestamp: e.timestamp,
        initiator: { id: 'agent-1', type: 'AGENT' },
        content: { customerId: `${run}-cust-${customer}`, conversationId: `${run}-conv-${customer}` },
      };
      s.gladly.emitEvents(record);
      return e;
    },
  };
}

async function workerMetric(s: Stack, name: string, labels: Record<string, string> = {}): Promise<number> {
  let sum = 0;
  for (const w of s.workers()) {
    const text = await (await fetch(`http://127.0.0.1:${w.port}/metrics`)).text();
    for (const line of text.split('\n')) {
      if (!line.startsWith(`${name}{`) && !line.startsWith(`${name} `)) continue;
      if (Object.entries(labels).every(([k, v]) => line.includes(`${k}="${v}"`))) {
        sum += Number(line.slice(line.lastIndexOf(' ') + 1));
      }
    }
  }
  return sum;
}

async function ingestMetric(s: Stack, name: string, labels: Record<string, string> = {}): Promise<number> {
  const text = await (await fetch(`${s.ingestUrl}/metrics`)).text();
  let sum = 0;
  for (const line of text.split('\n')) {
    if (!line.startsWith(`${name}{`) && !line.startsWith(`${name} `)) continue;
    if (Object.entries(labels).every(([k, v]) => line.includes(`${k}="${v}"`))) {
      sum += Number(line.slice(line.lastIndexOf(' ') + 1));
    }
  }
  return sum;
}

/**
 * Klaviyo ends as a run without any loss would leave it: each (event, email) recorded exactly once
 * with its metric and time, and every profile in the state of its customer's newest transition.
 */
function expectKlaviyoComplete(s: Stack, run: string, sent: readonly Sent[]): void {
  const expected = new Map<string, Sent>();
  for (const e of sent) for (const email of emailsOf(run, e.customer)) expected.set(`${e.id} ${email}`, e);
  const mine = s.klaviyo.events.filter((r) => expected.has(`${r.uniqueId} ${r.email}`));
  expect(mine.length, 'each (event, email) recorded once').toBe(expected.size);
  expect(new Set(mine.map((r) => `${r.uniqueId} ${r.email}`)).size).toBe(expected.size);
  for (const r of mine) {
    const e = expected.get(`${r.uniqueId} ${r.email}`) as Sent;
    expect(r.metricName).toBe(
      e.type === 'CONVERSATION/CLOSED' ? 'closed conversation in Gladly' : 'started conversation in Gladly',
    );
    expect(Date.parse(r.time)).toBe(Date.parse(e.timestamp));
  }
  const customers = new Set(sent.map((e) => e.customer));
  for (const c of customers) {
    const newest = sent.filter((e) => e.customer === c).at(-1) as Sent;
    for (const email of emailsOf(run, c)) {
      expect(s.klaviyo.profile(email)?.properties[METRIC], `customer ${c}`).toBe(
        newest.type !== 'CONVERSATION/CLOSED',
      );
    }
  }
}

const pairsOf = (run: string, sent: readonly Sent[]) =>
  sent.reduce((n, e) => n + emailsOf(run, e.customer).length, 0);

async function expectOneJobPerEvent(s: Stack, sent: readonly Sent[]): Promise<void> {
  const monitor = s.monitor();
  try {
    await waitFor(async () => (await monitor.counts()).idle, { timeoutMs: 30_000, what: 'queues idle' });
    const counts = await monitor.counts();
    expect(counts.transitions.completed, 'one transition job per event').toBe(sent.length);
    expect((counts.transitions.failed ?? 0) + (counts.deliveries.failed ?? 0)).toBe(0);
  } finally {
    await monitor.close();
  }
}

describe('self-healing, on the built services', () => {
  it('an ingest down longer than Gladly retries: the watchdog re-enables the webhook and the gap is recovered', async () => {
    const run = 'outage';
    const CUSTOMERS = 24;
    // Continuous reconciliation off: only the watchdog's recovery can close the gap.
    const { stack: s, hookId } = await startSelfHealingStack(run, CUSTOMERS, {
      GLADLY_WEBHOOK_WATCH_SECONDS: '1',
      RECONCILE_INTERVAL_SECONDS: '0',
    });
    const { sent, emit } = makeEmitter(s, run);
    const emitFor = async (ms: number, perSecond: number) => {
      const end = Date.now() + ms;
      while (Date.now() < end) {
        emit(sent.length % CUSTOMERS);
        await sleep(1000 / perSecond);
      }
    };

    await emitFor(2_000, 20);
    await waitFor(() => s.klaviyo.events.length >= pairsOf(run, sent), {
      timeoutMs: 30_000,
      what: 'the events before the outage in Klaviyo',
    });

    await s.stopIngest('graceful');
    const downAt = Date.now();
    // Events keep coming while the ingest is away; Gladly gives up after its (scaled) hour.
    await emitFor(RETRY_HOUR_MS + 2_500, 10);
    await waitFor(() => s.gladly.webhooks.get(hookId)?.enabled === false, {
      timeoutMs: 10_000,
      what: 'Gladly to deactivate the webhook',
    });
    const disabledAt = s.gladly.webhooks.get(hookId)?.disabledAtDueToRetryLimit;
    expect(disabledAt).toBeDefined();
    await emitFor(1_000, 10);
    const watchdogStateWhileDown = await workerMetric(s, 'gk_gladly_webhook_state', {
      state: 'disabled_retry_limit',
    });

    await s.startIngest();
    const backAt = Date.now();
    const sentBeforeReturn = sent.length;
    await emitFor(2_000, 10);

    const pairs = pairsOf(run, sent);
    await waitFor(() => s.klaviyo.events.length >= pairs, {
      timeoutMs: 60_000,
      intervalMs: 50,
      what: `${pairs} events in Klaviyo`,
    });
    // The last event Gladly sent before the ingest's return: when did Klaviyo have it all?
    const beforeReturn = new Set(sent.slice(0, sentBeforeReturn).map((e) => e.id));
    const completeAt = Math.max(
      ...s.klaviyo.events.filter((r) => beforeReturn.has(r.uniqueId)).map((r) => r.receivedAt),
    );
    await sleep(1_500);
    expectKlaviyoComplete(s, run, sent);
    await expectOneJobPerEvent(s, sent);

    expect(s.gladly.webhooks.get(hookId)?.enabled, 'the webhook is enabled again').toBe(true);
    expect(await workerMetric(s, 'gk_gladly_webhook_reenabled_total')).toBe(1);
    expect(watchdogStateWhileDown, 'the watchdog saw the deactivation').toBeGreaterThanOrEqual(1);
    expect(await workerMetric(s, 'gk_gladly_webhook_enable_failures_total')).toBeGreaterThan(0);
    // Recovered = exactly the events no webhook delivery got a 2xx for.
    const delivered = new Set(
      s.gladly.webhooks.deliveries.filter((d) => d.status >= 200 && d.status < 300).map((d) => d.eventId),
    );
    const undelivered = sent.filter((e) => !delivered.has(e.id)).length;
    const recovered = await workerMetric(s, 'gk_reconcile_recovered_total', { trigger: 'watchdog' });
    expect(undelivered).toBeGreaterThan(20);
    expect(recovered).toBe(undelivered);
    console.log(
      `self-healing outage: ${sent.length} events (${pairs} deliveries); ingest down ${((backAt - downAt) / 1000).toFixed(1)} s; ` +
        `webhook deactivated after ${((Date.parse(disabledAt ?? '') - downAt) / 1000).toFixed(1)} s; ` +
        `undelivered by webhook ${undelivered}, recovered by reconciliation ${recovered}; ` +
        `Klaviyo complete for everything sent before the return ${completeAt - backAt} ms after the ingest was back ` +
        `(backfill-flagged records ${s.klaviyo.events.filter((r) => r.backfill).length}); duplicate posts to Klaviyo ${s.klaviyo.duplicates}`,
    );
  }, 180_000);

  it('Gladly drops 10% of deliveries: reconciliation has all of them in Klaviyo within interval + lag + delay + drain', async () => {
    const run = 'drops';
    const CUSTOMERS = 30;
    const INTERVAL_S = 3;
    const LAG_S = 1;
    const DRAIN_MS = 5_000;
    const { stack: s } = await startSelfHealingStack(run, CUSTOMERS, {
      GLADLY_WEBHOOK_WATCH_SECONDS: '0',
      RECONCILE_INTERVAL_SECONDS: String(INTERVAL_S),
      RECONCILE_LAG_SECONDS: String(LAG_S),
    });
    // The first run only sets the watermark (now minus the lag): wait for it.
    await waitFor(async () => (await workerMetric(s, 'gk_reconcile_watermark_timestamp_seconds')) > 0, {
      timeoutMs: 20_000,
      what: 'the first reconciliation',
    });
    s.gladly.webhooks.configure({ dropRate: 0.1 });
    const { sent, emit } = makeEmitter(s, run);
    for (let i = 0; i < 200; i++) {
      emit(i % CUSTOMERS);
      await sleep(50);
    }
    const lastAt = Date.now();
    const pairs = pairsOf(run, sent);
    const budgetMs = INTERVAL_S * 1000 + LAG_S * 1000 + EVENTS_DELAY_MS + DRAIN_MS;
    await waitFor(() => s.klaviyo.events.length >= pairs, {
      timeoutMs: budgetMs,
      intervalMs: 50,
      what: `${pairs} events in Klaviyo within ${budgetMs} ms of the last event`,
    });
    const completeMs = Date.now() - lastAt;
    await sleep(1_000);
    expectKlaviyoComplete(s, run, sent);
    await expectOneJobPerEvent(s, sent);
    const dropped = new Set(
      s.gladly.webhooks.deliveries.filter((d) => d.status === -1).map((d) => d.eventId),
    );
    expect(dropped.size).toBeGreaterThan(5);
    expect(await workerMetric(s, 'gk_reconcile_recovered_total', { trigger: 'schedule' })).toBe(dropped.size);
    console.log(
      `self-healing drops: ${sent.length} events, ${dropped.size} dropped by Gladly, all recovered; Klaviyo complete ${completeMs} ms after the last event (budget ${budgetMs} ms)`,
    );
  }, 120_000);

  it('reconciliation racing the webhooks on the same events makes one job per event', async () => {
    const run = 'race';
    const CUSTOMERS = 20;
    // Lag 0 and a 1 s interval: every event is read back while its webhook is still arriving.
    const { stack: s } = await startSelfHealingStack(run, CUSTOMERS, {
      GLADLY_WEBHOOK_WATCH_SECONDS: '0',
      RECONCILE_INTERVAL_SECONDS: '1',
      RECONCILE_LAG_SECONDS: '0',
    });
    s.gladly.setEventsDelay(0);
    // Gladly sends each webhook 0–2 s after the event: reconciliation often reads it first.
    s.gladly.webhooks.configure({ maxSendDelayMs: 2_000 });
    await waitFor(async () => (await workerMetric(s, 'gk_reconcile_watermark_timestamp_seconds')) > 0, {
      timeoutMs: 20_000,
      what: 'the first reconciliation',
    });
    const { sent, emit } = makeEmitter(s, run);
    for (let i = 0; i < 150; i++) {
      emit(i % CUSTOMERS);
      await sleep(20);
    }
    const pairs = pairsOf(run, sent);
    await waitFor(() => s.klaviyo.events.length >= pairs, {
      timeoutMs: 30_000,
      what: `${pairs} events in Klaviyo`,
    });
    await sleep(3_000);
    expectKlaviyoComplete(s, run, sent);
    await expectOneJobPerEvent(s, sent);
    const read = await workerMetric(s, 'gk_reconcile_events_read_total');
    const recovered = await workerMetric(s, 'gk_reconcile_recovered_total');
    expect(read, 'reconciliation read the events the webhooks carried').toBeGreaterThanOrEqual(sent.length);
    // Both orders happened: some events were stored first by reconciliation, some by their webhook.
    expect(recovered).toBeGreaterThan(0);
    expect(recovered).toBeLessThan(sent.length);
    const webhookAccepted = await ingestMetric(s, 'gk_webhooks_received_total', { outcome: 'accepted' });
    const webhookDuplicates = await ingestMetric(s, 'gk_webhooks_received_total', { outcome: 'duplicate' });
    expect(webhookDuplicates, 'webhooks that found their event already stored').toBeGreaterThan(0);
    console.log(
      `self-healing race: ${sent.length} events, read back ${read} times by reconciliation, stored first by reconciliation ${recovered}; webhooks answered accepted ${webhookAccepted}, duplicate ${webhookDuplicates}; one job each`,
    );
  }, 120_000);
});
