/**
 * No profile left suppressed (issue 18): a close reaches every address its conversation opened,
 * after the customer's addresses changed or the customer was merged away, and an address is
 * "in conversation" while any conversation that reached it is open. Real Redis, the Gladly and
 * Klaviyo stand-ins as HTTP servers, the worker's factory; each case also with redeliveries and
 * out-of-order arrival.
 */
import { hashEmail, type TransitionType } from '@gk/domain';
import { type CustomerChangeJobData, createWorkerConnection, customerChangeJobId } from '@gk/queue';
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
    // The conversation remembers every address it reached (a key per conversation, no address in it).
    const connection = createWorkerConnection(redis.target, 'conversation-test');
    try {
      const conversations = new ConversationState(connection, {
        prefix: `${h.prefix}:state`,
        pseudonymKey: () => h.bridge.pseudonyms.get(),
      });
      expect((await conversations.remembered('conv-rm')).sort()).toEqual([KEPT, NEW, OLD].sort());
      expect((await connection.keys(`${h.prefix}:*`)).join(' ')).not.toMatch(/@/);
    } finally {
      connection.disconnect();
    }

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

describe('a customer merged while a conversation is open', () => {
  const A1 = 'merged.away@example.com';
  const B1 = 'survivor@example.org';
  const steps: Step[] = [
    {
      type: 'CONVERSATION/CREATED',
      id: 'mg-b-create',
      customerId: 'cust-b',
      conversationId: 'conv-b',
      minute: 0,
    },
    {
      type: 'CONVERSATION/CREATED',
      id: 'mg-a-create',
      customerId: 'cust-a',
      conversationId: 'conv-a',
      minute: 1,
    },
  ];
  const close: Step = {
    type: 'CONVERSATION/CLOSED',
    id: 'mg-b-close',
    customerId: 'cust-b',
    conversationId: 'conv-b',
    minute: 20,
  };
  const merge = (eventId = 'mg-merge') =>
    change(
      {
        eventId,
        gladlyType: 'CUSTOMER/MERGED',
        customerIds: ['cust-a', 'cust-b'],
        merge: {
          sourceCustomerId: 'cust-a',
          destinationCustomerId: 'cust-b',
          sourceConversationId: 'conv-a',
          destinationConversationId: 'conv-b',
        },
      },
      10,
    );

  async function openBoth() {
    h.gladly.setCustomer('cust-a', [A1]);
    h.gladly.setCustomer('cust-b', [B1]);
    for (const s of steps) await send(s);
    await waitFor(() => prop(A1) === true && prop(B1) === true, { what: 'both open' });
    await settled();
    // Gladly merges A into B: A's lookups answer 301 to B, whose addresses do not include A's.
    h.gladly.mergeCustomer('cust-a', 'cust-b');
  }

  it('closing the destination conversation closes the source customer’s addresses too', async () => {
    h = await startHarness(redis.target);
    await openBoth();
    await merge();
    await settled();
    expect(prop(A1)).toBe(true);
    await send(close);
    await settled();
    expect(prop(A1)).toBe(false);
    expect(prop(B1)).toBe(false);
    expect((await h.producer.transitions.getJob('t-mg-b-close'))?.returnvalue).toMatchObject({
      deliveries: 2,
      remembered: 1,
    });

    // Redelivered (the merge as a new job, the transitions in reverse order): the same end.
    const recorded = h.klaviyo.events.length;
    while ((await h.producer.customerChanges.clean(0, 1_000, 'completed')).length > 0) {}
    await merge();
    await replay([...steps, close]);
    expect(prop(A1)).toBe(false);
    expect(prop(B1)).toBe(false);
    // The replayed creates reach only B's address now (A answers 301 to B): history, no flip.
    expect(h.klaviyo.events.slice(recorded).every((e) => e.backfill)).toBe(true);
  });

  it('a merge processed after the close still closes the source conversation’s addresses', async () => {
    h = await startHarness(redis.target);
    await openBoth();
    // The customer-changes queue runs apart: the close is fanned out before the merge is read.
    await send(close);
    await settled();
    expect(prop(B1)).toBe(false);
    expect(prop(A1)).toBe(true);
    await merge();
    await settled();
    expect(prop(A1)).toBe(false);
    const job = await h.producer.customerChanges.getJob(customerChangeJobId('mg-merge'));
    expect(job?.returnvalue).toMatchObject({ conversationsJoined: { inherited: 1, closed: 1 } });
    // The close sent to A's address is the destination's own close (same unique_id, not history).
    const event = eventsOf(A1).get('mg-b-close');
    expect(event?.backfill).toBe(false);
    expect(event?.profileProperties).toEqual({ [PROP]: false });

    // The same merge again (a Gladly redelivery after the job was removed) adds nothing.
    while ((await h.producer.customerChanges.clean(0, 1_000, 'completed')).length > 0) {}
    const posts = h.klaviyo.events.length;
    await merge();
    await settled();
    expect(h.klaviyo.events.length).toBe(posts);
    expect(prop(A1)).toBe(false);
  });

  it('a merge that names no conversations joins nothing; the cache is still dropped', async () => {
    h = await startHarness(redis.target);
    await change(
      {
        eventId: 'mg-plain',
        gladlyType: 'CUSTOMER/MERGED',
        customerIds: ['cust-x', 'cust-y'],
        merge: { sourceCustomerId: 'cust-x', destinationCustomerId: 'cust-y' },
      },
      0,
    );
    await settled();
    // Gladly naming the same conversation on both sides joins nothing either.
    await change(
      {
        eventId: 'mg-same',
        gladlyType: 'CUSTOMER/MERGED',
        customerIds: ['cust-x', 'cust-y'],
        merge: {
          sourceCustomerId: 'cust-x',
          destinationCustomerId: 'cust-y',
          sourceConversationId: 'conv-same',
          destinationConversationId: 'conv-same',
        },
      },
      1,
    );
    await settled();
    const same = await h.producer.customerChanges.getJob(customerChangeJobId('mg-same'));
    expect(same?.returnvalue).not.toHaveProperty('conversationsJoined');
    const job = await h.producer.customerChanges.getJob(customerChangeJobId('mg-plain'));
    expect(job?.returnvalue).toEqual({
      outcome: 'invalidated',
      customerIds: ['cust-x', 'cust-y'],
      entriesDropped: 0,
    });
  });
});

