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

const COUNT = 15;

async function attemptsSpent(h: Harness): Promise<number> {
  const jobs = await h.producer.deliveries.getJobs([
    'waiting',
    'active',
    'delayed',
    'prioritized',
    'completed',
  ]);
  return jobs.reduce((sum, j) => sum + (j?.attemptsMade ?? 0), 0);
}

describe('Klaviyo outage breaker', () => {
  it('opens on a 503 outage without spending attempts, and releases the whole backlog within seconds of recovery', async () => {
    // A minute of backoff per failed attempt: without the breaker the backlog would trickle out
    // over a minute after Klaviyo recovers.
    h = await startHarness(redis.target, {}, { backoff: { baseMs: 60_000, capMs: 60_000 } });
    h.klaviyo.injectFaults(...Array.from({ length: 10_000 }, () => ({ status: 503 })));
    for (let i = 0; i < COUNT; i += 1) {
      h.gladly.setCustomer(`cust-out-${i}`, [`outage-${i}@example.com`]);
      await h.send('CONVERSATION/CREATED', {
        id: `evt-out-${i}`,
        customerId: `cust-out-${i}`,
        at: '2026-11-20T14:00:00Z',
      });
    }
    await waitFor(
      async () =>
        (await metricValue(h.registry, 'gk_klaviyo_breaker_transitions_total', { to: 'open' })) >= 1,
      {
        timeoutMs: 15_000,
        what: 'the breaker to open',
      },
    );
    expect(h.bridge.workers.length).toBeGreaterThan(0);
    await waitFor(async () => (await h.producer.deliveries.getActiveCount()) === 0, {
      what: 'in-flight requests to end',
    });
    const spent = await attemptsSpent(h);
    const postsAtOpen = h.klaviyo.posts;
    // Open for 3 s: probes (one at a time) fail; no delivery spends an attempt meanwhile.
    await new Promise((r) => setTimeout(r, 3_000));
    expect(await attemptsSpent(h)).toBe(spent);
    const probes = h.klaviyo.posts - postsAtOpen;
    expect(probes).toBeGreaterThanOrEqual(1);
    expect(probes).toBeLessThanOrEqual(4);
    expect(await metricValue(h.registry, 'gk_klaviyo_breaker_state')).toBeGreaterThan(0);
    expect(await h.producer.deliveries.getDelayedCount()).toBeGreaterThan(0);

    h.klaviyo.reset(); // Klaviyo is back.
    const recovered = Date.now();
    await waitFor(() => h.klaviyo.events.length === COUNT, { timeoutMs: 15_000, what: 'every delivery' });
    expect(Date.now() - recovered).toBeLessThan(8_000);
    expect(await metricValue(h.registry, 'gk_klaviyo_breaker_transitions_total', { to: 'closed' })).toBe(1);
    expect(await metricValue(h.registry, 'gk_klaviyo_breaker_promoted_jobs_total')).toBeGreaterThan(0);
    expect(await metricValue(h.registry, 'gk_klaviyo_breaker_state')).toBe(0);
    expect(await h.producer.deliveries.getFailedCount()).toBe(0);
  });

  it('KLAVIYO_BREAKER_ENABLED=false: the backlog waits out its backoff', async () => {
    h = await startHarness(
      redis.target,
      { KLAVIYO_BREAKER_ENABLED: 'false' },
      { backoff: { baseMs: 60_000, capMs: 60_000 } },
    );
    h.klaviyo.injectFaults(...Array.from({ length: COUNT }, () => ({ status: 503 })));
    for (let i = 0; i < COUNT; i += 1) {
      h.gladly.setCustomer(`cust-off-${i}`, [`off-${i}@example.com`]);
      await h.send('CONVERSATION/CREATED', {
        id: `evt-off-${i}`,
        customerId: `cust-off-${i}`,
        at: '2026-11-20T14:00:00Z',
      });
    }
    await waitFor(() => h.klaviyo.posts >= COUNT, { timeoutMs: 15_000, what: 'the failed attempts' });
    await new Promise((r) => setTimeout(r, 4_000));
    expect(h.klaviyo.events.length).toBeLessThan(COUNT);
    expect(await metricValue(h.registry, 'gk_klaviyo_breaker_transitions_total', { to: 'open' })).toBe(0);
  });
});
