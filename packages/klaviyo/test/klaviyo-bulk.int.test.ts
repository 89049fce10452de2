import {
  KLAVIYO_BULK_RATE_LIMIT,
  KLAVIYO_EVENTS_RATE_LIMIT,
  type KlaviyoStandIn,
  startKlaviyoStandIn,
} from '@gk/stand-ins';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import {
  BULK_MAX_BYTES,
  BULK_MAX_EVENTS,
  buildBulkCreateEventsBody,
  createKlaviyoClient,
  DEFAULT_KLAVIYO_REVISION,
  type KlaviyoEventInput,
} from '../src/index.js';

const KEY = 'pk_test_bulk_0123456789';
const PROP = 'In Gladly Conversation';
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
  propertyName: PROP,
  value: true,
  uniqueId: 'evt-1',
  time: '2026-11-20T14:03:27.512Z',
  backfill: false,
};
const closed: KlaviyoEventInput = {
  ...started,
  metricName: 'closed conversation in Gladly',
  value: false,
  uniqueId: 'evt-2',
  time: '2026-11-20T15:00:00.000Z',
};
const sam: KlaviyoEventInput = { ...started, email: 'sam@example.com', uniqueId: 'evt-3' };

interface BulkEvent {
  type: 'event';
  attributes: Record<string, unknown>;
}
/** The entries of a body built by buildBulkCreateEventsBody, to tamper with. */
function entriesOf(body: unknown): Array<{ attributes: { events: { data: BulkEvent[] } } }> {
  return (body as { data: { attributes: { 'events-bulk-create': { data: [] } } } }).data.attributes[
    'events-bulk-create'
  ].data;
}

/** A raw POST, for bodies the client refuses to send. */
async function postRaw(body: string) {
  const res = await fetch(`${klaviyo.url}/api/event-bulk-create-jobs`, {
    method: 'POST',
    headers: {
      authorization: `Klaviyo-API-Key ${KEY}`,
      revision: DEFAULT_KLAVIYO_REVISION,
      accept: 'application/vnd.api+json',
      'content-type': 'application/vnd.api+json',
    },
    body,
  });
  const text = await res.text();
  type Errors = { errors: Array<{ code: string; detail: string; source: { pointer?: string } }> };
  return { status: res.status, json: (text ? JSON.parse(text) : { errors: [] }) as Errors };
}

