import { toTransition } from '@gk/domain';
import {
  addJobOnce,
  type BridgeQueues,
  closeQueues,
  createProducerConnection,
  createQueues,
  createWorkerConnection,
  type RedisConnection,
  transitionJob,
  transitionJobId,
} from '@gk/queue';
import { type TestRedis, uniquePrefix, useTestRedis } from '@gk/testing';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';

let redis: TestRedis;
let connection: RedisConnection;
let queues: BridgeQueues;
/** A second client, so what we read back is what Redis holds, not anything cached by the producer. */
let observer: RedisConnection;
let observerQueues: BridgeQueues;

beforeAll(async () => {
  redis = await useTestRedis();
  const prefix = uniquePrefix('enqueue');
  connection = createProducerConnection(redis.target);
  queues = createQueues(connection, prefix);
  observer = createWorkerConnection(redis.target, 'observer');
  observerQueues = createQueues(observer, prefix);
  await queues.transitions.waitUntilReady();
});

afterAll(async () => {
  await closeQueues(queues);
  await closeQueues(observerQueues);
  await connection?.quit();
  await observer?.quit();
  await redis?.stop();
});

let n = 0;
function transition(timestamp = '2026-11-20T14:03:27.512Z') {
  n += 1;
  return toTransition(
    {
      id: `enq${Date.now().toString(36)}x${n}`,
      type: 'CONVERSATION/CREATED',
      timestamp,
      initiator: { id: 'agent-1', type: 'AGENT' },
      content: { customerId: 'cust-1', conversationId: 'conv-1' },
    },
    new Date('2026-11-20T14:03:28.000Z'),
  );
}

describe('addJobOnce (the one way a JobSpec reaches Redis)', () => {
  it('resolves only once the job is stored, with the queue default options', async () => {
    const t = transition();
    const result = await addJobOnce(queues, transitionJob(t));
    expect(result).toEqual({ outcome: 'accepted', jobId: transitionJobId(t.eventId) });
    const stored = await observerQueues.transitions.getJob(result.jobId);
    expect(stored?.data).toEqual(t);
    expect(stored?.name).toBe('CONVERSATION/CREATED');
    expect(stored?.opts.attempts).toBe(queues.transitions.defaultJobOptions.attempts);
    expect(stored?.opts.removeOnComplete).toEqual(queues.transitions.defaultJobOptions.removeOnComplete);
    expect(await observerQueues.transitions.getWaitingCount()).toBeGreaterThanOrEqual(1);
  });

  it('says duplicate for a redelivery and keeps the first job untouched', async () => {
    const t = transition();
    expect((await addJobOnce(queues, transitionJob(t))).outcome).toBe('accepted');
    const again = await addJobOnce(queues, transitionJob({ ...t, occurredAt: '2026-11-20T14:09:00.000Z' }));
    expect(again.outcome).toBe('duplicate');
    expect((await observerQueues.transitions.getJob(again.jobId))?.data.occurredAt).toBe(t.occurredAt);
  });

  it('accepts exactly one of many concurrent deliveries of the same event', async () => {
    const t = transition();
    const before = await observerQueues.transitions.getWaitingCount();
    const results = await Promise.all(Array.from({ length: 12 }, () => addJobOnce(queues, transitionJob(t))));
    expect(results.filter((r) => r.outcome === 'accepted')).toHaveLength(1);
    expect(results.filter((r) => r.outcome === 'duplicate')).toHaveLength(11);
    expect(await observerQueues.transitions.getWaitingCount()).toBe(before + 1);
  });
});