describe('two open conversations reaching one address', () => {
  const SHARED = 'shared.person@example.com';
  const open1: Step = {
    type: 'CONVERSATION/CREATED',
    id: 'two-open-1',
    customerId: 'cust-two',
    conversationId: 'conv-1',
    minute: 0,
  };
  const open2: Step = {
    type: 'CONVERSATION/CREATED',
    id: 'two-open-2',
    customerId: 'cust-two',
    conversationId: 'conv-2',
    minute: 1,
  };
  const close1: Step = {
    type: 'CONVERSATION/CLOSED',
    id: 'two-close-1',
    customerId: 'cust-two',
    conversationId: 'conv-1',
    minute: 2,
  };
  const close2: Step = {
    type: 'CONVERSATION/CLOSED',
    id: 'two-close-2',
    customerId: 'cust-two',
    conversationId: 'conv-2',
    minute: 3,
  };

  it('the first close leaves it true (sent as history), the second makes it false', async () => {
    h = await startHarness(redis.target);
    h.gladly.setCustomer('cust-two', [SHARED]);
    await send(open1);
    await send(open2);
    await settled();
    expect(prop(SHARED)).toBe(true);
    await send(close1);
    await settled();
    expect(prop(SHARED)).toBe(true);
    const first = eventsOf(SHARED).get('two-close-1');
    expect(first?.backfill).toBe(true);
    expect(first?.profileProperties).toBeUndefined();
    await send(close2);
    await settled();
    expect(prop(SHARED)).toBe(false);
    expect(eventsOf(SHARED).get('two-close-2')?.backfill).toBe(false);

    const recorded = h.klaviyo.events.length;
    await replay([open1, open2, close1, close2]);
    expect(prop(SHARED)).toBe(false);
    expect(h.klaviyo.events.length).toBe(recorded);
  });

  it.each([
    ['close2, open1, close1, open2', [close2, open1, close1, open2]],
    ['open2, close1, close2, open1', [open2, close1, close2, open1]],
    ['close1, close2, open2, open1', [close1, close2, open2, open1]],
  ])('out of order (%s), one at a time, then all at once again: ends false', async (_name, order) => {
    h = await startHarness(redis.target);
    h.gladly.setCustomer('cust-two', [SHARED]);
    for (const s of order) {
      await send(s);
      await settled();
    }
    expect(prop(SHARED)).toBe(false);
    expect([...eventsOf(SHARED).keys()].sort()).toEqual([
      'two-close-1',
      'two-close-2',
      'two-open-1',
      'two-open-2',
    ]);
    // Delivered again, all at once: nothing new, the same end.
    await replay(order);
    expect(prop(SHARED)).toBe(false);
    expect(h.klaviyo.events).toHaveLength(4);
  });

  it('while one close arrived before the other conversation opened, the late open holds the address', async () => {
    h = await startHarness(redis.target);
    h.gladly.setCustomer('cust-two', [SHARED]);
    await send(close2);
    await settled();
    expect(prop(SHARED)).toBe(false);
    // conv-1 opened before conv-2 closed and is still open: the address is in conversation.
    await send(open1);
    await settled();
    expect(prop(SHARED)).toBe(true);
    await send(close1);
    await settled();
    expect(prop(SHARED)).toBe(false);
  });

  it('a close Klaviyo refuses for good puts back what it claimed; retried, it closes the address', async () => {
    h = await startHarness(redis.target);
    h.gladly.setCustomer('cust-two', [SHARED]);
    for (const s of [open1, open2, close1]) await send(s);
    await settled();
    h.klaviyo.injectFaults({ status: 400 });
    await send(close2);
    await waitFor(async () => (await h.producer.deliveries.getFailedCount()) === 1, {
      what: 'the refused close',
    });
    expect(prop(SHARED)).toBe(true);
    const [failed] = await h.producer.deliveries.getFailed();
    await failed?.retry('failed');
    await settled();
    expect(prop(SHARED)).toBe(false);
    expect(await metricValue(h.registry, 'gk_deliveries_total', { outcome: 'failed_permanent' })).toBe(1);
  });
});

