/** The Klaviyo stand-in's account endpoints over HTTP: segments, metrics, key scopes, revisions. */
import { readFileSync } from 'node:fs';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import {
  type GladlyStandIn,
  type KlaviyoStandIn,
  startGladlyStandIn,
  startKlaviyoStandIn,
} from '../src/index.js';

const sample = readFileSync(new URL('../../../fixtures/klaviyo/create-event.json', import.meta.url), 'utf8');
const KEY = 'pk_account';
const headers = {
  authorization: `Klaviyo-API-Key ${KEY}`,
  revision: '2026-07-15',
  accept: 'application/vnd.api+json',
  'content-type': 'application/vnd.api+json',
};
const segmentBody = (name: string) =>
  JSON.stringify({
    data: {
      type: 'segment',
      attributes: {
        name,
        definition: {
          condition_groups: [
            {
              conditions: [
                {
                  type: 'profile-property',
                  property: "properties['In Gladly Conversation']",
                  filter: { type: 'boolean', operator: 'equals', value: true },
                },
              ],
            },
          ],
        },
      },
    },
  });

let klaviyo: KlaviyoStandIn;
beforeEach(async () => {
  klaviyo = await startKlaviyoStandIn({ apiKey: KEY });
});
afterEach(async () => {
  await klaviyo.close();
});

const get = (path: string) => fetch(`${klaviyo.url}${path}`, { headers });
const postSegment = (body: string) => fetch(`${klaviyo.url}/api/segments`, { method: 'POST', headers, body });

describe('segments', () => {
  it('Create Segment answers 201 with the resource; Get Segments finds it by name, 10 a page at most', async () => {
    const created = await postSegment(segmentBody('A'));
    expect(created.status).toBe(201);
    const { data } = (await created.json()) as {
      data: { id: string; type: string; attributes: { name: string } };
    };
    expect(data).toMatchObject({ type: 'segment', attributes: { name: 'A' } });
    await postSegment(segmentBody('B'));
    await postSegment(segmentBody('A'));

    const byName = (await (await get('/api/segments?filter=equals(name,"A")&page[size]=1')).json()) as {
      data: { id: string }[];
      links: { next: string | null };
    };
    expect(byName.data.map((s) => s.id)).toEqual([data.id]);
    expect(byName.links.next).toContain('page%5Bcursor%5D=1');
    const next = (await (
      await get(new URL(byName.links.next ?? '').pathname + new URL(byName.links.next ?? '').search)
    ).json()) as {
      data: unknown[];
      links: { next: string | null };
    };
    expect(next.data).toHaveLength(1);
    expect(next.links.next).toBeNull();
    expect((await get('/api/segments?page[size]=11')).status).toBe(400);
  });

  it('refuses a body outside the schema with 400 and a pointer, and never stores it', async () => {
    const answer = await postSegment(
      JSON.stringify({ data: { type: 'segment', attributes: { name: 'x' } } }),
    );
    expect(answer.status).toBe(400);
    const { errors } = (await answer.json()) as { errors: { source: { pointer: string } }[] };
    expect(errors[0]?.source.pointer).toBe('/data/attributes/definition');
    expect(klaviyo.segments).toHaveLength(0);
  });

  it('allows 100 creates a day, then 429', async () => {
    await klaviyo.close();
    klaviyo = await startKlaviyoStandIn({ apiKey: KEY, segmentCreatesPerDay: 2 });
    expect((await postSegment(segmentBody('1'))).status).toBe(201);
    expect((await postSegment(segmentBody('2'))).status).toBe(201);
    const third = await postSegment(segmentBody('3'));
    expect(third.status).toBe(429);
    expect(third.headers.get('retry-after')).toBe('3600');
  });
});

describe('key scopes and revisions', () => {
  it('answers 403 for each endpoint whose scope the key lacks, before reading the body', async () => {
    klaviyo.setScopes(['segments:write']);
    const event = await fetch(`${klaviyo.url}/api/events`, { method: 'POST', headers, body: sample });
    expect(event.status).toBe(403);
    expect(((await event.json()) as { errors: { code: string; detail: string }[] }).errors[0]).toMatchObject({
      code: 'permission_denied',
      detail: 'This API key is missing the required scope: events:write.',
    });
    expect((await get('/api/metrics')).status).toBe(403);
    expect((await get('/api/profiles?page[size]=1')).status).toBe(403);
    // Write access includes read access.
    expect((await get('/api/segments')).status).toBe(200);
    expect(klaviyo.events).toHaveLength(0);
  });

  it('refuses an older revision once told to', async () => {
    klaviyo.setRevisionMin('2027-01-15');
    const answer = await get('/api/segments');
    expect(answer.status).toBe(400);
    expect(((await answer.json()) as { errors: { source: { header: string } }[] }).errors[0]?.source).toEqual(
      {
        header: 'revision',
      },
    );
  });
});

describe('metrics', () => {
  it('lists a metric once an event of it was recorded', async () => {
    const empty = (await (await get('/api/metrics')).json()) as { data: unknown[] };
    expect(empty.data).toEqual([]);
    expect((await fetch(`${klaviyo.url}/api/events`, { method: 'POST', headers, body: sample })).status).toBe(
      202,
    );
    const listed = (await (await get('/api/metrics')).json()) as {
      data: { type: string; attributes: { name: string } }[];
    };
    expect(listed.data).toHaveLength(1);
    expect(listed.data[0]).toMatchObject({
      type: 'metric',
      attributes: { name: klaviyo.events[0]?.metricName },
    });
  });
});

describe('Gladly Ratelimit-* headers', () => {
  let gladly: GladlyStandIn;
  afterEach(async () => {
    await gladly.close();
  });
  it('reports limit, remaining and reset while a limit is set', async () => {
    gladly = await startGladlyStandIn({ user: 'u@example.com', token: 'tok-123456' });
    const auth = { authorization: `Basic ${Buffer.from('u@example.com:tok-123456').toString('base64')}` };
    const none = await fetch(`${gladly.url}/api/v1/customer-profiles/nobody`, { headers: auth });
    expect(none.status).toBe(404);
    expect(none.headers.get('ratelimit-limit')).toBeNull();
    gladly.setRateLimit(10);
    const first = await fetch(`${gladly.url}/api/v1/customer-profiles/nobody`, { headers: auth });
    expect(first.headers.get('ratelimit-limit')).toBe('10');
    expect(Number(first.headers.get('ratelimit-remaining'))).toBeLessThanOrEqual(9);
    expect(Number(first.headers.get('ratelimit-reset'))).toBeGreaterThanOrEqual(1);
  });
});
