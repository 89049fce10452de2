import { RETRY_ATTEMPTS } from '@gk/queue';
import { describe, expect, it } from 'vitest';
import { DEFAULT_BACKOFF, fullJitterDelay } from './backoff.js';

describe('fullJitterDelay', () => {
  it('grows exponentially up to the cap', () => {
    const max = (n: number) => fullJitterDelay(n, DEFAULT_BACKOFF, () => 0.999999);
    expect(max(1)).toBe(999);
    expect(max(2)).toBe(1_999);
    expect(max(5)).toBe(15_999);
    expect(max(20)).toBe(599_999);
    expect(max(10_000)).toBe(599_999);
  });

  it('is uniformly jittered from zero (full jitter)', () => {
    expect(fullJitterDelay(10, DEFAULT_BACKOFF, () => 0)).toBe(0);
    expect(fullJitterDelay(10, DEFAULT_BACKOFF, () => 0.5)).toBe(256_000);
  });

  it('with the default attempts, rides out an outage of at least 24 h', () => {
    let expected = 0;
    for (let attempt = 1; attempt < RETRY_ATTEMPTS; attempt++) {
      expected += Math.min(DEFAULT_BACKOFF.capMs, DEFAULT_BACKOFF.baseMs * 2 ** (attempt - 1)) / 2;
    }
    expect(expected / 3_600_000).toBeGreaterThan(24);
  });
});