describe('a close refused for good after a 5xx (undo per transition, not per attempt)', () => {
  const EMAIL = 'refused.after.5xx@example.com';
  const step = (type: TransitionType, id: string, minute: number): Step => ({
    type,
    id,
    customerId: 'cust-5xx',
    conversationId: 'conv-5xx',
    minute,
  });

  it('attempt 2 puts back what attempt 1 held: a later, older reopen applies and the profile stays as Klaviyo recorded it', async () => {
    h = await startHarness(redis.target);
    h.gladly.setCustomer('cust-5xx', [EMAIL]);
    await send(step('CONVERSATION/CREATED', '5xx-open', 0));
    await settled();
    expect(prop(EMAIL)).toBe(true);
    // Attempt 1 of the close gets a 500 (Klaviyo may have recorded it: its held changes stay),
    // attempt 2 a 400: it must undo the conversation's entry and the profile value attempt 1 set.
    h.klaviyo.injectFaults({ status: 500 }, { status: 400 });
    await send(step('CONVERSATION/CLOSED', '5xx-close', 9));
    await waitFor(async () => (await h.producer.deliveries.getFailedCount()) === 1, {
      what: 'the close to fail on its second attempt',
    });
    expect(prop(EMAIL)).toBe(true);
    const id = hashEmail(EMAIL, await h.bridge.pseudonyms.get());
    const connection = createWorkerConnection(redis.target, 'conversation-test');
    try {
      // Klaviyo still says "in conversation", and so does the bridge: conv-5xx holds the address
      // (its entry and the profile value are the create's again, the held index has it), and
      // nothing is left to undo or claim for the refused close.
      const held = await connection.hgetall(`${h.prefix}:state:email:${id}:held`);
      expect(held['c:conv-5xx']).toBe(`o|${Date.parse(at(0))}|5xx-open`);
      expect(held.p).toBe('1|5xx-open');
      expect(Object.keys(held).filter((f) => f.startsWith('ue:') || f.startsWith('up:'))).toEqual([]);
      expect(await connection.zscore(`${h.prefix}:state:held`, id)).not.toBeNull();
      expect(await connection.zcard(`${h.prefix}:state:email:${id}:claims`)).toBe(0);
    } finally {
      connection.disconnect();
    }
    // A reopen older than the refused close (and newer than the create) is no history: it applies.
    await send(step('CONVERSATION/REOPENED', '5xx-reopen', 5));
    await settled();
    expect(eventsOf(EMAIL).get('5xx-reopen')?.backfill).toBe(false);
    expect(prop(EMAIL)).toBe(true);
  });
});

