/**
 * KLAVIYO_CREATE_PROFILES=false: the worker sends only to emails Klaviyo already has a profile
 * for (Get Profiles filtered by email), skips the others (counted, logged with the email hashed)
 * and never creates a profile. Real Redis, the Gladly and Klaviyo stand-ins, the worker factory.
 */
import { hashEmail } from '@gk/domain';
import { type TestRedis, useTestRedis, waitFor } from '@gk/testing';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { type Harness, metricValue, startHarness } from './harness.js';

let redis: TestRedis;
let h: Harness;

beforeAll(async () => {
  redis = await useTestRedis();
});
afterAll(async () => {
  await redis.stop();
});
afterEach(async () => {
  await h?.close();
});

const KNOWN = 'known.customer@example.com';
const UNKNOWN = 'brand.new@example.org';

const deliveries = (outcome: string) => metricValue(h.registry, 'gk_deliveries_total', { outcome });
const checks = (source: string, result: string) =>
  metricValue(h.registry, 'gk_klaviyo_profile_checks_total', { source, result });

describe('KLAVIYO_CREATE_PROFILES=false', () => {
  it('sends to an email with a profile, skips (and counts) one without, and creates no profile', async () => {
    h = await startHarness(redis.target, { KLAVIYO_CREATE_PROFILES: 'false' });
    h.klaviyo.seedProfiles(KNOWN);
    h.gladly.setCustomer('cust-1', ['Known.Customer@example.com', UNKNOWN]);

    await h.send('CONVERSATION/CREATED', { id: 'p-1', customerId: 'cust-1', at: '2026-11-20T10:00:00Z' });
    await waitFor(
      async () => (await deliveries('skipped_no_profile')) === 1 && (await deliveries('delivered')) === 1,
      {
        timeoutMs: 15_000,
        what: 'one delivery sent and one skipped',
      },
    );
    expect(h.klaviyo.events[0]).toMatchObject({ email: 'Known.Customer@example.com', uniqueId: 'p-1' });
    expect(h.klaviyo.profile(UNKNOWN)).toBeUndefined();
    expect(h.klaviyo.posts).toBe(1);
    expect(await deliveries('delivered')).toBe(1);
    expect(await checks('klaviyo', 'exists')).toBe(1);
    expect(await checks('klaviyo', 'absent')).toBe(1);

    // The skip is logged with the email as a keyed hash, never in clear.
    const skipLine = h.logLines.map((l) => JSON.parse(l)).find((l) => l.outcome === 'skipped_no_profile');
    expect(skipLine?.emailHash).toBe(hashEmail(UNKNOWN, await h.bridge.pseudonyms.get()));
    expect(h.logLines.join('\n')).not.toContain(UNKNOWN);

    // The next transition asks Klaviyo nothing: both answers are cached in Redis.
    const lookupsBefore = h.klaviyo.profileLookups;
    await h.send('CONVERSATION/CLOSED', { id: 'p-2', customerId: 'cust-1', at: '2026-11-20T10:05:00Z' });
    await waitFor(
      async () => (await deliveries('skipped_no_profile')) === 2 && (await deliveries('delivered')) === 2,
      {
        timeoutMs: 15_000,
        what: 'the close sent and skipped the same way',
      },
    );
    expect(h.klaviyo.profileLookups).toBe(lookupsBefore);
    expect(await checks('cache', 'exists')).toBe(1);
    expect(await checks('cache', 'absent')).toBe(1);
    expect(h.klaviyo.profile(KNOWN)?.properties['In Gladly Conversation']).toBe(false);
    expect(h.klaviyo.profile(UNKNOWN)).toBeUndefined();
  });

  it('a refused key on the lookup pauses and reports it, and delivery resumes once the key works', async () => {
    h = await startHarness(redis.target, { KLAVIYO_CREATE_PROFILES: 'false' });
    h.klaviyo.seedProfiles(KNOWN);
    h.gladly.setCustomer('cust-2', [KNOWN]);
    h.klaviyo.setApiKey('pk_rotated_elsewhere');
    await h.send('CONVERSATION/CREATED', { id: 'p-3', customerId: 'cust-2', at: '2026-11-20T11:00:00Z' });
    await waitFor(() => h.bridge.klaviyoCredentials.rejected, {
      timeoutMs: 10_000,
      what: 'the key to be reported',
    });
    expect(h.klaviyo.events).toHaveLength(0);
    expect(await deliveries('skipped_no_profile')).toBe(0);
    h.klaviyo.setApiKey(h.config.klaviyo.apiKey);
    await waitFor(() => h.klaviyo.events.length === 1, {
      timeoutMs: 15_000,
      what: 'the delivery after the fix',
    });
    // The stand-in records the event before the worker has read its 202.
    await waitFor(() => !h.bridge.klaviyoCredentials.rejected, {
      timeoutMs: 5_000,
      what: 'the key to be reported as working again',
    });
  });

  it('with the default (true) nothing is looked up and a new email gets its profile', async () => {
    h = await startHarness(redis.target);
    h.gladly.setCustomer('cust-3', [UNKNOWN]);
    await h.send('CONVERSATION/CREATED', { id: 'p-4', customerId: 'cust-3', at: '2026-11-20T12:00:00Z' });
    await waitFor(() => h.klaviyo.events.length === 1, { timeoutMs: 15_000, what: 'the delivery' });
    expect(h.klaviyo.profileLookups).toBe(0);
    expect(h.klaviyo.profile(UNKNOWN)).toBeDefined();
  });
});
