import { createMetricsRegistry } from '@gk/runtime';
import { type TestRedis, uniquePrefix, useTestRedis } from '@gk/testing';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ADMIN, adminAuthHeader, type RunningIngest, startIngest } from './helpers.js';

let redis: TestRedis;
let off: RunningIngest;
let readOnly: RunningIngest;
let broken: RunningIngest;

/** A registry that fails on scrape, to reach the app's last-resort error handler. */
function failingRegistry() {
  const registry = createMetricsRegistry('ingest');
  registry.metrics = async () => {
    throw new Error('boom at redis://:hunter2-secret@db:6379');
  };
  return registry;
}

beforeAll(async () => {
  redis = await useTestRedis();
  off = await startIngest({ redis: redis.target, prefix: uniquePrefix('ingest-dash-off'), admin: null });
  readOnly = await startIngest({
    redis: redis.target,
    prefix: uniquePrefix('ingest-dash-ro'),
    admin: { ...ADMIN, readOnly: true },
  });
  broken = await startIngest({
    redis: redis.target,
    prefix: uniquePrefix('ingest-broken'),
    registry: failingRegistry(),
  });
});

afterAll(async () => {
  await off?.close();
  await readOnly?.close();
  await broken?.close();
  await redis?.stop();
});

describe('dashboard off (ADMIN_USERNAME/ADMIN_PASSWORD unset)', () => {
  it('answers 404 at /admin/queues, with or without credentials', async () => {
    for (const path of ['/admin/queues', '/admin/queues/api/queues']) {
      expect((await fetch(`${off.url}${path}`)).status).toBe(404);
      expect((await fetch(`${off.url}${path}`, { headers: { authorization: adminAuthHeader } })).status).toBe(
        404,
      );
    }
  });

  it('says so in the log at start', () => {
    expect(off.logEntries().some((e) => String(e.msg).startsWith('queue dashboard off'))).toBe(true);
  });
});

describe('dashboard in read-only mode (ADMIN_READ_ONLY=true)', () => {
  it('shows every queue as read-only', async () => {
    const res = await fetch(`${readOnly.url}/admin/queues/api/queues`, {
      headers: { authorization: adminAuthHeader },
    });
    expect(res.status).toBe(200);
    const { queues } = (await res.json()) as { queues: { name: string; readOnlyMode: boolean }[] };
    expect(queues.map((q) => [q.name, q.readOnlyMode]).sort()).toEqual([
      ['customer-changes', true],
      ['deliveries', true],
      ['transitions', true],
    ]);
  });

  it('refuses to pause a queue', async () => {
    const res = await fetch(`${readOnly.url}/admin/queues/api/queues/transitions/pause`, {
      method: 'PUT',
      headers: { authorization: adminAuthHeader },
    });
    expect(res.status).toBeGreaterThanOrEqual(400);
    expect(await readOnly.queues.transitions.isPaused()).toBe(false);
  });
});

describe('unexpected errors', () => {
  it('answer 500 problem+json without message or stack, and are logged', async () => {
    const res = await fetch(`${broken.url}/metrics`);
    expect(res.status).toBe(500);
    expect(res.headers.get('content-type')).toMatch(/^application\/problem\+json/);
    const text = await res.text();
    expect(JSON.parse(text)).toMatchObject({ status: 500, title: 'Internal Server Error' });
    expect(text).not.toContain('hunter2');
    expect(text).not.toContain('boom');
    expect(text).not.toMatch(/\bat .*:\d+/);
    expect(broken.logEntries().some((e) => e.msg === 'unhandled error')).toBe(true);
  });
});
