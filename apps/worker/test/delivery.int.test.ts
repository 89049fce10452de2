import { type TestRedis, useTestRedis, waitFor } from '@gk/testing';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { type Harness, KLAVIYO_KEY, metricValue, startHarness } from './harness.js';

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

const STARTED = 'started conversation in Gladly';
const CLOSED = 'closed conversation in Gladly';
const PROP = 'In Gladly Conversation';

async function settled(h: Harness) {
  await waitFor(
    async () => {
      const [t, d] = await Promise.all([
        h.producer.transitions.getJobCounts('waiting', 'active', 'delayed', 'prioritized'),
        h.producer.deliveries.getJobCounts('waiting', 'active', 'delayed', 'prioritized'),
      ]);
      return Object.values(t).every((n) => n === 0) && Object.values(d).every((n) => n === 0);
    },
    { timeoutMs: 20_000, what: 'queues to drain' },
  );
}

describe('transitions → deliveries → Klaviyo', () => {
  it('sends one event per distinct valid email, skipping invalid ones', async () => {
    h = await startHarness(redis.target);
    h.gladly.setCustomer('cust-multi', [
      'Rosa.Alvarez@example.com',
      'rosa.alvarez@EXAMPLE.com ',
      'rosa@work.example.org',
      'not-an-email',
    ]);
    await h.send('CONVERSATION/CREATED', {
      id: 'evt-multi-1',
      customerId: 'cust-multi',
      at: '2026-11-20T14:03:27.512Z',
    });
    await waitFor(() => h.klaviyo.events.length === 2, { what: 'two events' });
    await settled(h);
    const emails = h.klaviyo.events.map((e) => e.email).sort();
    expect(emails).toEqual(['Rosa.Alvarez@example.com', 'rosa@work.example.org']);
    for (const e of h.klaviyo.events) {
      expect(e.uniqueId).toBe('evt-multi-1');
      expect(e.metricName).toBe(STARTED);
      expect(e.time).toBe('2026-11-20T14:03:27.512Z');
      expect(e.properties).toEqual({ [PROP]: true });
      expect(e.backfill).toBe(false);
    }
    expect(h.klaviyo.profile('rosa.alvarez@example.com')?.properties[PROP]).toBe(true);
    expect(await metricValue(h.registry, 'gk_invalid_emails_skipped_total')).toBe(1);
    expect(await metricValue(h.registry, 'gk_deliveries_total', { outcome: 'delivered' })).toBe(2);
    expect(h.logLines.join('\n')).not.toMatch(/rosa/i);
  });

  it('follows a merged customer to the surviving one', async () => {
    h = await startHarness(redis.target);
    h.gladly.setCustomer('cust-new', ['merged@example.com']);
    h.gladly.mergeCustomer('cust-old', 'cust-new');
    await h.send('CONVERSATION/CREATED', {
      id: 'evt-merged',
      customerId: 'cust-old',
      at: '2026-11-20T14:00:00Z',
    });
    await waitFor(() => h.klaviyo.events.length === 1, { what: 'the event' });
    expect(h.klaviyo.events[0]?.email).toBe('merged@example.com');
    const job = await h.producer.transitions.getJob('t-evt-merged');
    expect(job?.returnvalue).toMatchObject({ outcome: 'fanned_out', customerId: 'cust-new', deliveries: 1 });
  });

  it('completes without sending when the customer is unknown or has no email', async () => {
    h = await startHarness(redis.target);
    h.gladly.setCustomer('cust-noemail', ['   ', 'broken@']);
    await h.send('CONVERSATION/CREATED', {
      id: 'evt-404',
      customerId: 'cust-missing',
      at: '2026-11-20T14:00:00Z',
    });
    await h.send('CONVERSATION/CREATED', {
      id: 'evt-noemail',
      customerId: 'cust-noemail',
      at: '2026-11-20T14:00:00Z',
    });
    await settled(h);
    expect((await h.producer.transitions.getJob('t-evt-404'))?.returnvalue).toMatchObject({
      outcome: 'customer_not_found',
    });
    expect((await h.producer.transitions.getJob('t-evt-noemail'))?.returnvalue).toMatchObject({
      outcome: 'no_email',
      invalidEmails: 2,
    });
    expect(h.klaviyo.posts).toBe(0);
    expect(await h.producer.transitions.getFailedCount()).toBe(0);
    expect(await metricValue(h.registry, 'gk_transitions_total', { outcome: 'customer_not_found' })).toBe(1);
    expect(await metricValue(h.registry, 'gk_transitions_total', { outcome: 'no_email' })).toBe(1);
  });

  it('retries Gladly 429 and 503 and still fans out', async () => {
    h = await startHarness(redis.target);
    h.gladly.setCustomer('cust-flaky', ['flaky@example.com']);
    h.gladly.injectFaults({ status: 429, retryAfterSeconds: 1 }, { status: 503 }, { drop: true });
    await h.send('CONVERSATION/CLOSED', {
      id: 'evt-flaky',
      customerId: 'cust-flaky',
      at: '2026-11-20T14:00:00Z',
    });
    await waitFor(() => h.klaviyo.events.length === 1, { timeoutMs: 15_000, what: 'the event' });
    expect(h.klaviyo.events[0]?.metricName).toBe(CLOSED);
    expect(h.klaviyo.events[0]?.properties).toEqual({ [PROP]: false });
    expect(await metricValue(h.registry, 'gk_upstream_throttled_total', { upstream: 'gladly' })).toBe(1);
  });

  it('pauses on Klaviyo 429 for Retry-After without spending an attempt', async () => {
    h = await startHarness(redis.target);
    h.gladly.setCustomer('cust-429', ['throttled@example.com']);
    h.klaviyo.injectFaults({ status: 429, retryAfterSeconds: 1 });
    const t0 = Date.now();
    await h.send('CONVERSATION/CREATED', {
      id: 'evt-k429',
      customerId: 'cust-429',
      at: '2026-11-20T14:00:00Z',
    });
    await waitFor(() => h.klaviyo.events.length === 1, { timeoutMs: 15_000, what: 'the event' });
    const times = h.klaviyo.requestTimes;
    expect(times.length).toBe(2);
    // The retry came after the pause Klaviyo asked for.
    expect((times[1] ?? 0) - (times[0] ?? 0)).toBeGreaterThanOrEqual(900);
    expect(Date.now() - t0).toBeLessThan(10_000);
    await settled(h);
    const job = (await h.producer.deliveries.getCompleted())[0];
    // Only the successful attempt counts: the 429 did not consume one.
    expect(job?.attemptsMade).toBeLessThanOrEqual(1);
  });

  it('rides out a 503 burst and a dropped connection with backoff', async () => {
    h = await startHarness(redis.target);
    h.gladly.setCustomer('cust-503', ['burst@example.com']);
    h.klaviyo.injectFaults({ status: 503 }, { status: 500 }, { drop: true }, { status: 503 });
    await h.send('CONVERSATION/CREATED', {
      id: 'evt-503',
      customerId: 'cust-503',
      at: '2026-11-20T14:00:00Z',
    });
    await waitFor(() => h.klaviyo.events.length === 1, { timeoutMs: 20_000, what: 'the event' });
    expect(h.klaviyo.posts).toBe(5);
    expect(await metricValue(h.registry, 'gk_deliveries_total', { outcome: 'retried' })).toBe(4);
    expect(await h.producer.deliveries.getFailedCount()).toBe(0);
  });

  it('moves a permanent 400 to failed with Klaviyo’s code and detail, without retrying', async () => {
    h = await startHarness(redis.target);
    h.gladly.setCustomer('cust-400', ['refused@example.com']);
    h.klaviyo.injectFaults({ status: 400 });
    await h.send('CONVERSATION/CREATED', {
      id: 'evt-400',
      customerId: 'cust-400',
      at: '2026-11-20T14:00:00Z',
    });
    await waitFor(async () => (await h.producer.deliveries.getFailedCount()) === 1, {
      what: 'the failed job',
    });
    const [failed] = await h.producer.deliveries.getFailed();
    expect(failed?.failedReason).toMatch(/klaviyo 400/);
    expect(failed?.failedReason).toMatch(/invalid/i);
    expect(failed?.failedReason).not.toContain('refused@example.com');
    expect(h.klaviyo.posts).toBe(1);
    expect(await metricValue(h.registry, 'gk_deliveries_total', { outcome: 'failed_permanent' })).toBe(1);
  });

  it('on a rejected Klaviyo key pauses, reports it, and resumes by itself once the key works', async () => {
    h = await startHarness(redis.target);
    h.gladly.setCustomer('cust-401', ['keyed@example.com']);
    h.klaviyo.setApiKey('pk_rotated_elsewhere');
    await h.send('CONVERSATION/CREATED', {
      id: 'evt-401',
      customerId: 'cust-401',
      at: '2026-11-20T14:00:00Z',
    });
    await waitFor(() => h.bridge.klaviyoCredentials.rejected, { what: 'the key to be rejected' });
    expect(h.bridge.klaviyoCredentials.check()).toMatch(/klaviyo credentials rejected/);
    await new Promise((r) => setTimeout(r, 1_000));
    expect(await h.producer.deliveries.getFailedCount()).toBe(0);
    h.klaviyo.setApiKey(KLAVIYO_KEY);
    await waitFor(() => h.klaviyo.events.length === 1, { timeoutMs: 10_000, what: 'delivery after the fix' });
    await waitFor(() => !h.bridge.klaviyoCredentials.rejected, { what: 'readiness to recover' });
    // Klaviyo has the event a moment before the job is marked completed in Redis.
    const job = await waitFor(async () => (await h.producer.deliveries.getCompleted())[0], {
      what: 'the completed delivery',
    });
    expect(job.attemptsMade).toBeLessThanOrEqual(1);
  });

  it('on rejected Gladly credentials pauses lookups and resumes once they work', async () => {
    h = await startHarness(redis.target);
    h.gladly.setCustomer('cust-g401', ['gkeyed@example.com']);
    h.gladly.setCredentials('api-user@acme.test', 'rotated-token');
    await h.send('CONVERSATION/CREATED', {
      id: 'evt-g401',
      customerId: 'cust-g401',
      at: '2026-11-20T14:00:00Z',
    });
    await waitFor(() => h.bridge.gladlyCredentials.rejected, { what: 'gladly credentials rejected' });
    h.gladly.setCredentials('api-user@acme.test', 'gladly-test-token-3f9a');
    await waitFor(() => h.klaviyo.events.length === 1, { timeoutMs: 10_000, what: 'delivery after the fix' });
    expect(h.bridge.gladlyCredentials.rejected).toBe(false);
    expect(await h.producer.transitions.getFailedCount()).toBe(0);
  });
});

