import { describe, expect, it } from 'vitest';
import { MIN_PAUSE_MS, parseRetryAfterMs } from './upstream-guard.js';

describe('parseRetryAfterMs (one reading of Retry-After for Gladly and Klaviyo)', () => {
  const now = Date.parse('2026-11-20T14:00:00Z');
  const max = 300_000;

  it.each([
    ['1', 1_000],
    ['2.5', 2_500],
    [' 7 ', 7_000],
    ['300', 300_000],
    ['Fri, 20 Nov 2026 14:00:05 GMT', 5_000],
  ])('%s → %i ms', (value, ms) => {
    expect(parseRetryAfterMs(value, max, now)).toBe(ms);
  });

  it('0 becomes 1 s: a 0 ms pause is refused by Redis and would spend an attempt', () => {
    expect(parseRetryAfterMs('0', max, now)).toBe(MIN_PAUSE_MS);
    expect(parseRetryAfterMs('0.2', max, now)).toBe(MIN_PAUSE_MS);
  });

  it('a date in the past, or now, becomes 1 s', () => {
    expect(parseRetryAfterMs('Fri, 20 Nov 2026 13:00:00 GMT', max, now)).toBe(MIN_PAUSE_MS);
    expect(parseRetryAfterMs('Fri, 20 Nov 2026 14:00:00 GMT', max, now)).toBe(MIN_PAUSE_MS);
  });

  it('is capped at the maximum pause (a proxy saying 86400 does not stop a queue for a day)', () => {
    expect(parseRetryAfterMs('86400', max, now)).toBe(max);
    expect(parseRetryAfterMs('Sat, 21 Nov 2026 14:00:00 GMT', max, now)).toBe(max);
    expect(parseRetryAfterMs('61', 60_000, now)).toBe(60_000);
  });

  it.each([null, undefined, '', 'soon', '-3', '1e3', 'hello 2020', 'Fri, 20 Nov 2026'])(
    'unusable %s → 1 s',
    (value) => {
      expect(parseRetryAfterMs(value, max, now)).toBe(MIN_PAUSE_MS);
    },
  );

  it('a maximum below 1 s still pauses 1 s', () => {
    expect(parseRetryAfterMs('5', 0, now)).toBe(MIN_PAUSE_MS);
  });
});
