import { describe, expect, it } from 'vitest';
import { DEMO_CUSTOMERS, describeDemoCustomers } from './demo-customers.js';

describe('describeDemoCustomers', () => {
  const views = new Map(describeDemoCustomers().map((v) => [v.id, v]));

  it('sends once per distinct valid address: the case duplicate and the invalid entry are skipped', () => {
    expect(views.get('demo-rosa-alvarez')?.deliversTo).toEqual([
      'Rosa.Alvarez@example.com',
      'rosa@work.example.org',
    ]);
  });

  it('sends a merged customer’s events to the survivor’s addresses', () => {
    expect(views.get('demo-ben-okafor-old')?.deliversTo).toEqual(['ben.okafor@example.com']);
  });

  it('sends nothing for an unknown customer or one without email', () => {
    expect(views.get('demo-unknown-customer')?.deliversTo).toEqual([]);
    expect(views.get('demo-sam-phone-only')?.deliversTo).toEqual([]);
  });

  it('never loops on a merge cycle', () => {
    const cycle = describeDemoCustomers([
      { id: 'a', name: 'A', kind: 'merged', emails: [], mergedInto: 'b', note: '' },
      { id: 'b', name: 'B', kind: 'merged', emails: [], mergedInto: 'a', note: '' },
    ]);
    expect(cycle.map((c) => c.deliversTo)).toEqual([[], []]);
  });

  it('seeds the kinds the demo relies on', () => {
    const kinds = DEMO_CUSTOMERS.map((c) => c.kind);
    for (const kind of ['several-emails', 'merged', 'unknown', 'no-email'] as const)
      expect(kinds).toContain(kind);
    expect(kinds.filter((k) => k === 'ordinary').length).toBeGreaterThanOrEqual(5);
  });
});
