import { hashEmail, LEGACY_EMAIL_HASH_KEY } from '@gk/domain';
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
import { type ConversationPart, EmailState } from './email-state.js';

// Its own server (its own cluster on a cluster run: REDIS_CLUSTER_NODES set): one test flushes
// the script cache, which must not touch other test files.
let redis: RedisServer | RedisCluster;
let connection: RedisConnection;
let state: EmailState;
let prefix: string;

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
  prefix = uniquePrefix('email-state');
  state = new EmailState(connection, {
    prefix,
    leaseMs: 300,
    pseudonymKey: async () => 'email-state-test-key',
  });
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

/** A candidate older than any mark the tests store: never claims over one. */
const OLDEST = mark('2020-01-01T00:00:00.000Z', 'evt-oldest');

describe('EmailState', () => {
  it('a request without an answer keeps its claim and holds the lease a little longer', async () => {
    const email = freshEmail();
    const newer = mark('2026-11-20T10:01:00.000Z', 'evt-new');
    expect(await state.acquire(email, 'attempt-1', newer)).toEqual({
      acquired: true,
      newest: null,
      claimed: true,
    });
    await state.hold(email, 'attempt-1', 1_000);
    // The claim counts at once (an older transition goes as backfill) ...
    expect(await state.newestApplied(email)).toEqual(newer);
    // ... and the lease is still held past its own 300 ms, then lapses.
    await sleep(500);
    expect(await state.acquire(email, 'attempt-2', OLDEST)).toEqual({ acquired: false });
    await sleep(700);
    expect((await state.acquire(email, 'attempt-2', OLDEST)).acquired).toBe(true);
  });

  it('gives the lease to one holder at a time, and again to the holder that has it', async () => {
    const email = freshEmail();
    expect(await state.acquire(email, 'job-a', OLDEST)).toEqual({
      acquired: true,
      newest: null,
      claimed: true,
    });
    expect(await state.acquire(email, 'job-b', OLDEST)).toEqual({ acquired: false });
    // A worker killed mid-delivery: its job runs again and must not wait for its own lease.
    expect((await state.acquire(email, 'job-a', OLDEST)).acquired).toBe(true);
    // Someone else's release leaves it in place.
    await state.release(email, 'job-b');
    expect(await state.acquire(email, 'job-b', OLDEST)).toEqual({ acquired: false });
    await state.release(email, 'job-a');
    expect((await state.acquire(email, 'job-b', OLDEST)).acquired).toBe(true);
  });

  it('keys by the email case-insensitively', async () => {
    const email = freshEmail();
    expect((await state.acquire(email, 'job-a', OLDEST)).acquired).toBe(true);
    expect((await state.acquire(email.toLowerCase(), 'job-b', OLDEST)).acquired).toBe(false);
  });

  it('lets a lease lapse after its lifetime', async () => {
    const email = freshEmail();
    expect((await state.acquire(email, 'job-a', OLDEST)).acquired).toBe(true);
    await sleep(400);
    expect((await state.acquire(email, 'job-b', OLDEST)).acquired).toBe(true);
  });

  it('hands the newest applied mark to the next holder, and releases with the mark in one call', async () => {
    const email = freshEmail();
    const first = mark('2026-11-20T14:00:00.000Z', 'evt-1');
    expect((await state.acquire(email, 'job-1', first)).acquired).toBe(true);
    await state.markAppliedAndRelease(email, 'job-1', first);
    expect(await state.acquire(email, 'job-2', OLDEST)).toEqual({
      acquired: true,
      newest: first,
      claimed: false,
    });
  });

  it('claims a newer transition before its request: the next holder sees it though the first never reported back', async () => {
    const email = freshEmail();
    const newer = mark('2026-11-20T14:01:00.000Z', 'evt-new');
    expect(await state.acquire(email, 'job-1', newer)).toEqual({
      acquired: true,
      newest: null,
      claimed: true,
    });
    // job-1's worker is killed after Klaviyo recorded the event; its lease lapses.
    await sleep(400);
    expect(await state.acquire(email, 'job-2', mark('2026-11-20T14:00:00.000Z', 'evt-old'))).toEqual({
      acquired: true,
      newest: newer,
      claimed: false,
    });
    // The same transition's re-run is not stale against its own claim.
    await state.release(email, 'job-2');
    expect(await state.acquire(email, 'job-3', newer)).toEqual({
      acquired: true,
      newest: null,
      claimed: true,
    });
  });

  it('withdraws a claim Klaviyo did not record: the mark before it counts again and the lease is free', async () => {
    const email = freshEmail();
    const first = mark('2026-11-20T14:00:00.000Z', 'evt-1');
    const second = mark('2026-11-20T14:01:00.000Z', 'evt-2');
    await state.acquire(email, 'job-1', first);
    await state.markAppliedAndRelease(email, 'job-1', first);
    const lease = await state.acquire(email, 'job-2', second);
    expect(lease).toEqual({ acquired: true, newest: first, claimed: true });
    expect(await state.withdraw(email, 'job-2', second)).toBe(true);
    expect(await state.newestApplied(email)).toEqual(first);
    expect((await state.acquire(email, 'job-3', OLDEST)).acquired).toBe(true);
    // With no mark before the claim, the email has none again.
    const other = freshEmail();
    await state.acquire(other, 'job-1', second);
    expect(await state.withdraw(other, 'job-1', second)).toBe(true);
    expect(await state.newestApplied(other)).toBeNull();
  });

  it('a claim left by an earlier attempt (a 5xx, no answer) is settled by a later attempt of the transition', async () => {
    const email = freshEmail();
    const first = mark('2026-11-20T14:00:00.000Z', 'evt-1');
    const second = mark('2026-11-20T14:01:00.000Z', 'evt-2');
    await state.acquire(email, 'job-1', first);
    await state.markAppliedAndRelease(email, 'job-1', first);
    // Attempt 1 of evt-2 claims it, gets a 5xx, releases the lease: the claim stays.
    expect(await state.acquire(email, 'evt-2-attempt-1', second)).toMatchObject({ claimed: true });
    await state.release(email, 'evt-2-attempt-1');
    expect(await state.newestApplied(email)).toEqual(second);
    // Attempt 2 is refused for good (a 400): it withdraws the claim attempt 1 made.
    await state.acquire(email, 'evt-2-attempt-2', second);
    expect(await state.withdraw(email, 'evt-2-attempt-2', second)).toBe(true);
    expect(await state.newestApplied(email)).toEqual(first);
    // Or, recorded on a later attempt: it becomes the applied mark and the claim goes.
    const third = mark('2026-11-20T14:02:00.000Z', 'evt-3');
    await state.acquire(email, 'evt-3-attempt-1', third);
    await state.release(email, 'evt-3-attempt-1');
    await state.acquire(email, 'evt-3-attempt-2', third);
    await state.markAppliedAndRelease(email, 'evt-3-attempt-2', third);
    expect(await state.newestApplied(email)).toEqual(third);
    expect(await connection.zcard(`${prefix}:email:${hashEmail(email, 'email-state-test-key')}:claims`)).toBe(
      0,
    );
  });

  it('never withdraws a claim once the lease has passed to another holder', async () => {
    const email = freshEmail();
    const second = mark('2026-11-20T14:01:00.000Z', 'evt-2');
    await state.acquire(email, 'job-1', second);
    await sleep(400); // job-1's lease lapsed; the re-run of the same job took over
    // The re-run is not stale against its own transition's claim.
    expect(await state.acquire(email, 'job-1-rerun', second)).toEqual({
      acquired: true,
      newest: null,
      claimed: true,
    });
    expect(await state.withdraw(email, 'job-1', second)).toBe(false);
    expect(await state.newestApplied(email)).toEqual(second);
    expect(await state.acquire(email, 'job-3', OLDEST)).toEqual({ acquired: false });
  });

  it('never replaces a mark with an older one (ties broken by event id)', async () => {
    const email = freshEmail();
    const b = mark('2026-11-20T14:00:00.000Z', 'evt-b');
    await state.acquire(email, 'job-1', b);
    await state.markAppliedAndRelease(email, 'job-1', b);
    const z = mark('2026-11-20T13:59:59.000Z', 'evt-z');
    expect(await state.acquire(email, 'job-2', z)).toEqual({ acquired: true, newest: b, claimed: false });
    await state.markAppliedAndRelease(email, 'job-2', z);
    expect(await state.newestApplied(email)).toEqual(b);
    const a = mark('2026-11-20T14:00:00.000Z', 'evt-a');
    expect(await state.acquire(email, 'job-3', a)).toEqual({ acquired: true, newest: b, claimed: false });
    await state.markAppliedAndRelease(email, 'job-3', a);
    expect(await state.newestApplied(email)).toEqual(b);
    const c = mark('2026-11-20T14:00:00.000Z', 'evt-c');
    expect(await state.acquire(email, 'job-4', c)).toEqual({ acquired: true, newest: b, claimed: true });
    await state.markAppliedAndRelease(email, 'job-4', c);
    expect(await state.newestApplied(email)).toEqual(c);
    // Every call above released its lease, even when the mark was not stored.
    expect((await state.acquire(email, 'job-5', OLDEST)).acquired).toBe(true);
  });

  it('does not release a lease that has passed to another holder when storing a mark', async () => {
    const email = freshEmail();
    await state.acquire(email, 'job-1', OLDEST);
    await sleep(400); // job-1's lease lapsed; job-2 took over
    expect((await state.acquire(email, 'job-2', OLDEST)).acquired).toBe(true);
    await state.markAppliedAndRelease(email, 'job-1', mark('2026-11-20T14:00:00.000Z', 'evt-1'));
    expect(await state.acquire(email, 'job-3', OLDEST)).toEqual({ acquired: false });
  });

  it('honours the mark and waits for the lease a version before keyed pseudonyms left', async () => {
    const email = freshEmail();
    const legacy = `${prefix}:email:${hashEmail(email, LEGACY_EMAIL_HASH_KEY)}`;
    const before = mark('2026-11-20T14:05:00.000Z', 'evt-v1');
    await connection.set(`${legacy}:applied`, `${Date.parse(before.occurredAt)}|${before.eventId}`);
    await connection.set(`${legacy}:lease`, 'v1-holder', 'PX', 300);
    expect(await state.acquire(email, 'job-1', OLDEST)).toEqual({ acquired: false });
    await sleep(400);
    // Older than the old version's mark: not claimed, and the old mark is the newest.
    expect(await state.acquire(email, 'job-1', mark('2026-11-20T14:00:00.000Z', 'evt-a'))).toEqual({
      acquired: true,
      newest: before,
      claimed: false,
    });
    await state.release(email, 'job-1');
    // Newer: claimed under the keyed key only; the old key is left to expire.
    const newer = mark('2026-11-20T14:10:00.000Z', 'evt-b');
    expect(await state.acquire(email, 'job-2', newer)).toEqual({
      acquired: true,
      newest: before,
      claimed: true,
    });
    expect(await state.newestApplied(email)).toEqual(newer);
    await state.markAppliedAndRelease(email, 'job-2', newer);
    expect(await connection.get(`${legacy}:applied`)).toBe(
      `${Date.parse(before.occurredAt)}|${before.eventId}`,
    );
    expect(await connection.get(`${prefix}:email:${hashEmail(email, 'email-state-test-key')}:applied`)).toBe(
      `${Date.parse(newer.occurredAt)}|${newer.eventId}`,
    );
  });

  it('loads its scripts again after the server forgot them', async () => {
    const email = freshEmail();
    const first = mark('2026-11-20T14:00:00.000Z', 'evt-1');
    await flushScripts();
    expect((await state.acquire(email, 'job-1', first)).acquired).toBe(true);
    await flushScripts();
    await state.markAppliedAndRelease(email, 'job-1', first);
    expect(await state.newestApplied(email)).toEqual(first);
    await flushScripts();
    expect(await state.withdraw(email, 'job-1', first)).toBe(false);
  });
});

