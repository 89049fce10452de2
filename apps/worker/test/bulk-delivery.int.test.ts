import { deliveryJobId } from '@gk/queue';
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

const PROP = 'In Gladly Conversation';
const T0 = Date.UTC(2026, 10, 20, 14, 0, 0);

/** Adds deliveries straight to the queue, as the fan-out would (one per email and event). */
async function addDeliveries(
  h: Harness,
  items: { email: string; eventId: string; kind: 'started' | 'closed'; at: number; conv?: string }[],
) {
  const key = await h.bridge.pseudonyms.get();
  await h.producer.deliveries.addBulk(
    items.map((i) => ({
      name: 'deliver',
      data: {
        eventId: i.eventId,
        kind: i.kind,
        gladlyType: i.kind === 'started' ? 'CONVERSATION/CREATED' : 'CONVERSATION/CLOSED',
        customerId: `cust-${i.email}`,
        conversationId: i.conv ?? `conv-${i.email}`,
        occurredAt: new Date(i.at).toISOString(),
        receivedAt: new Date(i.at).toISOString(),
        email: i.email,
        resolvedCustomerId: `cust-${i.email}`,
      },
      opts: { jobId: deliveryJobId(i.eventId, i.email, key), attempts: 8 },
    })),
  );
}

async function drained(h: Harness, timeoutMs = 30_000) {
  await waitFor(
    async () => {
      const c = await h.producer.deliveries.getJobCounts('waiting', 'active', 'delayed', 'prioritized');
      return Object.values(c).every((n) => n === 0);
    },
    { timeoutMs, what: 'the deliveries queue to drain' },
  );
}

/** Starts the harness paused, fills the queue, then lets the worker go: a backlog at once. */
async function withBacklog(env: Record<string, string>, fill: (h: Harness) => Promise<void>) {
  h = await startHarness(redis.target, { KLAVIYO_DELIVERY_MODE: 'bulk', ...env });
  await h.producer.deliveries.pause();
  await fill(h);
  await h.producer.deliveries.resume();
  return h;
}

