import { transitionJobId } from '@gk/queue';
import { type RedisServer, sleep, startRedisServer, uniquePrefix, waitFor } from '@gk/testing';
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

/** The contract: a webhook that cannot be stored is answered 503 within a second or two, never a hang. */
const ANSWER_BUDGET_MS = 2_000;

let redis: RedisServer;
let ingest: RunningIngest;

beforeAll(async () => {
  redis = await startRedisServer();
  ingest = await startIngest({ redis: { url: redis.url }, prefix: uniquePrefix('ingest-outage') });
});

afterAll(async () => {
  await ingest?.close();
  await redis?.stop();
});

async function timed<T>(fn: () => Promise<T>): Promise<{ value: T; ms: number }> {
  const start = performance.now();
  const value = await fn();
  return { value, ms: performance.now() - start };
}

const readyStatus = async () => (await fetch(`${ingest.url}/readyz`)).status;

describe('Redis outage with the spool off (INGEST_SPOOL_ENABLED=false)', () => {
  const beforeOutage = freshEvent();
  const duringOutage = freshEvent('conversation-closed.json');

  it('accepts while Redis is up', async () => {
    const res = await postWebhook(ingest.url, beforeOutage);
    expect((await bodyOf(res)).status).toBe('accepted');
  });

  it('answers 503 with Retry-After within 2 s while Redis is down, and says not ready', async () => {
    await redis.kill();
    const { value: res, ms } = await timed(() => postWebhook(ingest.url, duringOutage));
    expect(res.status).toBe(503);
    expect(ms).toBeLessThan(ANSWER_BUDGET_MS);
    expect(Number(res.headers.get('retry-after'))).toBeGreaterThan(0);
    expect(res.headers.get('content-type')).toMatch(/^application\/problem\+json/);
    expect((await bodyOf(res)).status).toBe(503);

    const { value: ready, ms: readyMs } = await timed(() => fetch(`${ingest.url}/readyz`));
    expect(ready.status).toBe(503);
    expect(readyMs).toBeLessThan(ANSWER_BUDGET_MS);
    const body = (await ready.json()) as { status: string; reasons: string[] };
    expect(body.status).toBe('not ready');
    expect(body.reasons.join(' ')).toMatch(/redis/i);
    // A probe answer can be public: never the raw error, with Redis' address and port in it.
    const said = JSON.stringify(body);
    expect(said).not.toContain(String(redis.port));
    expect(said).not.toContain('127.0.0.1');
    expect(said).not.toMatch(/ECONNREFUSED/);

    // Liveness and metrics do not depend on Redis.
    expect((await fetch(`${ingest.url}/healthz`)).status).toBe(200);
    const { value: text, ms: scrapeMs } = await timed(() => scrape(ingest.url));
    expect(scrapeMs).toBeLessThan(ANSWER_BUDGET_MS);
    expect(metricValue(text, 'gk_webhooks_received_total', { outcome: 'unavailable' })).toBe(1);
    expect(text).not.toContain('gk_queue_jobs{');
  });

  it('keeps answering 503 quickly, never hanging, for as long as the outage lasts', async () => {
    const answers = await Promise.all(
      Array.from({ length: 5 }, () => timed(() => postWebhook(ingest.url, freshEvent()))),
    );
    for (const { value, ms } of answers) {
      expect(value.status).toBe(503);
      expect(ms).toBeLessThan(ANSWER_BUDGET_MS);
    }
  });

  it('logs the outage once, not once per reconnect attempt', async () => {
    // Long enough for several reconnect attempts, each of which fails with an 'error' event.
    await sleep(1_500);
    const count = (msg: string) => ingest.logEntries().filter((e) => e.msg === msg).length;
    expect(count('redis connection lost')).toBe(1);
    expect(count('redis unreachable')).toBe(1);
  });

  it('accepts again once Redis is back; what was acknowledged before survived (AOF)', async () => {
    await redis.restart();
    await waitFor(async () => (await readyStatus()) === 200, { timeoutMs: 10_000, what: 'ready again' });
    const retried = await postWebhook(ingest.url, duringOutage);
    expect(retried.status).toBe(200);
    expect((await bodyOf(retried)).status).toBe('accepted');
    const redelivered = await postWebhook(ingest.url, beforeOutage);
    expect((await bodyOf(redelivered)).status).toBe('duplicate');
    expect(ingest.logEntries().some((e) => e.msg === 'redis reachable again')).toBe(true);
  });
});

describe('Redis that accepts connections but does not answer, spool off', () => {
  it('answers 503 within 2 s; the late add still dedupes the retry', async () => {
    const admin = new Redis(redis.url);
    try {
      const event = freshEvent();
      // Every other client's commands wait until the pause ends: a hung Redis, as seen from the ingest.
      await admin.call('CLIENT', 'PAUSE', '2500', 'ALL');
      const { value: res, ms } = await timed(() => postWebhook(ingest.url, event));
      expect(res.status).toBe(503);
      expect(res.headers.get('retry-after')).toBeTruthy();
      expect(ms).toBeLessThan(ANSWER_BUDGET_MS);
      await admin.call('CLIENT', 'UNPAUSE');
      await waitFor(async () => (await readyStatus()) === 200, { timeoutMs: 10_000, what: 'ready again' });
      // Gladly retries later: one job either way, whether or not the timed-out add landed.
      const retry = await postWebhook(ingest.url, event);
      expect(retry.status).toBe(200);
      expect(['accepted', 'duplicate']).toContain((await bodyOf(retry)).status);
      expect(await ingest.queues.transitions.getJob(transitionJobId(event.id))).toBeDefined();
    } finally {
      await admin.call('CLIENT', 'UNPAUSE').catch(() => {});
      admin.disconnect();
    }
  });
});
