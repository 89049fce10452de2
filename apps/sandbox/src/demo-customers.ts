import { normalizeEmails } from '@gk/domain';

/** What a seeded customer is there to show. */
export type DemoCustomerKind = 'ordinary' | 'several-emails' | 'merged' | 'unknown' | 'no-email';

export interface DemoCustomer {
  /** The Gladly customer id a webhook names. */
  id: string;
  name: string;
  kind: DemoCustomerKind;
  /** `emails[].original` as Gladly holds them (untrimmed, mixed case, invalid entries and all). */
  emails: string[];
  /** `merged`: the surviving customer Gladly answers 301 with. */
  mergedInto?: string;
  /**
   * No Klaviyo profile has this customer's addresses yet (every other address has one): with
   * KLAVIYO_CREATE_PROFILES=false the worker skips them.
   */
  newToKlaviyo?: boolean;
  /** One line for the page and the demo summary. */
  note: string;
}

/**
 * The seeded customers: enough variety to show every path the worker takes on a lookup. Ids
 * are readable on purpose (Gladly's are opaque base62 strings).
 */
export const DEMO_CUSTOMERS: readonly DemoCustomer[] = [
  {
    id: 'demo-rosa-alvarez',
    name: 'Rosa Alvarez',
    kind: 'several-emails',
    emails: [
      'Rosa.Alvarez@example.com',
      'rosa@work.example.org',
      ' ROSA.ALVAREZ@example.com ',
      'rosa at example',
    ],
    note: 'two addresses, a case duplicate and an invalid entry: one event per distinct valid address',
  },
  {
    id: 'demo-ben-okafor',
    name: 'Ben Okafor',
    kind: 'ordinary',
    emails: ['ben.okafor@example.com'],
    note: 'the surviving profile of a merge',
  },
  {
    id: 'demo-ben-okafor-old',
    name: 'Ben Okafor (before merge)',
    kind: 'merged',
    emails: [],
    mergedInto: 'demo-ben-okafor',
    note: 'merged: Gladly answers 301 with the new id, the worker follows it',
  },
  {
    id: 'demo-unknown-customer',
    name: 'Unknown customer',
    kind: 'unknown',
    emails: [],
    note: 'not in Gladly: 404, nothing is sent',
  },
  {
    id: 'demo-sam-phone-only',
    name: 'Sam Lee',
    kind: 'no-email',
    emails: [],
    note: 'no email address (phone only): nothing is sent',
  },
  {
    id: 'demo-mei-tanaka',
    name: 'Mei Tanaka',
    kind: 'ordinary',
    emails: ['mei.tanaka@example.com'],
    note: 'opens and closes a conversation',
  },
  {
    id: 'demo-lars-eriksson',
    name: 'Lars Eriksson',
    kind: 'ordinary',
    emails: ['lars.eriksson@example.net'],
    note: 'an old close arrives late: recorded as backfill, state unchanged',
  },
  {
    id: 'demo-priya-shah',
    name: 'Priya Shah',
    kind: 'ordinary',
    emails: ['priya.shah@example.com'],
    note: 'closes, reopens, closes again',
  },
  {
    id: 'demo-tom-becker',
    name: 'Tom Becker',
    kind: 'ordinary',
    emails: ['Tom.Becker@example.de'],
    newToKlaviyo: true,
    note: 'opens and closes a conversation; not in Klaviyo yet (skipped with KLAVIYO_CREATE_PROFILES=false)',
  },
];

/** A seeded customer as the sandbox's API describes it, with what the bridge should do. */
export interface DemoCustomerView extends DemoCustomer {
  /** The distinct valid addresses the bridge should send one event each to (after a merge, the survivor's). */
  deliversTo: string[];
}

export function describeDemoCustomers(
  customers: readonly DemoCustomer[] = DEMO_CUSTOMERS,
): DemoCustomerView[] {
  const byId = new Map(customers.map((c) => [c.id, c]));
  return customers.map((customer) => {
    let target: DemoCustomer | undefined = customer;
    // Bounded like the worker's own merge following, so a seeded loop cannot hang the sandbox.
    for (let hops = 0; target?.mergedInto !== undefined && hops < 5; hops += 1) {
      target = byId.get(target.mergedInto);
    }
    const deliversTo = target && target.kind !== 'unknown' ? normalizeEmails(target.emails).emails : [];
    return { ...customer, deliversTo };
  });
}
