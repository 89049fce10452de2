import { createWorkerConnection, type RedisConnection } from '@gk/queue';
import {
  type RedisCluster,
  type RedisServer,
  sleep,
  startRedisCluster,
  startRedisServer,
  testClusterNodes,
  uniquePrefix,
} from '@gk/testing';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { EmailState } from './email-state.js';

// Its own server (its own cluster on a cluster run: REDIS_CLUSTER_NODES set): one test flushes
// the script cache, which must not touch other test files.
let redis: RedisServer | RedisCluster;
let connection: RedisConnection;
let state: EmailState;

beforeAll(async () => {
  if (testClusterNodes().length > 0) {
    const cluster = await startRedisCluster();
    redis = cluster;
    connection = createWorkerConnection(cluster.target, 'email-state-test');
  } else {
    const server = await startRedisServer({ appendonly: false });
    redis = server;
    connection = createWorkerConnection({ url: server.url }, 'email-state-test');
  }
  state = new EmailState(connection, { prefix: uniquePrefix('email-state'), leaseMs: 300 });
});

afterAll(async () => {
  await connection?.quit();
  await redis?.stop();
});

/** Makes every server forget its scripts (each master of a cluster). */
async function flushScripts() {
  const nodes = 'nodes' in connection ? connection.nodes('master') : [connection];
  await Promise.all(nodes.map((node) => node.script('FLUSH')));
}

let n = 0;
const freshEmail = () => {
  n += 1;
  return `Person.${n}.${Date.now().toString(36)}@Example.com`;
};
const mark = (occurredAt: string, eventId: string) => ({ occurredAt, eventId });

describe('EmailState', () => {
  it('a request without an answer marks the email and holds the lease a little longer', async () => {
    const email = freshEmail();
    expect((await state.acquire(email, 'attempt-1')).acquired).toBe(true);
    await state.markAppliedAndHold(email, 'attempt-1', mark('2026-11-20T10:01:00.000Z', 'evt-new'), 1_000);
    // The mark counts at once (an older transition goes as backfill) ...
    expect(await state.newestApplied(email)).toEqual(mark('2026-11-20T10:01:00.000Z', 'evt-new'));
    // ... and the lease is still held past its own 300 ms, then lapses.
    await sleep(500);
    expect(await state.acquire(email, 'attempt-2')).toEqual({ acquired: false });
    await sleep(700);
    expect((await state.acquire(email, 'attempt-2')).acquired).toBe(true);
  });

  it('gives the lease to one holder at a time, and again to the holder that has it', async () => {
    const email = freshEmail();
    expect(await state.acquire(email, 'job-a')).toEqual({ acquired: true, newest: null });
    expect(await state.acquire(email, 'job-b')).toEqual({ acquired: false });
    // A worker killed mid-delivery: its job runs again and must not wait for its own lease.
    expect((await state.acquire(email, 'job-a')).acquired).toBe(true);
    // Someone else's release leaves it in place.
    await state.release(email, 'job-b');
    expect(await state.acquire(email, 'job-b')).toEqual({ acquired: false });
    await state.release(email, 'job-a');
    expect((await state.acquire(email, 'job-b')).acquired).toBe(true);
  });

  it('keys by the email case-insensitively', async () => {
    const email = freshEmail();
    expect((await state.acquire(email, 'job-a')).acquired).toBe(true);
    expect((await state.acquire(email.toLowerCase(), 'job-b')).acquired).toBe(false);
  });

  it('lets a lease lapse after its lifetime', async () => {
    const email = freshEmail();
    expect((await state.acquire(email, 'job-a')).acquired).toBe(true);
    await sleep(400);
    expect((await state.acquire(email, 'job-b')).acquired).toBe(true);
  });

  it('hands the newest applied mark to the next holder, and releases with the mark in one call', async () => {
    const email = freshEmail();
    expect((await state.acquire(email, 'job-1')).acquired).toBe(true);
    await state.markAppliedAndRelease(email, 'job-1', mark('2026-11-20T14:00:00.000Z', 'evt-1'));
    expect(await state.acquire(email, 'job-2')).toEqual({
      acquired: true,
      newest: mark('2026-11-20T14:00:00.000Z', 'evt-1'),
    });
  });

  it('never replaces a mark with an older one (ties broken by event id)', async () => {
    const email = freshEmail();
    await state.acquire(email, 'job-1');
    await state.markAppliedAndRelease(email, 'job-1', mark('2026-11-20T14:00:00.000Z', 'evt-b'));
    await state.acquire(email, 'job-2');
    await state.markAppliedAndRelease(email, 'job-2', mark('2026-11-20T13:59:59.000Z', 'evt-z'));
    expect(await state.newestApplied(email)).toEqual(mark('2026-11-20T14:00:00.000Z', 'evt-b'));
    await state.acquire(email, 'job-3');
    await state.markAppliedAndRelease(email, 'job-3', mark('2026-11-20T14:00:00.000Z', 'evt-a'));
    expect(await state.newestApplied(email)).toEqual(mark('2026-11-20T14:00:00.000Z', 'evt-b'));
    await state.acquire(email, 'job-4');
    await state.markAppliedAndRelease(email, 'job-4', mark('2026-11-20T14:00:00.000Z', 'evt-c'));
    expect(await state.newestApplied(email)).toEqual(mark('2026-11-20T14:00:00.000Z', 'evt-c'));
    // Every call above released its lease, even when the mark was not stored.
    expect((await state.acquire(email, 'job-5')).acquired).toBe(true);
  });

  it('does not release a lease that has passed to another holder when storing a mark', async () => {
    const email = freshEmail();
    await state.acquire(email, 'job-1');
    await sleep(400); // job-1's lease lapsed; job-2 took over
    expect((await state.acquire(email, 'job-2')).acquired).toBe(true);
    await state.markAppliedAndRelease(email, 'job-1', mark('2026-11-20T14:00:00.000Z', 'evt-1'));
    expect(await state.acquire(email, 'job-3')).toEqual({ acquired: false });
  });

  it('loads its scripts again after the server forgot them', async () => {
    const email = freshEmail();
    await flushScripts();
    expect((await state.acquire(email, 'job-1')).acquired).toBe(true);
    await flushScripts();
    await state.markAppliedAndRelease(email, 'job-1', mark('2026-11-20T14:00:00.000Z', 'evt-1'));
    expect(await state.newestApplied(email)).toEqual(mark('2026-11-20T14:00:00.000Z', 'evt-1'));
  });
});
