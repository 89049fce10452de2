/**
 * No profile left suppressed (issue 18): a close reaches every address its conversation opened,
 * after the customer's addresses changed or the customer was merged away, and an address is
 * "in conversation" while any conversation that reached it is open. Real Redis, the Gladly and
 * Klaviyo stand-ins as HTTP servers, the worker's factory; each case also with redeliveries and
 * out-of-order arrival.
 */
import type { TransitionType } from '@gk/domain';
import { type CustomerChangeJobData, customerChangeJobId } from '@gk/queue';
import { type TestRedis, useTestRedis, waitFor } from '@gk/testing';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { ConversationState } from '../src/state/conversations.js';
import { type Harness, metricValue, startHarness } from './harness.js';

let redis: TestRedis;
let h: Harness;

beforeAll(async () => {
  redis = await useTestRedis();
});
afterAll(async () => {
  await redis.stop();
});
afterEach(async () => {
  await h?.close();
});

const PROP = 'In Gladly Conversation';
const at = (minute: number) =>
  new Date(Date.parse('2026-11-20T14:00:00.000Z') + minute * 60_000).toISOString();
const prop = (email: string) => h.klaviyo.profile(email)?.properties[PROP];

interface Step {
  type: TransitionType;
  id: string;
  customerId: string;
  conversationId: string;
  minute: number;
}

const send = (s: Step) =>
  h.send(s.type, { id: s.id, customerId: s.customerId, conversationId: s.conversationId, at: at(s.minute) });

async function change(data: Omit<CustomerChangeJobData, 'occurredAt' | 'receivedAt'>, minute: number) {
  await h.producer.customerChanges.add(
    data.gladlyType,
    { ...data, occurredAt: at(minute), receivedAt: new Date().toISOString() },
    { jobId: customerChangeJobId(data.eventId) },
  );
}

async function settled() {
  await waitFor(
    async () => {
      const counts = await Promise.all(
        [h.producer.transitions, h.producer.deliveries, h.producer.customerChanges].map((q) =>
          q.getJobCounts('waiting', 'active', 'delayed', 'prioritized'),
        ),
      );
      return counts.every((c) => Object.values(c).every((n) => n === 0));
    },
    { timeoutMs: 20_000, what: 'queues to drain' },
  );
}

/** Recorded events of one address, by Gladly event id. */
const eventsOf = (email: string) =>
  new Map((h.klaviyo.profile(email)?.events ?? []).map((e) => [e.uniqueId, e] as const));

/**
 * Gladly redelivers, the reconciler re-reads the Events API after the completed jobs are gone:
 * the same events again (in another order) must change nothing and record nothing twice.
 */
async function replay(steps: Step[]) {
  for (const q of [h.producer.transitions, h.producer.deliveries]) {
    while ((await q.clean(0, 1_000, 'completed')).length > 0) {}
  }
  for (const s of [...steps].reverse()) await send(s);
  await settled();
}

describe('an address removed or replaced mid-conversation', () => {
  const steps: Step[] = [
    {
      type: 'CONVERSATION/CREATED',
      id: 'rm-create',
      customerId: 'cust-rm',
      conversationId: 'conv-rm',
      minute: 0,
    },
    {
      type: 'CONVERSATION/CLOSED',
      id: 'rm-close',
      customerId: 'cust-rm',
      conversationId: 'conv-rm',
      minute: 30,
    },
  ];
  const OLD = 'old.address@example.com';
  const KEPT = 'kept.address@example.com';
  const NEW = 'new.address@example.org';

  it('created → one address removed, another added → closed: every address ends false', async () => {
    h = await startHarness(redis.target);
    h.gladly.setCustomer('cust-rm', [OLD, KEPT]);
    await send(steps[0] as Step);
    await waitFor(() => prop(OLD) === true && prop(KEPT) === true, { what: 'both addresses open' });
    await settled();

    // The agent replaces the address; Gladly says so (CUSTOMER_PROFILE/UPDATED drops the cache).
    h.gladly.setCustomer('cust-rm', [NEW, KEPT]);
    await change({ eventId: 'rm-upd', gladlyType: 'CUSTOMER_PROFILE/UPDATED', customerIds: ['cust-rm'] }, 10);
    await settled();
    await send(steps[1] as Step);
    await settled();

    for (const email of [OLD, KEPT, NEW]) expect(prop(email), email).toBe(false);
    const close = eventsOf(OLD).get('rm-close');
    expect(close?.backfill).toBe(false);
    expect(close?.profileProperties).toEqual({ [PROP]: false });
    const job = await h.producer.transitions.getJob('t-rm-close');
    expect(job?.returnvalue).toMatchObject({ outcome: 'fanned_out', deliveries: 3, remembered: 1 });
    expect(
      await new ConversationState(h.bridge.queues.deliveries.opts.connection as never, {
        prefix: `${h.prefix}:state`,
      }).remembered('conv-rm'),
    ).toEqual(expect.arrayContaining([OLD, KEPT]));

    // Redelivered in reverse order after the completed jobs were removed: nothing changes.
    const recorded = h.klaviyo.events.length;
    await replay(steps);
    for (const email of [OLD, KEPT, NEW]) expect(prop(email), email).toBe(false);
    // Only the create's (now history) event for the address it had not reached is new.
    expect(h.klaviyo.events.slice(recorded).map((e) => [e.uniqueId, e.email, e.backfill])).toEqual([
      ['rm-create', NEW, true],
    ]);
    expect(h.logLines.join('\n')).not.toMatch(/old\.address|kept\.address|new\.address/);
  });

  it('out of order: the close arrives first and the create late: nothing is left open', async () => {
    h = await startHarness(redis.target);
    h.gladly.setCustomer('cust-rm', [OLD, KEPT]);
    // The close is processed while Gladly still lists the old address, the late create after it
    // was replaced.
    await send(steps[1] as Step);
    await settled();
    h.gladly.setCustomer('cust-rm', [NEW, KEPT]);
    await change(
      { eventId: 'rm-upd2', gladlyType: 'CUSTOMER_PROFILE/UPDATED', customerIds: ['cust-rm'] },
      10,
    );
    await settled();
    await send(steps[0] as Step);
    await settled();

    for (const email of [OLD, KEPT]) expect(prop(email), email).toBe(false);
    // The late create goes out everywhere as history: where the close was recorded, and to the
    // address added since, which the closed conversation never opened.
    expect(eventsOf(KEPT).get('rm-create')?.backfill).toBe(true);
    expect(eventsOf(NEW).get('rm-create')?.backfill).toBe(true);
    expect(prop(NEW)).toBeUndefined();
    const recorded = h.klaviyo.events.length;
    await replay(steps);
    // The close, redelivered, now also reaches the new address: every address ends false.
    for (const email of [OLD, KEPT, NEW]) expect(prop(email), email).toBe(false);
    expect(h.klaviyo.events.slice(recorded).map((e) => [e.uniqueId, e.email])).toEqual([['rm-close', NEW]]);
  });
});
