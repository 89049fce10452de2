import { readFileSync } from 'node:fs';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { type KlaviyoRecordedEvent, type KlaviyoStandIn, startKlaviyoStandIn } from '../src/index.js';

const sample = readFileSync(new URL('../../../fixtures/klaviyo/create-event.json', import.meta.url), 'utf8');
const KEY = 'pk_raw';

interface ErrorsBody {
  errors: Array<{ status: number; code: string; title: string; source: Record<string, string> }>;
}
interface RecordedBody {
  events: KlaviyoRecordedEvent[];
  profiles: Array<{ email: string; properties: Record<string, unknown> }>;
  counts: Record<string, number>;
}
let klaviyo: KlaviyoStandIn;

beforeEach(async () => {
  klaviyo = await startKlaviyoStandIn({ apiKey: KEY, revisionMin: '2024-01-01' });
});

afterEach(async () => {
  await klaviyo.close();
});

const headers = (overrides: Record<string, string | undefined> = {}) => {
  const all: Record<string, string | undefined> = {
    authorization: `Klaviyo-API-Key ${KEY}`,
    revision: '2026-07-15',
    accept: 'application/vnd.api+json',
    'content-type': 'application/vnd.api+json',
    ...overrides,
  };
  return Object.fromEntries(Object.entries(all).filter((e): e is [string, string] => e[1] !== undefined));
};

async function post(
  body: string = sample,
  overrides: Record<string, string | undefined> = {},
  path = '/api/events',
) {
  const res = await fetch(`${klaviyo.url}${path}`, { method: 'POST', headers: headers(overrides), body });
  const text = await res.text();
  return {
    status: res.status,
    headers: res.headers,
    text,
    json: (text ? JSON.parse(text) : { errors: [] }) as ErrorsBody,
  };
}