describe('bulk delivery (KLAVIYO_DELIVERY_MODE=bulk)', () => {
  it('sends a backlog in bulk requests: every event recorded once, every job completed, no single request', async () => {
    const n = 250;
    await withBacklog({}, (h) =>
      addDeliveries(
        h,
        Array.from({ length: n }, (_, i) => ({
          email: `bulk${i}@example.com`,
          eventId: `evb-${i}`,
          kind: 'started' as const,
          at: T0 + i,
        })),
      ),
    );
    await drained(h);
    expect(h.klaviyo.events).toHaveLength(n);
    expect(h.klaviyo.posts).toBe(0);
    expect(h.klaviyo.bulkAccepted).toBeGreaterThan(0);
    expect(h.klaviyo.bulkAccepted).toBeLessThan(20);
    expect(h.klaviyo.profile('bulk7@example.com')?.properties[PROP]).toBe(true);
    const completed = await h.producer.deliveries.getJobCounts('completed', 'failed');
    expect(completed).toEqual({ completed: n, failed: 0 });
    expect(await metricValue(h.registry, 'gk_deliveries_total', { outcome: 'delivered' })).toBe(n);
    expect(await metricValue(h.registry, 'gk_klaviyo_bulk_requests_total', { outcome: 'delivered' })).toBe(
      h.klaviyo.bulkAccepted,
    );
    // No address in the logs, bulk or not.
    expect(h.logLines.join('\n')).not.toMatch(/bulk7@example/);
  });

  it('keeps per-email order: an older transition in the same backlog goes as backfill, the newest sets the profile', async () => {
    await withBacklog({}, (h) =>
      addDeliveries(h, [
        // Added newest first: whichever the batch takes first, the profile must end closed.
        { email: 'order@example.com', eventId: 'evo-close', kind: 'closed', at: T0 + 2_000 },
        { email: 'order@example.com', eventId: 'evo-open', kind: 'started', at: T0 + 1_000 },
        { email: 'other@example.com', eventId: 'evo-other', kind: 'started', at: T0 + 1_000 },
      ]),
    );
    await drained(h);
    const forOrder = h.klaviyo.events.filter((e) => e.email === 'order@example.com');
    expect(forOrder.map((e) => e.uniqueId).sort()).toEqual(['evo-close', 'evo-open']);
    expect(forOrder.find((e) => e.uniqueId === 'evo-open')?.backfill).toBe(true);
    expect(forOrder.find((e) => e.uniqueId === 'evo-close')?.backfill).toBe(false);
    expect(h.klaviyo.profile('order@example.com')?.properties[PROP]).toBe(false);
    expect(h.klaviyo.profile('other@example.com')?.properties[PROP]).toBe(true);
  });

  it('a slow bulk request holds its emails until answered: a newer transition never overtakes it (chaos found this)', async () => {
    // A 2 s job lock, a 7 s lease: a request cut off at the lock would leave Klaviyo applying
    // it later, after the newer transition went out.
    h = await startHarness(
      redis.target,
      { KLAVIYO_DELIVERY_MODE: 'bulk', WORKER_LOCK_DURATION_MS: '2000' },
      { backoff: { baseMs: 5_000, capMs: 5_000 } },
    );
    h.klaviyo.injectFaults({ delayMs: 4_000 });
    await addDeliveries(h, [{ email: 'slow@example.com', eventId: 'evs-open', kind: 'started', at: T0 }]);
    await waitFor(() => h.klaviyo.bulkPosts >= 1, { what: 'the slow request' });
    await addDeliveries(h, [
      { email: 'slow@example.com', eventId: 'evs-close', kind: 'closed', at: T0 + 1_000 },
    ]);
    await waitFor(() => h.klaviyo.events.length === 2, { timeoutMs: 20_000, what: 'both events' });
    await new Promise((r) => setTimeout(r, 1_000));
    await drained(h);
    const [first, second] = h.klaviyo.events;
    expect([first?.uniqueId, second?.uniqueId]).toEqual(['evs-open', 'evs-close']);
    expect(h.klaviyo.profile('slow@example.com')?.properties[PROP]).toBe(false);
  });

  it('a 429 puts the batch back without spending attempts; a 503 retries it; nothing is lost', async () => {
    await withBacklog({}, async (h) => {
      h.klaviyo.injectFaults({ status: 429, retryAfterSeconds: 1 }, { status: 503 });
      await addDeliveries(
        h,
        Array.from({ length: 40 }, (_, i) => ({
          email: `retry${i}@example.com`,
          eventId: `evr-${i}`,
          kind: 'started' as const,
          at: T0 + i,
        })),
      );
    });
    await drained(h);
    expect(h.klaviyo.events).toHaveLength(40);
    expect(await metricValue(h.registry, 'gk_klaviyo_bulk_requests_total', { outcome: 'rate_limited' })).toBe(
      1,
    );
    expect(await metricValue(h.registry, 'gk_klaviyo_bulk_requests_total', { outcome: 'retryable' })).toBe(1);
    const jobs = await h.producer.deliveries.getCompleted(0, -1);
    // A completed job counts its success as an attempt: the 503 adds one, a 429 put back none
    // (it would make 3).
    expect(Math.max(...jobs.map((j) => j.attemptsMade))).toBe(2);
  });

  it('bisects a refused request: the refused event fails permanently with Klaviyo’s reason, the rest are sent', async () => {
    await withBacklog({}, async (h) => {
      h.klaviyo.refuseEmails('refused@example.com');
      await addDeliveries(h, [
        ...Array.from({ length: 30 }, (_, i) => ({
          email: `fine${i}@example.com`,
          eventId: `evf-${i}`,
          kind: 'started' as const,
          at: T0 + i,
        })),
        { email: 'refused@example.com', eventId: 'evf-bad', kind: 'started', at: T0 + 100 },
      ]);
    });
    await drained(h);
    expect(h.klaviyo.events.map((e) => e.email)).not.toContain('refused@example.com');
    expect(h.klaviyo.events).toHaveLength(30);
    const failed = await h.producer.deliveries.getFailed(0, -1);
    expect(failed).toHaveLength(1);
    expect(failed[0]?.data.eventId).toBe('evf-bad');
    expect(failed[0]?.failedReason).toMatch(/klaviyo 400/);
    expect(
      await metricValue(h.registry, 'gk_klaviyo_bulk_requests_total', { outcome: 'permanent' }),
    ).toBeGreaterThan(0);
  });

  it('KLAVIYO_CREATE_PROFILES=false holds in bulk: an email without a profile is skipped', async () => {
    await withBacklog({ KLAVIYO_CREATE_PROFILES: 'false' }, async (h) => {
      h.klaviyo.seedProfiles('known@example.com');
      await addDeliveries(h, [
        { email: 'known@example.com', eventId: 'evp-1', kind: 'started', at: T0 },
        { email: 'unknown@example.com', eventId: 'evp-2', kind: 'started', at: T0 },
      ]);
    });
    await drained(h);
    expect(h.klaviyo.events.map((e) => e.email)).toEqual(['known@example.com']);
    expect(h.klaviyo.profile('unknown@example.com')).toBeUndefined();
    const skipped = await h.producer.deliveries.getJob(
      deliveryJobId('evp-2', 'unknown@example.com', await h.bridge.pseudonyms.get()),
    );
    expect(skipped?.returnvalue).toEqual({ outcome: 'skipped_no_profile' });
  });
});