describe('EmailState: conversations holding an address', () => {
  const opened = (conversationId: string): ConversationPart => ({
    conversationId,
    kind: 'started',
    customerId: 'cust-1',
  });
  const closed = (conversationId: string): ConversationPart => ({
    conversationId,
    kind: 'closed',
    customerId: 'cust-1',
  });
  const at = (minute: number, id: string) =>
    mark(new Date(Date.UTC(2026, 10, 20, 14, minute)).toISOString(), id);

  /** One delivery attempt: acquire, then the outcome Klaviyo's 202 gives (mark stored, lease released). */
  async function deliver(email: string, holder: string, m: ReturnType<typeof mark>, part: ConversationPart) {
    const lease = await state.acquireHeld(email, holder, m, part);
    if (!lease.acquired) throw new Error('lease taken');
    await state.settleHeld(email, holder, m, lease.backfill ? 'backfill' : 'applied');
    return lease;
  }

  it('a close while another conversation holds the address is history; the last close flips it', async () => {
    const email = freshEmail();
    expect((await deliver(email, 'a', at(0, 'o1'), opened('c1'))).backfill).toBe(false);
    expect((await deliver(email, 'b', at(1, 'o2'), opened('c2'))).backfill).toBe(false);
    expect((await deliver(email, 'c', at(2, 'x1'), closed('c1'))).backfill).toBe(true);
    expect(await state.countHeldSince(new Date('2030-01-01'))).toBeGreaterThanOrEqual(1);
    const last = await deliver(email, 'd', at(3, 'x2'), closed('c2'));
    expect(last).toMatchObject({ backfill: false, claimed: true });
    expect(await state.heldAddress(hashOf(email))).toBeUndefined();
  });

  it('a late start of a conversation still open sets the profile back although it is older than the mark', async () => {
    const email = freshEmail();
    await deliver(email, 'a', at(3, 'x2'), closed('c2'));
    const late = await deliver(email, 'b', at(0, 'o1'), opened('c1'));
    // Older than the mark (not claimed), yet it flips: c1 is open.
    expect(late).toMatchObject({ backfill: false, claimed: false });
    expect(await state.newestApplied(email)).toEqual(at(3, 'x2'));
    const held = await state.heldAddress(hashOf(email));
    expect(held).toMatchObject({ email, conversations: ['c1'], since: at(0, 'o1').occurredAt });
    // Its retry decides the same (it finds its own claim of the profile value).
    const retry = await state.acquireHeld(email, 'b2', at(0, 'o1'), opened('c1'));
    expect(retry).toMatchObject({ acquired: true, backfill: false });
    await state.release(email, 'b2');
    // An older start of the closed conversation is history.
    expect((await deliver(email, 'c', at(1, 'o2'), opened('c2'))).backfill).toBe(true);
  });

  it('a refusal puts back the profile value, the conversation entry and the held index', async () => {
    const email = freshEmail();
    await deliver(email, 'a', at(0, 'o1'), opened('c1'));
    const refused = await state.acquireHeld(email, 'b', at(5, 'x1'), closed('c1'));
    if (!refused.acquired) throw new Error('lease taken');
    expect(refused).toMatchObject({ backfill: false, claimed: true });
    expect(await state.heldAddress(hashOf(email))).toBeUndefined();
    expect(await state.withdrawHeld(email, 'b', at(5, 'x1'), 'c1')).toBe(true);
    expect(await state.newestApplied(email)).toEqual(at(0, 'o1'));
    expect(await state.heldAddress(hashOf(email))).toMatchObject({ conversations: ['c1'] });
    // The lease is free again, and the close, retried, decides as before.
    const again = await state.acquireHeld(email, 'c', at(5, 'x1'), closed('c1'));
    expect(again).toMatchObject({ acquired: true, backfill: false });
  });

  it('a close refused for good after a 5xx: the later attempt undoes what the first one held', async () => {
    const email = freshEmail();
    const close = at(5, 'x1');
    // Attempt 1: a flip (no other conversation holds the address), then a 5xx: all of it stays.
    expect(await state.acquireHeld(email, 'x1-attempt-1', close, closed('c1'))).toMatchObject({
      acquired: true,
      backfill: false,
      claimed: true,
    });
    await state.release(email, 'x1-attempt-1');
    expect(await state.newestApplied(email)).toEqual(close);
    // Attempt 2 decides the same (its own changes do not make it history), then gets a 400.
    expect(await state.acquireHeld(email, 'x1-attempt-2', close, closed('c1'))).toMatchObject({
      acquired: true,
      backfill: false,
      claimed: true,
    });
    expect(await state.withdrawHeld(email, 'x1-attempt-2', close, 'c1')).toBe(true);
    // Nothing of the close is left: no mark, no entry, no profile value, nothing to undo.
    expect(await state.newestApplied(email)).toBeNull();
    expect(await connection.hgetall(heldKey(email))).toEqual({});
    // A later start, older than the refused close, applies normally and holds the address.
    expect(await deliver(email, 'o1-attempt-1', at(0, 'o1'), opened('c1'))).toMatchObject({
      backfill: false,
      claimed: true,
    });
    expect(await state.heldAddress(hashOf(email))).toMatchObject({ conversations: ['c1'] });
    expect(await connection.hget(heldKey(email), 'p')).toBe('1|o1');
  });

  it('a refusal after a 5xx puts back the values from before the first attempt, held index too', async () => {
    const email = freshEmail();
    await deliver(email, 'a', at(0, 'o1'), opened('c1'));
    const before = await connection.hgetall(heldKey(email));
    await state.acquireHeld(email, 'x1-attempt-1', at(5, 'x1'), closed('c1'));
    await state.release(email, 'x1-attempt-1');
    expect(await state.heldAddress(hashOf(email))).toBeUndefined();
    await state.acquireHeld(email, 'x1-attempt-2', at(5, 'x1'), closed('c1'));
    expect(await state.withdrawHeld(email, 'x1-attempt-2', at(5, 'x1'), 'c1')).toBe(true);
    expect(await connection.hgetall(heldKey(email))).toEqual(before);
    expect(await state.heldAddress(hashOf(email))).toMatchObject({ conversations: ['c1'] });
    expect(await connection.zscore(`${prefix}:held`, hashOf(email))).toBe(
      String(Date.parse(at(0, 'o1').occurredAt)),
    );
    expect(await state.newestApplied(email)).toEqual(at(0, 'o1'));
  });

  it('a transition recorded on a later attempt keeps what the first one held, and its undo goes', async () => {
    const email = freshEmail();
    await deliver(email, 'a', at(0, 'o1'), opened('c1'));
    await state.acquireHeld(email, 'x1-attempt-1', at(5, 'x1'), closed('c1'));
    await state.release(email, 'x1-attempt-1');
    await state.acquireHeld(email, 'x1-attempt-2', at(5, 'x1'), closed('c1'));
    await state.settleHeld(email, 'x1-attempt-2', at(5, 'x1'), 'applied');
    const held = await connection.hgetall(heldKey(email));
    expect(held.p).toBe('0|x1');
    expect(Object.keys(held).filter((f) => f.startsWith('ue:') || f.startsWith('up:'))).toEqual([]);
    expect(await state.newestApplied(email)).toEqual(at(5, 'x1'));
    // A withdraw arriving after it (a stale attempt) changes nothing.
    await state.acquireHeld(email, 'x1-attempt-3', at(5, 'x1'), closed('c1'));
    await state.withdrawHeld(email, 'x1-attempt-3', at(5, 'x1'), 'c1');
    expect((await connection.hgetall(heldKey(email))).p).toBe('0|x1');
  });

  it('an operator release lets go of every conversation holding the address', async () => {
    const email = freshEmail();
    await deliver(email, 'a', at(0, 'o1'), opened('c1'));
    await deliver(email, 'b', at(1, 'o2'), opened('c2'));
    const release = await deliver(email, 'c', at(30, 'rel'), { ...closed('c1'), release: true });
    expect(release.backfill).toBe(false);
    expect(await state.heldAddress(hashOf(email))).toBeUndefined();
    // The conversations it let go no longer hold it: a close of c2 is no flip back to true.
    expect((await deliver(email, 'd', at(31, 'x2'), closed('c2'))).backfill).toBe(false);
    expect(await state.heldAddress(hashOf(email))).toBeUndefined();
  });

  it('waits for the lease like acquire does', async () => {
    const email = freshEmail();
    expect((await state.acquireHeld(email, 'a', at(0, 'o1'), opened('c1'))).acquired).toBe(true);
    expect(await state.acquireHeld(email, 'b', at(1, 'o2'), opened('c2'))).toEqual({ acquired: false });
    // Nothing was recorded for the attempt that did not get the lease.
    await state.release(email, 'a');
    expect((await state.heldAddress(hashOf(email)))?.conversations).toEqual(['c1']);
  });
});

function hashOf(email: string): string {
  return hashEmail(email, 'email-state-test-key');
}

function heldKey(email: string): string {
  return `${prefix}:email:${hashOf(email)}:held`;
}