describe('createEventsBulk against the Klaviyo stand-in', () => {
  it('202 → delivered; every event recorded as Create Event records it, profiles created', async () => {
    const outcome = await client().createEventsBulk([{ ...started, conversationId: 'conv-1' }, sam, closed]);
    expect(outcome).toMatchObject({ kind: 'delivered', status: 202 });
    expect(outcome.durationMs).toBeGreaterThan(0);
    expect(klaviyo.bulkPosts).toBe(1);
    expect(klaviyo.bulkAccepted).toBe(1);
    expect(klaviyo.bulkEventsAccepted).toBe(3);
    expect(klaviyo.posts).toBe(0);
    expect(klaviyo.events.map((e) => e.uniqueId)).toEqual(['evt-1', 'evt-2', 'evt-3']);
    expect(klaviyo.events[0]).toEqual({
      uniqueId: 'evt-1',
      metricName: 'started conversation in Gladly',
      email: 'Rosa.Alvarez@example.com',
      time: '2026-11-20T14:03:27.512Z',
      properties: { [PROP]: true, 'Gladly Conversation ID': 'conv-1' },
      profileProperties: { [PROP]: false },
      backfill: false,
      receivedAt: expect.any(Number),
    });
    expect(klaviyo.profile('rosa.alvarez@example.com')?.properties).toEqual({ [PROP]: false });
    expect(klaviyo.profile('SAM@example.com')?.properties).toEqual({ [PROP]: true });
  });

  it('dedupes a unique_id already recorded by Create Event or an earlier bulk request', async () => {
    const c = client();
    expect((await c.createEvent(started)).kind).toBe('delivered');
    expect((await c.createEventsBulk([started, closed])).kind).toBe('delivered');
    expect((await c.createEventsBulk([closed, sam])).kind).toBe('delivered');
    expect(klaviyo.events.map((e) => e.uniqueId)).toEqual(['evt-1', 'evt-2', 'evt-3']);
    expect(klaviyo.duplicates).toBe(2);
  });

  it('a backfill event leaves the profile property alone', async () => {
    const c = client();
    await c.createEventsBulk([started]);
    const outcome = await c.createEventsBulk([{ ...closed, time: '2026-11-20T13:00:00Z', backfill: true }]);
    expect(outcome.kind).toBe('delivered');
    const profile = klaviyo.profile(started.email);
    expect(profile?.properties).toEqual({ [PROP]: true });
    expect(profile?.events.map((e) => [e.uniqueId, e.backfill])).toEqual([
      ['evt-1', false],
      ['evt-2', true],
    ]);
  });

  it('a schema violation → permanent 400 naming the pointer; nothing recorded', async () => {
    const outcome = await client().createEventsBulk([sam, { ...started, metricName: 'm'.repeat(128) }]);
    expect(outcome).toMatchObject({ kind: 'permanent', status: 400, code: 'invalid' });
    expect(outcome.kind === 'permanent' && outcome.reason).toContain(
      '/data/attributes/events-bulk-create/data/1/attributes/events/data/0/attributes/metric/data/attributes/name',
    );
    const badEmail = await client().createEventsBulk([{ ...started, email: 'rosa-at-example' }]);
    expect(badEmail.kind === 'permanent' && badEmail.reason).toContain(
      '/data/attributes/events-bulk-create/data/0/attributes/profile/data/attributes/email',
    );
    expect(klaviyo.events).toHaveLength(0);
    expect(klaviyo.bulkRejected).toBe(2);
  });

  it('a unique_id repeated for one profile and metric fails the whole request: 400, nothing recorded', async () => {
    // The client never sends such a batch…
    const refused = await client().createEventsBulk([sam, started, { ...started, time: closed.time }]);
    expect(refused).toMatchObject({ kind: 'permanent', status: 400 });
    expect(klaviyo.bulkPosts).toBe(0);
    // …and the stand-in refuses it whole when someone does (other case, same profile).
    const body = buildBulkCreateEventsBody([sam, started, closed]);
    const rosa = entriesOf(body)[1]?.attributes.events.data;
    rosa?.push(structuredClone(rosa[0] as BulkEvent));
    const res = await postRaw(JSON.stringify(body));
    expect(res.status).toBe(400);
    expect(res.json.errors[0]?.source.pointer).toBe(
      '/data/attributes/events-bulk-create/data/1/attributes/events/data/2/attributes/unique_id',
    );
    expect(klaviyo.events).toHaveLength(0);
    expect(klaviyo.profiles()).toHaveLength(0);
  });

  it(`more than ${BULK_MAX_EVENTS} events or ${BULK_MAX_BYTES / 1024 / 1024} MB → 400`, async () => {
    const many = Array.from({ length: BULK_MAX_EVENTS + 1 }, (_, i) => ({ ...started, uniqueId: `u-${i}` }));
    expect(await client().createEventsBulk(many)).toMatchObject({ kind: 'permanent', status: 400 });
    expect(klaviyo.bulkPosts).toBe(0);

    const full = JSON.stringify(buildBulkCreateEventsBody(many.slice(0, BULK_MAX_EVENTS)));
    expect((await postRaw(full)).status).toBe(202);
    klaviyo.reset();
    const over = buildBulkCreateEventsBody(many.slice(0, BULK_MAX_EVENTS));
    const events = entriesOf(over)[0]?.attributes.events.data;
    events?.push({ type: 'event', attributes: { ...events[0]?.attributes, unique_id: 'one-more' } });
    const tooMany = await postRaw(JSON.stringify(over));
    expect(tooMany.status).toBe(400);
    expect(tooMany.json.errors[0]?.source.pointer).toBe('/data/attributes/events-bulk-create/data');

    const big = buildBulkCreateEventsBody([{ ...started, conversationId: 'x'.repeat(60 * 1024) }]) as {
      data: { attributes: Record<string, unknown> };
    };
    big.data.attributes.padding = 'p'.repeat(BULK_MAX_BYTES);
    expect((await postRaw(JSON.stringify(big))).status).toBe(400);
    expect(klaviyo.events).toHaveLength(0);
  });

  it('its own rate limit (10 at once, then 2.5/s) → rate_limited with Retry-After; Create Event unaffected', async () => {
    const c = client();
    // 15 at once: 10 from the burst, at most a couple refilled while they arrive (2.5/s).
    const outcomes = await Promise.all(
      Array.from({ length: 15 }, (_, i) => c.createEventsBulk([{ ...started, uniqueId: `r-${i}` }])),
    );
    const delivered = outcomes.filter((o) => o.kind === 'delivered').length;
    expect(delivered).toBeGreaterThanOrEqual(10);
    expect(delivered).toBeLessThanOrEqual(12);
    expect(outcomes.find((o) => o.kind !== 'delivered')).toMatchObject({
      kind: 'rate_limited',
      status: 429,
      retryAfter: '1',
    });
    expect(klaviyo.bulkThrottled).toBe(15 - delivered);
    expect((await c.createEvent({ ...started, uniqueId: 'single' })).kind).toBe('delivered');

    klaviyo.setBulkRateLimit(1, 1);
    expect((await c.createEventsBulk([sam])).kind).toBe('delivered');
    expect((await c.createEventsBulk([closed])).kind).toBe('rate_limited');
    klaviyo.setBulkRateLimit(null);
    expect((await c.createEventsBulk([closed])).kind).toBe('delivered');
  });

  it("both limits can be set at start (Create Event's, none for bulk); Klaviyo's limits are exported", async () => {
    await klaviyo.close();
    klaviyo = await startKlaviyoStandIn({
      apiKey: KEY,
      rateLimit: { perSecond: 1, burst: 2 },
      bulkRateLimit: null,
    });
    const c = client();
    const singles = await Promise.all(
      [1, 2, 3].map((i) => c.createEvent({ ...started, uniqueId: `s-${i}` })),
    );
    expect(singles.map((o) => o.kind).sort()).toEqual(['delivered', 'delivered', 'rate_limited']);
    const bulks = await Promise.all(
      Array.from({ length: 15 }, (_, i) => c.createEventsBulk([{ ...started, uniqueId: `b-${i}` }])),
    );
    expect(bulks.every((o) => o.kind === 'delivered')).toBe(true);
    expect(KLAVIYO_EVENTS_RATE_LIMIT).toEqual({ perSecond: 3_500 / 60, burst: 350 });
    expect(KLAVIYO_BULK_RATE_LIMIT).toEqual({ perSecond: 2.5, burst: 10 });
  });

  it('wrong key → auth 401; a revision before 2024-05-15 → permanent 400', async () => {
    expect(await client({ apiKey: 'pk_wrong' }).createEventsBulk([started])).toMatchObject({
      kind: 'auth',
      status: 401,
    });
    expect(await client({ revision: '2024-02-15' }).createEventsBulk([started])).toMatchObject({
      kind: 'permanent',
      status: 400,
    });
    expect(klaviyo.events).toHaveLength(0);
  });

  it('injected faults hit both endpoints: 503, a dropped connection and a timeout are retryable', async () => {
    klaviyo.injectFaults({ status: 503 }, { status: 503 }, { drop: true }, { delayMs: 5_000 });
    expect(await client().createEvent(started)).toMatchObject({ kind: 'retryable', status: 503 });
    expect(await client().createEventsBulk([started])).toMatchObject({ kind: 'retryable', status: 503 });
    expect(await client().createEventsBulk([started])).toMatchObject({
      kind: 'retryable',
      reason: expect.stringMatching(/^network error/),
    });
    const timedOut = await client({ timeoutMs: 150 }).createEventsBulk([started]);
    expect(timedOut).toMatchObject({ kind: 'retryable', reason: 'timeout' });
    expect(klaviyo.bulkPosts).toBe(3);
    expect(klaviyo.events).toHaveLength(0);
    klaviyo.setLatency(300);
    expect(await client({ timeoutMs: 100 }).createEventsBulk([started])).toMatchObject({ reason: 'timeout' });
  });

  it("sends nothing once the caller's deadline has passed", async () => {
    const passed = await client().createEventsBulk([started], { deadline: performance.now() - 1 });
    expect(passed).toMatchObject({
      kind: 'retryable',
      reason: 'deadline passed before sending',
      notSent: true,
    });
    expect(klaviyo.bulkPosts).toBe(0);
  });
});
