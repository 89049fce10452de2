import { type KlaviyoStandIn, startKlaviyoStandIn } from '@gk/stand-ins';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { createKlaviyoClient } from '../src/index.js';

const KEY = 'pk_test_profiles_42';
let klaviyo: KlaviyoStandIn;

beforeEach(async () => {
  klaviyo = await startKlaviyoStandIn({ apiKey: KEY, profiles: ['Known.Person@example.com'] });
});

afterEach(async () => {
  await klaviyo.close();
});

const client = (apiKey = KEY) => createKlaviyoClient({ baseUrl: klaviyo.url, apiKey });

describe('lookupProfile against the Klaviyo stand-in (Get Profiles filtered by email)', () => {
  it('finds a profile that exists, case-insensitively; not one that does not', async () => {
    expect(await client().lookupProfile('known.person@EXAMPLE.com')).toMatchObject({
      kind: 'exists',
      status: 200,
    });
    expect(await client().lookupProfile('nobody@example.com')).toMatchObject({ kind: 'absent', status: 200 });
    expect(klaviyo.profileLookups).toBe(2);
  });

  it('finds a profile an event created', async () => {
    expect((await client().lookupProfile('new.person@example.com')).kind).toBe('absent');
    await client().createEvent({
      email: 'New.Person@example.com',
      metricName: 'started conversation in Gladly',
      propertyName: 'In Gladly Conversation',
      value: true,
      uniqueId: 'evt-p1',
      time: '2026-11-20T14:03:27.512Z',
      backfill: false,
    });
    expect((await client().lookupProfile('new.person@example.com')).kind).toBe('exists');
  });

  it('a wrong key → auth; a lookup creates nothing and is no event', async () => {
    expect(await client('pk_wrong').lookupProfile('known.person@example.com')).toMatchObject({
      kind: 'auth',
      status: 401,
    });
    expect(klaviyo.posts).toBe(0);
    expect(klaviyo.profiles()).toHaveLength(0);
  });

  it('an unreachable Klaviyo → retryable, never absent', async () => {
    const url = klaviyo.url;
    await klaviyo.close();
    const outcome = await createKlaviyoClient({ baseUrl: url, apiKey: KEY, timeoutMs: 1_000 }).lookupProfile(
      'x@example.com',
    );
    expect(outcome.kind).toBe('retryable');
    klaviyo = await startKlaviyoStandIn();
  });
});
