import { readGladlyEvent } from '@gk/domain';
import { describe, expect, it } from 'vitest';
import { DEMO_CUSTOMERS } from './demo-customers.js';
import { demoHistory } from './demo-history.js';

const now = new Date('2026-11-20T15:00:00.000Z');
const history = demoHistory(DEMO_CUSTOMERS, now);

describe('demoHistory', () => {
  it('is the last 24 h only, oldest first, with unique ids', () => {
    const times = history.map((e) => Date.parse(e.timestamp));
    expect(times).toEqual([...times].sort((a, b) => a - b));
    expect(Math.min(...times)).toBeGreaterThan(now.getTime() - 24 * 3600_000);
    expect(Math.max(...times)).toBeLessThan(now.getTime());
    expect(new Set(history.map((e) => e.id)).size).toBe(history.length);
  });

  it('has transitions within the last hour (for --since 1h) and types the bridge skips', () => {
    const lastHour = history.filter((e) => Date.parse(e.timestamp) > now.getTime() - 3600_000);
    const kinds = lastHour.map((e) => readGladlyEvent(e, now).kind);
    expect(kinds.filter((k) => k === 'transition').length).toBeGreaterThanOrEqual(4);
    expect(kinds).toContain('ignored');
  });

  it('every event reads as the webhook of its type, for a customer with an address', () => {
    const withEmail = new Set(
      DEMO_CUSTOMERS.filter((c) => c.kind === 'ordinary' || c.kind === 'several-emails').map((c) => c.id),
    );
    for (const event of history) {
      expect(['transition', 'ignored']).toContain(readGladlyEvent(event, now).kind);
      expect(withEmail.has(event.content.customerId)).toBe(true);
    }
  });
});
