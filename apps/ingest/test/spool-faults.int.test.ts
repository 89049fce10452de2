/**
 * The spool's disk failing under the relay and the webhook path (through the spool's fault seam:
 * EIO on reads, ENOSPC on writes, half-written records): the ingest never crashes (an unhandled
 * rejection fails this file), keeps answering from Redis while Redis is up, answers 503 only when
 * neither Redis nor the spool can take a webhook, says not ready while the relay is stuck with
 * Redis answering, and once the disk recovers every webhook it answered 200 is a job.
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { transitionJobId } from '@gk/queue';
import { type RedisServer, startRedisServer, uniquePrefix, waitFor } from '@gk/testing';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { SpoolOp } from '../src/store/spool.js';
import {
  bodyOf,
  freshEvent,
  metricValue,
  postWebhook,
  type RunningIngest,
  scrape,
  startIngest,
} from './helpers.js';

let redis: RedisServer;
let dir: string;
let ingest: RunningIngest;

/** Faults to raise: per operation, how many more times, and whether the write is half done. */
const faults = new Map<SpoolOp, { times: number; code: string; partial?: boolean }>();
const raise = (op: SpoolOp, times: number, code: string, partial = false) => {
  faults.set(op, { times, code, partial });
};

beforeAll(async () => {
  redis = await startRedisServer();
  dir = mkdtempSync(join(tmpdir(), 'gk-spool-faults-'));
  ingest = await startIngest({
    redis: { url: redis.url },
    prefix: uniquePrefix('spool-faults'),
    spool: { path: join(dir, 'ingest.spool'), maxEntries: 1_000 },
    relayRetryMs: { min: 20, max: 200 },
    stallSeconds: 1,
    spoolOptions: {
      faults: (op) => {
        const f = faults.get(op);
        if (!f || f.times <= 0) return undefined;
        f.times -= 1;
        const error = Object.assign(new Error(`${f.code}: injected (${op})`), { code: f.code });
        return { error, ...(f.partial ? { partial: true } : {}) };
      },
    },
  });
});

afterAll(async () => {
  await ingest?.close();
  await redis?.stop();
  rmSync(dir, { recursive: true, force: true });
});

async function send(count: number): Promise<{ ok: string[]; statuses: string[] }> {
  const ok: string[] = [];
  const statuses: string[] = [];
  for (let i = 0; i < count; i++) {
    const event = freshEvent();
    const res = await postWebhook(ingest.url, event);
    const body = await bodyOf(res);
    statuses.push(res.status === 200 ? String(body.status) : String(res.status));
    if (res.status === 200) ok.push(event.id);
    if (res.status === 503) expect(res.headers.get('retry-after')).toBeTruthy();
  }
  return { ok, statuses };
}

async function readyz() {
  const res = await fetch(`${ingest.url}/readyz`);
  return {
    status: res.status,
    body: (await res.json()) as { reasons?: string[]; spool?: { depth: number } },
  };
}

async function allInRedis(ids: readonly string[]): Promise<string[]> {
  const missing: string[] = [];
  for (const id of ids) if (!(await ingest.queues.transitions.getJob(transitionJobId(id)))) missing.push(id);
  return missing;
}

describe('spool I/O errors', () => {
  const answered: string[] = [];

  it('survives failing reads, markers and appends while relaying, and loses nothing answered 200', async () => {
    await redis.kill();
    // Half-written appends: those webhooks are answered 503 (Redis is down too), the rest spooled.
    raise('append', 2, 'ENOSPC', true);
    const down = await send(10);
    expect(down.statuses.filter((s) => s === '503')).toHaveLength(2);
    expect(down.statuses.filter((s) => s === 'spooled')).toHaveLength(8);
    answered.push(...down.ok);

    raise('peek', 3, 'EIO');
    raise('mark', 2, 'ENOSPC', true);
    await redis.restart();
    await waitFor(async () => (await readyz()).body.spool?.depth === 0, {
      timeoutMs: 20_000,
      what: 'the spool to drain through the injected errors',
    });
    expect(await allInRedis(answered)).toEqual([]);
    const text = await scrape(ingest.url);
    expect(metricValue(text, 'gk_spool_io_errors_total', { op: 'peek' })).toBe(3);
    expect(metricValue(text, 'gk_spool_io_errors_total', { op: 'mark' })).toBeGreaterThanOrEqual(1);
    expect(metricValue(text, 'gk_spool_io_errors_total', { op: 'append' })).toBe(2);
    expect((await readyz()).status).toBe(200);
  });

  it('with the disk failing and Redis up, answers from Redis, says not ready while the relay is stuck, then drains', async () => {
    await redis.kill();
    const spooled = await send(3);
    expect(spooled.statuses).toEqual(['spooled', 'spooled', 'spooled']);
    answered.push(...spooled.ok);

    // The disk fails: reads and writes. Redis comes back.
    raise('peek', 1_000_000, 'EIO');
    raise('append', 1_000_000, 'ENOSPC');
    await redis.restart();
    await waitFor(() => ingest.connection.status === 'ready', {
      timeoutMs: 10_000,
      what: 'the ingest to reconnect',
    });
    const fromRedis = await send(3);
    expect(fromRedis.statuses).toEqual(['accepted', 'accepted', 'accepted']);
    answered.push(...fromRedis.ok);
    // Redis answers but the relay moves nothing: not ready after the stall time, with the reason.
    const notReady = await waitFor(
      async () => {
        const r = await readyz();
        return r.status === 503 ? r : null;
      },
      { timeoutMs: 10_000, what: '/readyz to report the stalled relay' },
    );
    expect(notReady.body.reasons?.join(' ')).toMatch(/no progress .* 3 entries wait .*EIO/);

    // Neither Redis nor the spool: 503 with Retry-After, never a hang.
    await redis.kill();
    const neither = await send(2);
    expect(neither.statuses).toEqual(['503', '503']);

    // The disk recovers, Redis returns: everything answered 200 arrives.
    faults.clear();
    await redis.restart();
    await waitFor(async () => (await readyz()).status === 200 && (await readyz()).body.spool?.depth === 0, {
      timeoutMs: 20_000,
      what: 'the spool to drain once the disk recovers',
    });
    expect(await allInRedis(answered)).toEqual([]);
    console.log(`spool-faults: ${answered.length} answered 200, all in Redis; 4 answered 503`);
  });
});
