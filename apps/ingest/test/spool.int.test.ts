import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { transitionJobId } from '@gk/queue';
import { type RedisServer, startRedisServer, uniquePrefix, waitFor } from '@gk/testing';
import { Redis } from 'ioredis';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import {
  bodyOf,
  freshEvent,
  metricValue,
  postWebhook,
  type RunningIngest,
  scrape,
  startIngest,
} from './helpers.js';

/** Gladly gives up after 15 s; the contract says a second or two, spooled or not. */
const ANSWER_BUDGET_MS = 2_000;

let redis: RedisServer;
let dir: string;

beforeAll(async () => {
  redis = await startRedisServer();
  dir = mkdtempSync(join(tmpdir(), 'gk-spool-int-'));
});

afterAll(async () => {
  await redis?.stop();
  rmSync(dir, { recursive: true, force: true });
});

async function timedPost(url: string, body: unknown) {
  const start = performance.now();
  const res = await postWebhook(url, body);
  return { res, ms: performance.now() - start, body: await bodyOf(res) };
}

async function readyz(url: string) {
  const res = await fetch(`${url}/readyz`);
  return {
    status: res.status,
    body: (await res.json()) as {
      status: string;
      reasons?: string[];
      warnings?: string[];
      spool?: { depth: number; maxEntries: number };
    },
  };
}

/**
 * Waits until the ingest's spool is empty; on a timeout the error carries what /readyz said last
 * and the ingest's last log lines, so a run that fails can be read without replaying it.
 */
async function waitForRelayed(ingest: RunningIngest, timeoutMs = 30_000): Promise<void> {
  let last: unknown;
  try {
    await waitFor(
      async () => {
        const ready = await readyz(ingest.url);
        last = ready.body;
        return ready.body.spool?.depth === 0;
      },
      { timeoutMs, what: 'the spool to be relayed' },
    );
  } catch (err) {
    const tail = ingest.logs.slice(-20).join('');
    throw new Error(
      `${(err as Error).message}\nlast /readyz: ${JSON.stringify(last)}\nlast log lines:\n${tail}`,
    );
  }
}

/** Event ids of the waiting transitions, oldest first (the order a worker takes them). */
async function waitingEventIds(ingest: RunningIngest): Promise<string[]> {
  const jobs = await ingest.queues.transitions.getWaiting(0, -1);
  return jobs.map((j) => j.data.eventId);
}

/** The sum of a counter over every series matching `labels` (e.g. over all event types). */
function total(text: string, name: string, labels: Record<string, string>): number {
  let sum = 0;
  for (const line of text.split('\n')) {
    if (!line.startsWith(`${name}{`)) continue;
    if (Object.entries(labels).every(([k, v]) => line.includes(`${k}="${v}"`))) {
      sum += Number(line.slice(line.lastIndexOf(' ') + 1));
    }
  }
  return sum;
}