describe('a close for a customer left without any address', () => {
  it('still reaches the address its conversation opened (no_email would send nothing)', async () => {
    h = await startHarness(redis.target);
    h.gladly.setCustomer('cust-none', ['only.address@example.com']);
    await send({
      type: 'CONVERSATION/CREATED',
      id: 'none-open',
      customerId: 'cust-none',
      conversationId: 'conv-none',
      minute: 0,
    });
    await settled();
    h.gladly.setCustomer('cust-none', []);
    await change(
      { eventId: 'none-upd', gladlyType: 'CUSTOMER_PROFILE/UPDATED', customerIds: ['cust-none'] },
      5,
    );
    await settled();
    await send({
      type: 'CONVERSATION/CLOSED',
      id: 'none-close',
      customerId: 'cust-none',
      conversationId: 'conv-none',
      minute: 9,
    });
    await settled();
    expect(prop('only.address@example.com')).toBe(false);
    // A start for a customer without any address still sends nothing.
    await send({
      type: 'CONVERSATION/REOPENED',
      id: 'none-reopen',
      customerId: 'cust-none',
      conversationId: 'conv-none',
      minute: 12,
    });
    await settled();
    expect((await h.producer.transitions.getJob('t-none-reopen'))?.returnvalue).toMatchObject({
      outcome: 'no_email',
    });
    expect(prop('only.address@example.com')).toBe(false);
  });
});

describe('a close for a customer Gladly no longer knows', () => {
  it('still reaches the addresses its conversation opened', async () => {
    h = await startHarness(redis.target);
    h.gladly.setCustomer('cust-gone', ['gone.person@example.com']);
    await send({
      type: 'CONVERSATION/CREATED',
      id: 'gone-open',
      customerId: 'cust-gone',
      conversationId: 'conv-gone',
      minute: 0,
    });
    await settled();
    h.gladly.removeCustomer('cust-gone');
    await change(
      { eventId: 'gone-del', gladlyType: 'CUSTOMER_PROFILE/DELETED', customerIds: ['cust-gone'] },
      5,
    );
    await settled();
    await send({
      type: 'CONVERSATION/CLOSED',
      id: 'gone-close',
      customerId: 'cust-gone',
      conversationId: 'conv-gone',
      minute: 9,
    });
    await settled();
    expect(prop('gone.person@example.com')).toBe(false);
    expect((await h.producer.transitions.getJob('t-gone-close'))?.returnvalue).toMatchObject({
      outcome: 'fanned_out',
      deliveries: 1,
      remembered: 1,
    });
  });
});