describe('order per email', () => {
  it('a close that arrives before its create leaves the profile closed; the create is kept as backfill', async () => {
    h = await startHarness(redis.target);
    h.gladly.setCustomer('cust-order', ['order@example.com']);
    await h.send('CONVERSATION/CLOSED', {
      id: 'evt-close',
      customerId: 'cust-order',
      at: '2026-11-20T14:41:09.004Z',
    });
    await waitFor(() => h.klaviyo.events.length === 1, { what: 'the close' });
    await h.send('CONVERSATION/CREATED', {
      id: 'evt-create',
      customerId: 'cust-order',
      at: '2026-11-20T14:03:27.512Z',
    });
    await waitFor(() => h.klaviyo.events.length === 2, { what: 'the late create' });
    const late = h.klaviyo.events.find((e) => e.uniqueId === 'evt-create');
    expect(late?.backfill).toBe(true);
    expect(late?.profileProperties).toBeUndefined();
    expect(h.klaviyo.profile('order@example.com')?.properties[PROP]).toBe(false);
    expect(await metricValue(h.registry, 'gk_deliveries_total', { outcome: 'delivered_backfill' })).toBe(1);
  });

  it('a newer transition Klaviyo refused for good leaves no claim: an older one after it sets the profile', async () => {
    h = await startHarness(redis.target);
    h.gladly.setCustomer('cust-refused', ['refused@example.com']);
    h.klaviyo.injectFaults({ status: 400 });
    await h.send('CONVERSATION/CLOSED', {
      id: 'evt-refused-close',
      customerId: 'cust-refused',
      at: '2026-11-20T14:41:09.004Z',
    });
    await waitFor(async () => (await h.producer.deliveries.getFailedCount()) === 1, {
      what: 'the refused close to fail',
    });
    await h.send('CONVERSATION/CREATED', {
      id: 'evt-refused-create',
      customerId: 'cust-refused',
      at: '2026-11-20T14:03:27.512Z',
    });
    await waitFor(() => h.klaviyo.events.length === 1, { what: 'the create' });
    // Klaviyo never recorded the close, so the create is the newest it has: applied, not backfill.
    expect(h.klaviyo.events[0]?.uniqueId).toBe('evt-refused-create');
    expect(h.klaviyo.events[0]?.backfill).toBe(false);
    expect(h.klaviyo.profile('refused@example.com')?.properties[PROP]).toBe(true);
  });

  it('a newer transition refused for good after a 5xx leaves no claim: an older one after it sets the profile', async () => {
    h = await startHarness(redis.target);
    h.gladly.setCustomer('cust-5xx-400', ['refused.later@example.com']);
    // Attempt 1 gets a 500 (Klaviyo may have recorded it: the claim stays), attempt 2 a 400.
    h.klaviyo.injectFaults({ status: 500 }, { status: 400 });
    await h.send('CONVERSATION/CLOSED', {
      id: 'evt-5xx-close',
      customerId: 'cust-5xx-400',
      at: '2026-11-20T14:41:09.004Z',
    });
    await waitFor(async () => (await h.producer.deliveries.getFailedCount()) === 1, {
      what: 'the close to fail on its second attempt',
    });
    await h.send('CONVERSATION/CREATED', {
      id: 'evt-5xx-create',
      customerId: 'cust-5xx-400',
      at: '2026-11-20T14:03:27.512Z',
    });
    await waitFor(() => h.klaviyo.events.length === 1, { what: 'the create' });
    expect(h.klaviyo.events[0]?.backfill).toBe(false);
    expect(h.klaviyo.profile('refused.later@example.com')?.properties[PROP]).toBe(true);
  });

  it('a create/close/reopen burst ends open for every email, with every event recorded once', async () => {
    h = await startHarness(redis.target, { WORKER_CONCURRENCY: '20' });
    h.gladly.setCustomer('cust-burst', ['one@example.com', 'two@example.com', 'three@example.com']);
    await Promise.all([
      h.send('CONVERSATION/REOPENED', { id: 'b3', customerId: 'cust-burst', at: '2026-11-20T16:00:00Z' }),
      h.send('CONVERSATION/CLOSED', { id: 'b2', customerId: 'cust-burst', at: '2026-11-20T15:00:00Z' }),
      h.send('CONVERSATION/CREATED', { id: 'b1', customerId: 'cust-burst', at: '2026-11-20T14:00:00Z' }),
    ]);
    await waitFor(() => h.klaviyo.events.length === 9, { timeoutMs: 15_000, what: 'nine events' });
    await settled(h);
    for (const email of ['one@example.com', 'two@example.com', 'three@example.com']) {
      const profile = h.klaviyo.profile(email);
      expect(profile?.properties[PROP]).toBe(true);
      expect(profile?.events.map((e) => e.uniqueId).sort()).toEqual(['b1', 'b2', 'b3']);
    }
    expect(h.klaviyo.duplicates).toBe(0);
  });

  it('never runs two deliveries for one email at the same time', async () => {
    h = await startHarness(redis.target, { WORKER_CONCURRENCY: '20' });
    h.gladly.setCustomer('cust-lease', ['lease@example.com']);
    h.klaviyo.setLatency(150);
    await Promise.all(
      Array.from({ length: 6 }, (_, i) =>
        h.send(i % 2 === 0 ? 'CONVERSATION/CREATED' : 'CONVERSATION/CLOSED', {
          id: `lease-${i}`,
          customerId: 'cust-lease',
          at: new Date(Date.parse('2026-11-20T14:00:00Z') + i * 1000).toISOString(),
        }),
      ),
    );
    await waitFor(() => h.klaviyo.events.length === 6, { timeoutMs: 20_000, what: 'six events' });
    // Each request takes 150 ms at the stand-in; serialised ones therefore start ≥ 150 ms apart.
    const starts = h.klaviyo.requestTimes.slice().sort((a, b) => a - b);
    const overlapping = starts.slice(1).filter((t, i) => t - (starts[i] ?? 0) < 140);
    expect(overlapping).toEqual([]);
    // lease-5 (closed) is the newest.
    expect(h.klaviyo.profile('lease@example.com')?.properties[PROP]).toBe(false);
  });
});