describe('Redis down with the spool on', () => {
  let ingest: RunningIngest;

  beforeAll(async () => {
    ingest = await startIngest({
      redis: { url: redis.url },
      prefix: uniquePrefix('spool-on'),
      spool: { path: join(dir, 'on.spool'), maxEntries: 1_000 },
      relayRetryMs: { min: 50, max: 200 },
    });
  });
  afterAll(async () => {
    await ingest?.close();
  });

  const before = freshEvent();
  const during = [
    freshEvent(),
    freshEvent('conversation-closed.json'),
    freshEvent('conversation-reopened.json'),
    freshEvent(),
  ];

  it('answers 200 "spooled" within the budget, stays ready, and says why', async () => {
    expect((await timedPost(ingest.url, before)).body.status).toBe('accepted');
    await redis.kill();
    for (const event of during) {
      const { res, ms, body } = await timedPost(ingest.url, event);
      expect(res.status).toBe(200);
      expect(body).toEqual({ status: 'spooled', id: event.id, jobId: transitionJobId(event.id) });
      expect(ms).toBeLessThan(ANSWER_BUDGET_MS);
    }
    // A redelivery while down is spooled again; the relay finds it a duplicate.
    expect((await timedPost(ingest.url, during[0])).body.status).toBe('spooled');

    const ready = await readyz(ingest.url);
    expect(ready.status).toBe(200);
    expect(ready.body.status).toBe('ready');
    expect(ready.body.spool).toEqual({ depth: 5, maxEntries: 1_000 });
    expect(ready.body.warnings?.join(' ')).toMatch(/redis.*spooled locally/i);
    // Never the raw Redis error, with its address and port.
    expect(JSON.stringify(ready.body)).not.toContain(String(redis.port));
    expect(JSON.stringify(ready.body)).not.toMatch(/127\.0\.0\.1|ECONNREFUSED/);

    const text = await scrape(ingest.url);
    expect(metricValue(text, 'gk_spool_depth', {})).toBe(5);
    expect(metricValue(text, 'gk_spool_capacity', {})).toBe(1_000);
    expect(metricValue(text, 'gk_spool_spooled_total', { queue: 'transitions' })).toBe(5);
    expect(total(text, 'gk_webhooks_received_total', { outcome: 'spooled' })).toBe(5);
    expect(total(text, 'gk_webhooks_received_total', { outcome: 'unavailable' })).toBe(0);
  });

  it('relays everything in order once Redis is back, each job once, and the spool empties', async () => {
    await redis.restart();
    await waitForRelayed(ingest);
    expect(await waitingEventIds(ingest)).toEqual([before.id, ...during.map((e) => e.id)]);
    const text = await scrape(ingest.url);
    expect(metricValue(text, 'gk_spool_relayed_total', { queue: 'transitions', outcome: 'accepted' })).toBe(
      4,
    );
    expect(metricValue(text, 'gk_spool_relayed_total', { queue: 'transitions', outcome: 'duplicate' })).toBe(
      1,
    );
    const ready = await readyz(ingest.url);
    expect(ready.status).toBe(200);
    expect(ready.body.warnings).toBeUndefined();
    // Straight to Redis again.
    expect((await timedPost(ingest.url, freshEvent())).body.status).toBe('accepted');
    expect((await timedPost(ingest.url, during[1])).body.status).toBe('duplicate');
    const messages = ingest.logEntries().map((e) => e.msg);
    expect(messages).toContain('redis did not store a webhook; spooling');
    expect(messages).toContain('spool relayed: every spooled entry is in Redis');
  });

  it('spools a webhook Redis accepts but does not acknowledge in time; the late add is no duplicate', async () => {
    const admin = new Redis(redis.url);
    try {
      const event = freshEvent();
      await admin.call('CLIENT', 'PAUSE', '2500', 'ALL');
      const { res, ms, body } = await timedPost(ingest.url, event);
      expect(res.status).toBe(200);
      expect(body.status).toBe('spooled');
      expect(ms).toBeLessThan(ANSWER_BUDGET_MS);
      await admin.call('CLIENT', 'UNPAUSE');
      await waitForRelayed(ingest);
      const ids = await waitingEventIds(ingest);
      expect(ids.filter((id) => id === event.id)).toHaveLength(1);
    } finally {
      await admin.call('CLIENT', 'UNPAUSE').catch(() => {});
      admin.disconnect();
    }
  });
});

describe('Redis down with the spool full', () => {
  let ingest: RunningIngest;

  beforeAll(async () => {
    ingest = await startIngest({
      redis: { url: redis.url },
      prefix: uniquePrefix('spool-full'),
      spool: { path: join(dir, 'full.spool'), maxEntries: 3 },
      relayRetryMs: { min: 50, max: 200 },
    });
  });
  afterAll(async () => {
    await ingest?.close();
  });

  it('answers 503 with Retry-After once full, and reports not ready naming the full spool', async () => {
    await redis.kill();
    const spooled = [freshEvent(), freshEvent(), freshEvent()];
    for (const event of spooled) expect((await timedPost(ingest.url, event)).body.status).toBe('spooled');
    const refused = freshEvent();
    const { res, ms } = await timedPost(ingest.url, refused);
    expect(res.status).toBe(503);
    expect(Number(res.headers.get('retry-after'))).toBeGreaterThan(0);
    expect(ms).toBeLessThan(ANSWER_BUDGET_MS);

    const ready = await readyz(ingest.url);
    expect(ready.status).toBe(503);
    expect(ready.body.reasons?.join(' ')).toMatch(/spool is full/);
    expect(ready.body.spool).toEqual({ depth: 3, maxEntries: 3 });
    const text = await scrape(ingest.url);
    expect(metricValue(text, 'gk_spool_rejected_total', { reason: 'full' })).toBe(1);
    expect(total(text, 'gk_webhooks_received_total', { outcome: 'unavailable' })).toBe(1);

    await redis.restart();
    await waitForRelayed(ingest);
    // What was spooled arrived; what was refused did not (Gladly retries it later).
    expect(await waitingEventIds(ingest)).toEqual(spooled.map((e) => e.id));
    expect(await ingest.queues.transitions.getJob(transitionJobId(refused.id))).toBeUndefined();
  });
});