describe('bulk delivery through a Klaviyo outage (the breaker)', () => {
  it('pauses without spending attempts while Klaviyo is down, and sends the whole backlog in bulk within seconds of recovery', async () => {
    // A minute of backoff per failed attempt: only the breaker can release the backlog sooner.
    h = await startHarness(
      redis.target,
      { KLAVIYO_DELIVERY_MODE: 'bulk' },
      { backoff: { baseMs: 60_000, capMs: 60_000 } },
    );
    h.klaviyo.setOutage(503);
    // Many small batches, so the breaker's window fills (10 answers) while the backlog stays.
    for (let round = 0; round < 15; round += 1) {
      await addDeliveries(
        h,
        Array.from({ length: 20 }, (_, i) => ({
          email: `down${round}-${i}@example.com`,
          eventId: `evd-${round}-${i}`,
          kind: 'started' as const,
          at: T0 + i,
        })),
      );
      await new Promise((r) => setTimeout(r, 50));
    }
    await waitFor(
      async () =>
        (await metricValue(h.registry, 'gk_klaviyo_breaker_transitions_total', { to: 'open' })) >= 1,
      { timeoutMs: 20_000, what: 'the breaker to open' },
    );
    await new Promise((r) => setTimeout(r, 500));
    const jobs = () =>
      h.producer.deliveries.getJobs(['waiting', 'active', 'delayed', 'prioritized', 'completed']);
    const spent = async () => (await jobs()).reduce((sum, j) => sum + (j?.attemptsMade ?? 0), 0);
    const before = await spent();
    const requestsBefore = h.klaviyo.bulkPosts;
    await new Promise((r) => setTimeout(r, 2_500));
    expect(await spent()).toBe(before);
    // One probe at a time, a batch of one: a handful of requests at most.
    expect(h.klaviyo.bulkPosts - requestsBefore).toBeLessThanOrEqual(4);

    h.klaviyo.setOutage(null);
    const recovered = Date.now();
    await waitFor(() => h.klaviyo.events.length === 300, { timeoutMs: 20_000, what: 'every delivery' });
    expect(Date.now() - recovered).toBeLessThan(8_000);
    expect(h.klaviyo.posts).toBe(0);
    expect(await h.producer.deliveries.getFailedCount()).toBe(0);
    expect(await metricValue(h.registry, 'gk_klaviyo_breaker_transitions_total', { to: 'closed' })).toBe(1);
  });
});

describe('auto mode', () => {
  it('sends single events while the backlog is short, bulk requests while it is long', async () => {
    h = await startHarness(redis.target, { KLAVIYO_DELIVERY_MODE: 'auto', KLAVIYO_BULK_MIN_BACKLOG: '50' });
    await addDeliveries(h, [{ email: 'live@example.com', eventId: 'eva-live', kind: 'started', at: T0 }]);
    await drained(h);
    expect(h.klaviyo.posts).toBe(1);
    expect(h.klaviyo.bulkAccepted).toBe(0);

    await h.producer.deliveries.pause();
    await addDeliveries(
      h,
      Array.from({ length: 400 }, (_, i) => ({
        email: `auto${i}@example.com`,
        eventId: `eva-${i}`,
        kind: 'started' as const,
        at: T0 + i,
      })),
    );
    await h.producer.deliveries.resume();
    await drained(h);
    expect(h.klaviyo.events).toHaveLength(401);
    expect(h.klaviyo.bulkAccepted).toBeGreaterThan(0);
    expect(h.config.klaviyo.deliveryMode).toBe('auto');
  });
});
