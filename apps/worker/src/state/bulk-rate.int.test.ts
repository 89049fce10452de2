import { createWorkerConnection } from '@gk/queue';
import { type TestRedis, uniquePrefix, useTestRedis } from '@gk/testing';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { BulkRateLimit } from './bulk-rate.js';

let redis: TestRedis;
beforeAll(async () => {
  redis = await useTestRedis();
});
afterAll(async () => {
  await redis.stop();
});

describe('BulkRateLimit (a token bucket in Redis, shared by every worker)', () => {
  it('allows the burst at once, then one request per 60/perMinute seconds, across instances', async () => {
    const a = createWorkerConnection(redis.target, 'bulk-rate-a');
    const b = createWorkerConnection(redis.target, 'bulk-rate-b');
    try {
      const key = `${uniquePrefix('bulk-rate')}:state:klaviyo-bulk-rate`;
      // Two workers' views of one limit: Klaviyo's 10/s burst, 150/min steady.
      const one = new BulkRateLimit(a, key, { perMinute: 150 });
      const two = new BulkRateLimit(b, key, { perMinute: 150 });
      const taken = await Promise.all(Array.from({ length: 10 }, (_, i) => (i % 2 ? one : two).take()));
      expect(taken).toEqual(Array(10).fill(0));
      const wait = await one.take();
      // 2.5 tokens per second: the next one is at most 400 ms away.
      expect(wait).toBeGreaterThan(0);
      expect(wait).toBeLessThanOrEqual(400);
      expect(await two.take()).toBeGreaterThan(0);
      await new Promise((r) => setTimeout(r, wait + 20));
      expect(await two.take()).toBe(0);
    } finally {
      a.disconnect();
      b.disconnect();
    }
  });

  it('never allows a burst above the minute’s limit', async () => {
    const c = createWorkerConnection(redis.target, 'bulk-rate-c');
    try {
      const limit = new BulkRateLimit(c, `${uniquePrefix('bulk-rate')}:state:klaviyo-bulk-rate`, {
        perMinute: 3,
      });
      expect([await limit.take(), await limit.take(), await limit.take()]).toEqual([0, 0, 0]);
      expect(await limit.take()).toBeGreaterThan(10_000);
    } finally {
      c.disconnect();
    }
  });
});
