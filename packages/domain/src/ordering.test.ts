import { describe, expect, it } from 'vitest';
import { isStale } from './ordering.js';

describe('isStale', () => {
  const applied = { occurredAt: '2026-11-20T14:41:09.004Z', eventId: 'b' };
  it('nothing applied yet → not stale', () => {
    expect(isStale(applied, null)).toBe(false);
  });
  it('older than the newest applied → stale; newer → not', () => {
    expect(isStale({ occurredAt: '2026-11-20T14:03:27.512Z', eventId: 'z' }, applied)).toBe(true);
    expect(isStale({ occurredAt: '2026-11-20T16:12:55.230Z', eventId: 'a' }, applied)).toBe(false);
  });
  it('the same event again (a retry) is not stale', () => {
    expect(isStale(applied, applied)).toBe(false);
  });
  it('same timestamp: the event id breaks the tie the same way everywhere', () => {
    expect(isStale({ occurredAt: applied.occurredAt, eventId: 'a' }, applied)).toBe(true);
    expect(isStale({ occurredAt: applied.occurredAt, eventId: 'c' }, applied)).toBe(false);
  });
  it('compares instants, not strings, across time zones', () => {
    expect(isStale({ occurredAt: '2026-11-20T15:41:09.000+01:00', eventId: 'z' }, applied)).toBe(true);
  });
});