describe('Klaviyo stand-in', () => {
  it('accepts the documented sample with 202 and an empty body', async () => {
    const res = await post();
    expect(res.status).toBe(202);
    expect(res.text).toBe('');
    expect(klaviyo.accepted).toBe(1);
  });

  it('accepts plain application/json too, and a trailing slash', async () => {
    expect(
      (await post(sample, { 'content-type': 'application/json; charset=utf-8' }, '/api/events/')).status,
    ).toBe(202);
  });

  it('refuses a missing or malformed revision, or one older than revisionMin, naming the header', async () => {
    for (const revision of [undefined, 'latest', '2023-12-31']) {
      const res = await post(sample, { revision });
      expect(res.status).toBe(400);
      expect(res.json.errors[0]).toMatchObject({ code: 'invalid', source: { header: 'revision' } });
    }
  });

  it('refuses another content type with 415', async () => {
    const res = await post(sample, { 'content-type': 'text/plain' });
    expect(res.status).toBe(415);
    expect(res.json.errors[0]?.code).toBe('unsupported_media_type');
  });

  it('refuses bad JSON with 400 parse_error', async () => {
    const res = await post('{"data":');
    expect(res.status).toBe(400);
    expect(res.json.errors[0]).toMatchObject({ status: 400, code: 'parse_error' });
  });

  it('refuses an invalid body with Klaviyo’s error shape and the pointer', async () => {
    const body = JSON.parse(sample);
    delete body.data.attributes.unique_id;
    const res = await post(JSON.stringify(body));
    expect(res.status).toBe(400);
    expect(res.json.errors[0]).toEqual({
      id: expect.any(String),
      status: 400,
      code: 'invalid',
      title: 'Invalid input.',
      detail: expect.stringContaining('unique_id'),
      source: { pointer: '/data/attributes/unique_id' },
      meta: {},
    });
    expect(klaviyo.posts).toBe(1);
    expect(klaviyo.events).toHaveLength(0);
  });

  it('answers 401 for a missing or wrong key, before looking at the body', async () => {
    expect((await post('nonsense', { authorization: undefined })).json.errors[0]?.code).toBe(
      'not_authenticated',
    );
    const wrong = await post('nonsense', { authorization: 'Klaviyo-API-Key pk_other' });
    expect(wrong.status).toBe(401);
    expect(wrong.json.errors[0]?.code).toBe('authentication_failed');
    klaviyo.setApiKey('pk_other');
    expect((await post(sample, { authorization: 'Klaviyo-API-Key pk_other' })).status).toBe(202);
  });

  it('throttles past the bucket with an integer Retry-After and the throttled error body', async () => {
    // One token per 5 s after a burst of 3: no refill can sneak in between these requests.
    klaviyo.setRateLimit(0.2, 3);
    const statuses = [];
    for (let i = 0; i < 5; i += 1) statuses.push((await post()).status);
    expect(statuses).toEqual([202, 202, 202, 429, 429]);
    const res = await post();
    expect(res.headers.get('retry-after')).toMatch(/^[1-9]\d*$/);
    expect(res.json.errors[0]).toMatchObject({
      status: 429,
      code: 'throttled',
      title: 'Request was throttled.',
    });
    expect(klaviyo.throttled).toBe(3);
    expect(klaviyo.requestTimes).toHaveLength(6);
  });

  it('plays injected faults in order, then answers normally', async () => {
    klaviyo.injectFaults({ status: 429, retryAfterSeconds: 3 }, { status: 500 });
    const first = await post();
    expect([first.status, first.headers.get('retry-after')]).toEqual([429, '3']);
    expect((await post()).status).toBe(500);
    expect((await post()).status).toBe(202);
    expect(klaviyo.posts).toBe(3);
    expect(klaviyo.throttled).toBe(1);
  });

  it('drop destroys the socket without an answer', async () => {
    klaviyo.injectFaults({ drop: true });
    await expect(post()).rejects.toThrow(TypeError);
    expect((await post()).status).toBe(202);
  });

  it('serves the dedupe view at GET /api/events/_recorded and tells listeners', async () => {
    const seen: KlaviyoRecordedEvent[] = [];
    const listener = (e: KlaviyoRecordedEvent) => seen.push(e);
    klaviyo.on('event', listener);
    await post();
    await post();
    klaviyo.off('event', listener);
    const other = JSON.parse(sample);
    other.data.attributes.unique_id = 'another';
    await post(JSON.stringify(other));
    expect(seen.map((e) => e.uniqueId)).toEqual(['e7Qk2mLxT1aVb0cD9fGh3w']);

    const recorded = (await (await fetch(`${klaviyo.url}/api/events/_recorded`)).json()) as RecordedBody;
    expect(recorded.counts).toEqual({ posts: 3, accepted: 3, duplicates: 1, throttled: 0 });
    expect(recorded.events.map((e: KlaviyoRecordedEvent) => e.uniqueId)).toEqual([
      'e7Qk2mLxT1aVb0cD9fGh3w',
      'another',
    ]);
    expect(recorded.profiles).toEqual([
      { email: 'Rosa.Alvarez@example.com', properties: { 'In Gladly Conversation': true } },
    ]);
  });

  it('reset forgets events, profiles and counters', async () => {
    await post();
    klaviyo.reset();
    expect([klaviyo.posts, klaviyo.accepted, klaviyo.events.length, klaviyo.profiles().length]).toEqual([
      0, 0, 0, 0,
    ]);
    expect((await post()).status).toBe(202);
    expect(klaviyo.duplicates).toBe(0);
  });

  it('answers 404 elsewhere and 405 for other methods on /api/events', async () => {
    expect((await fetch(`${klaviyo.url}/api/lists`)).status).toBe(404);
    const get = await fetch(`${klaviyo.url}/api/events`);
    expect([get.status, get.headers.get('allow')]).toEqual([405, 'POST']);
  });

  it('GET /api/profiles: only equals(email,"…") (escapes included), with key and revision', async () => {
    klaviyo.seedProfiles('we"ird@example.com');
    const get = (
      filter: string,
      headers: Record<string, string> = { authorization: `Klaviyo-API-Key ${KEY}`, revision: '2026-07-15' },
    ) => fetch(`${klaviyo.url}/api/profiles?filter=${encodeURIComponent(filter)}`, { headers });
    const found = await get('equals(email,"WE\\"IRD@example.com")');
    expect(found.status).toBe(200);
    expect(found.headers.get('content-type')).toBe('application/vnd.api+json');
    expect(
      ((await found.json()) as { data: { attributes: { email: string } }[] }).data[0]?.attributes.email,
    ).toBe('we"ird@example.com');
    const bad = await get('any(email,["a@example.com"])');
    expect(bad.status).toBe(400);
    expect(((await bad.json()) as { errors: { source: unknown }[] }).errors[0]?.source).toEqual({
      parameter: 'filter',
    });
    expect((await get('equals(email,"a@example.com")', { revision: '2026-07-15' })).status).toBe(401);
    expect(
      (await get('equals(email,"a@example.com")', { authorization: `Klaviyo-API-Key ${KEY}` })).status,
    ).toBe(400);
    expect(klaviyo.profileLookups).toBe(1);
  });

  it('close() ends promptly even with a slow request in flight', async () => {
    klaviyo.setLatency(30_000);
    const inFlight = post().then(
      () => 'answered',
      () => 'failed',
    );
    while (klaviyo.posts === 0) await new Promise((r) => setTimeout(r, 10));
    const started = Date.now();
    await klaviyo.close();
    expect(Date.now() - started).toBeLessThan(1_000);
    expect(await inFlight).toBe('failed');
    klaviyo = await startKlaviyoStandIn();
  });
});
