import { describe, expect, it } from 'vitest';
import { median, percentile, rateProfile, summarize } from './stats.js';
import { schedule } from './workload.js';

describe('percentile', () => {
  it('takes the nearest rank', () => {
    const values = Array.from({ length: 100 }, (_, i) => i + 1);
    expect(percentile(values, 50)).toBe(50);
    expect(percentile(values, 99)).toBe(99);
    expect(percentile(values, 100)).toBe(100);
    expect(percentile([7], 99)).toBe(7);
    expect(percentile([], 50)).toBeNaN();
  });

  it('summarizes unsorted values', () => {
    expect(summarize([5, 1, 3, 2, 4])).toEqual({ count: 5, p50: 3, p99: 5, max: 5, mean: 3 });
  });

  it('takes the median of odd and even counts', () => {
    expect(median([3, 1, 2])).toBe(2);
    expect(median([4, 1, 3, 2])).toBe(2.5);
  });
});

describe('rateProfile', () => {
  it('measures a steady 50/s over the drain, first request to last', () => {
    const start = 1_700_000_000_000;
    const times = Array.from({ length: 501 }, (_, i) => start + i * 20);
    const p = rateProfile(times);
    expect(p.seconds).toBe(10);
    expect(p.meanPerSecond).toBe(50);
    expect(p.maxInOneSecond).toBe(50);
    expect(p.maxInAnyWindow).toBe(50);
  });

  it('finds a burst in a wall-clock second and across a second boundary', () => {
    const second = 1_700_000_000_000;
    // 10 requests at the end of one second and 10 at the start of the next.
    const times = [
      ...Array.from({ length: 10 }, (_, i) => second + 900 + i),
      ...Array.from({ length: 10 }, (_, i) => second + 1000 + i),
      second + 5000,
    ];
    const p = rateProfile(times);
    expect(p.maxInOneSecond).toBe(10);
    expect(p.maxInAnyWindow).toBe(20);
  });
});

describe('end-to-end schedule', () => {
  it('opens and closes every customer exactly once, about a second apart', () => {
    const webhooks = schedule(3000, 100);
    expect(webhooks).toHaveLength(3000);
    expect(new Set(webhooks.map((w) => w.id)).size).toBe(3000);
    const slots = new Map<string, { open?: number; close?: number }>();
    webhooks.forEach((w, s) => {
      const entry = slots.get(w.customerId) ?? {};
      if (w.type === 'CONVERSATION/CREATED') entry.open = s;
      else entry.close = s;
      slots.set(w.customerId, entry);
    });
    expect(slots.size).toBe(1500);
    const gaps = [...slots.values()].map((e) => (e.close ?? Number.NaN) - (e.open ?? Number.NaN));
    expect(gaps.every(Number.isFinite)).toBe(true);
    // 50 pairs of slots later = 1 s at 100/s, except the first second's closes (customers opened at the end).
    expect(gaps.filter((g) => g === 101)).toHaveLength(1450);
  });
});
