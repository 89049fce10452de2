import { type KlaviyoStandIn, startKlaviyoStandIn } from '@gk/stand-ins';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { createKlaviyoClient, type KlaviyoEventInput } from '../src/index.js';

const KEY = 'pk_test_0123456789';
let klaviyo: KlaviyoStandIn;

beforeEach(async () => {
  klaviyo = await startKlaviyoStandIn({ apiKey: KEY });
});

afterEach(async () => {
  await klaviyo.close();
});

const client = (overrides: { apiKey?: string; revision?: string; timeoutMs?: number } = {}) =>
  createKlaviyoClient({ baseUrl: klaviyo.url, apiKey: KEY, ...overrides });

const started: KlaviyoEventInput = {
  email: 'Rosa.Alvarez@example.com',
  metricName: 'started conversation in Gladly',
  propertyName: 'In Gladly Conversation',
  value: true,
  uniqueId: 'evt-1',
  time: '2026-11-20T14:03:27.512Z',
  backfill: false,
};
const closed: KlaviyoEventInput = {
  ...started,
  metricName: 'closed conversation in Gladly',
  value: false,
  uniqueId: 'evt-0',
  time: '2026-11-20T13:00:00.000Z',
};

describe('createEvent against the Klaviyo stand-in', () => {
  it('202 → delivered; the event is recorded and the profile property set', async () => {
    const outcome = await client().createEvent({ ...started, conversationId: 'conv-1' });
    expect(outcome).toMatchObject({ kind: 'delivered', status: 202 });
    expect(outcome.durationMs).toBeGreaterThan(0);
    expect(klaviyo.events).toEqual([
      expect.objectContaining({
        uniqueId: 'evt-1',
        metricName: 'started conversation in Gladly',
        email: 'Rosa.Alvarez@example.com',
        properties: { 'In Gladly Conversation': true, 'Gladly Conversation ID': 'conv-1' },
        backfill: false,
      }),
    ]);
    expect(klaviyo.profile('rosa.alvarez@EXAMPLE.com')?.properties).toEqual({
      'In Gladly Conversation': true,
    });
  });

  it('dedupes by unique_id per profile and metric, counting duplicates', async () => {
    const c = client();
    expect((await c.createEvent(started)).kind).toBe('delivered');
    expect((await c.createEvent(started)).kind).toBe('delivered');
    expect((await c.createEvent({ ...started, email: 'ROSA.ALVAREZ@example.com' })).kind).toBe('delivered');
    // Same id, other metric or other profile: a different event.
    await c.createEvent({ ...started, metricName: 'closed conversation in Gladly' });
    await c.createEvent({ ...started, email: 'rosa@work.example.org' });
    expect(klaviyo.posts).toBe(5);
    expect(klaviyo.accepted).toBe(5);
    expect(klaviyo.duplicates).toBe(2);
    expect(klaviyo.events).toHaveLength(3);
  });

  it('400 for an invalid body → permanent, naming the pointer', async () => {
    const outcome = await client().createEvent({ ...started, time: 'yesterday' });
    expect(outcome).toMatchObject({ kind: 'permanent', status: 400, code: 'invalid' });
    expect(outcome.kind === 'permanent' && outcome.reason).toContain('/data/attributes/time');
    expect(klaviyo.events).toHaveLength(0);
  });

  it('wrong key → auth 401', async () => {
    const outcome = await client({ apiKey: 'pk_wrong' }).createEvent(started);
    expect(outcome).toMatchObject({ kind: 'auth', status: 401 });
    expect(outcome.kind === 'auth' && outcome.reason).not.toContain('pk_');
  });

  it('over the rate limit → rate_limited with Retry-After', async () => {
    klaviyo.setRateLimit(1, 1);
    const c = client();
    expect((await c.createEvent(started)).kind).toBe('delivered');
    expect(await c.createEvent({ ...started, uniqueId: 'evt-2' })).toMatchObject({
      kind: 'rate_limited',
      status: 429,
      retryAfter: '1',
    });
    expect(klaviyo.throttled).toBe(1);
  });

  it('a backfilled event is recorded without changing the profile', async () => {
    const c = client();
    await c.createEvent(started);
    const outcome = await c.createEvent({ ...closed, backfill: true });
    expect(outcome.kind).toBe('delivered');
    const profile = klaviyo.profile(started.email);
    expect(profile?.properties).toEqual({ 'In Gladly Conversation': true });
    expect(profile?.events.map((e) => [e.uniqueId, e.backfill, e.profileProperties])).toEqual([
      ['evt-1', false, { 'In Gladly Conversation': true }],
      ['evt-0', true, undefined],
    ]);
  });

  it('backfill with a revision before 2026-07-15 → permanent 400 on /data/attributes/backfill', async () => {
    const outcome = await client({ revision: '2025-10-15' }).createEvent({ ...closed, backfill: true });
    expect(outcome).toMatchObject({ kind: 'permanent', status: 400 });
    expect(outcome.kind === 'permanent' && outcome.reason).toContain('/data/attributes/backfill');
  });

  it('503, a dropped connection and a timeout are retryable', async () => {
    klaviyo.injectFaults({ status: 503 }, { drop: true }, { delayMs: 5_000 });
    expect(await client().createEvent(started)).toMatchObject({ kind: 'retryable', status: 503 });
    expect(await client().createEvent(started)).toMatchObject({
      kind: 'retryable',
      reason: expect.stringMatching(/^network error/),
    });
    const timedOut = await client({ timeoutMs: 150 }).createEvent(started);
    expect(timedOut).toMatchObject({ kind: 'retryable', reason: 'timeout' });
    expect(timedOut.durationMs).toBeLessThan(2_000);
    expect(klaviyo.posts).toBe(3);
    expect(klaviyo.events).toHaveLength(0);
  });

  it("sends nothing once the caller's deadline has passed, and cuts a started request at it", async () => {
    const passed = await client().createEvent(started, { deadline: performance.now() - 1 });
    expect(passed).toMatchObject({ kind: 'retryable', reason: 'deadline passed before sending' });
    expect(klaviyo.posts).toBe(0);

    klaviyo.injectFaults({ delayMs: 5_000 });
    const cut = await client().createEvent(started, { deadline: performance.now() + 200 });
    expect(cut).toMatchObject({ kind: 'retryable', reason: 'timeout' });
    expect(cut.durationMs).toBeLessThan(2_000);
    expect(klaviyo.events).toHaveLength(0);
  });

  it('an unreachable Klaviyo is retryable, never a rejection', async () => {
    const url = klaviyo.url;
    await klaviyo.close();
    const outcome = await createKlaviyoClient({ baseUrl: url, apiKey: KEY }).createEvent(started);
    expect(outcome).toMatchObject({ kind: 'retryable', reason: 'network error (ECONNREFUSED)' });
    klaviyo = await startKlaviyoStandIn();
  });
});
