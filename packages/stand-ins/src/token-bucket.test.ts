import { describe, expect, it } from 'vitest';
import { retryAfterSeconds, TokenBucket } from './token-bucket.js';

describe('TokenBucket', () => {
  it('allows a burst, then refuses until tokens refill at the steady rate', () => {
    const bucket = new TokenBucket(2, 3, 0);
    expect([bucket.take(0), bucket.take(0), bucket.take(0)].every((r) => r.ok)).toBe(true);
    expect(bucket.take(0)).toEqual({ ok: false, retryAfterMs: 500 });
    expect(bucket.take(250)).toEqual({ ok: false, retryAfterMs: 250 });
    expect(bucket.take(500).ok).toBe(true);
    expect(bucket.take(500).ok).toBe(false);
  });

  it('never holds more than the burst after a quiet period', () => {
    const bucket = new TokenBucket(10, 2, 0);
    expect(bucket.take(60_000).ok).toBe(true);
    expect(bucket.take(60_000).ok).toBe(true);
    expect(bucket.take(60_000).ok).toBe(false);
  });

  it('rejects nonsense limits', () => {
    expect(() => new TokenBucket(0, 1)).toThrow(RangeError);
    expect(() => new TokenBucket(1, 0)).toThrow(RangeError);
  });
});

describe('retryAfterSeconds', () => {
  it.each([
    [0, 1],
    [1, 1],
    [1000, 1],
    [1001, 2],
    [2500, 3],
  ])('%i ms → %i s', (ms, s) => {
    expect(retryAfterSeconds(ms)).toBe(s);
  });
});
