import type { DemoCustomer } from './demo-customers.js';

/** An event as Gladly's Events API answers it (the webhook payload of the same type). */
export interface HistoryEvent {
  id: string;
  type: string;
  timestamp: string;
  initiator: { id: string; type: 'AGENT' | 'CUSTOMER' };
  content: { customerId: string; conversationId: string; [field: string]: unknown };
  [field: string]: unknown;
}

const MINUTE = 60_000;

/**
 * A made-up last day of Gladly conversation events for the demo customers, so `npm run backfill
 * -- --since 1h` (or 24h) has something to recover against the sandbox: per customer with an
 * address, one conversation opened and closed some hours ago; in the last hour a few more (one
 * still open), with notes and topics in between (event types the bridge skips). Ids are fresh per
 * sandbox start; timestamps are relative to `now`.
 */
export function demoHistory(customers: readonly DemoCustomer[], now: Date): HistoryEvent[] {
  const run = now.getTime().toString(36);
  let n = 0;
  const id = () => {
    n += 1;
    return `hist${run}x${n}`;
  };
  const at = (minutesAgo: number) => new Date(now.getTime() - minutesAgo * MINUTE).toISOString();
  const events: HistoryEvent[] = [];
  const conversation = (
    customer: DemoCustomer,
    openedMinutesAgo: number,
    closedMinutesAgo: number | null,
  ) => {
    const conversationId = id();
    const content = { customerId: customer.id, conversationId };
    events.push({
      id: id(),
      type: 'CONVERSATION/CREATED',
      timestamp: at(openedMinutesAgo),
      initiator: { id: customer.id, type: 'CUSTOMER' },
      content,
    });
    events.push({
      id: id(),
      type: 'CONVERSATION/NOTE_CREATED',
      timestamp: at(openedMinutesAgo - 2),
      initiator: { id: 'demoAgent000000000001', type: 'AGENT' },
      content: { ...content, noteId: id() },
    });
    if (closedMinutesAgo !== null) {
      events.push({
        id: id(),
        type: 'CONVERSATION/CLOSED',
        timestamp: at(closedMinutesAgo),
        initiator: { id: 'demoAgent000000000001', type: 'AGENT' },
        content,
      });
    }
  };

  const withEmail = customers.filter((c) => c.kind === 'ordinary' || c.kind === 'several-emails');
  withEmail.forEach((customer, i) => {
    const opened = 180 + i * 150; // 3 h ago, then every 2.5 h back (within 24 h for the demo's customers)
    if (opened + 5 < 24 * 60) conversation(customer, opened, opened - 35);
  });
  const [first, second, third] = withEmail;
  if (first) conversation(first, 50, 25);
  if (second) conversation(second, 40, null);
  if (third) {
    conversation(third, 30, 12);
    events.push({
      id: id(),
      type: 'CONVERSATION/TOPIC_ADDED',
      timestamp: at(20),
      initiator: { id: 'demoAgent000000000001', type: 'AGENT' },
      content: { customerId: third.id, conversationId: 'topicConversation', topicId: 'demoTopic' },
    });
  }
  return events.sort((a, b) => a.timestamp.localeCompare(b.timestamp));
}
