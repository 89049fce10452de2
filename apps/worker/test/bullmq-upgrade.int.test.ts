import { toTransition } from '@gk/domain';
import {
  type DeliveryJobData,
  deliveryJobOptions,
  legacyDeliveryJobId,
  QueueName,
  type TransitionJobData,
  transitionJobId,
  transitionJobOptions,
} from '@gk/queue';
import { type RedisServer, startRedisServer, uniquePrefix, waitFor } from '@gk/testing';
import {
  type Job as JobV5,
  Queue as QueueV5,
  UnrecoverableError as UnrecoverableErrorV5,
  Worker as WorkerV5,
} from 'bullmq-v5';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { retryFailed } from '../src/cli/failed-jobs.js';
import { type Harness, startHarness } from './harness.js';

/**
 * The upgrade from BullMQ 5.81 to 6: jobs the previous release left in Redis (waiting, delayed,
 * failed, completed for dedupe, parked by a v5 pause) are written here by the old package itself,
 * installed side by side as `bullmq-v5`, with the bridge's own queue names, job ids and options;
 * then the current worker (BullMQ 6) runs over them. The second block checks the promise the
 * README makes for a rolling deploy: either side may still be on the old version.
 */

let redis: RedisServer;
let h: Harness | undefined;
const v5: { close(): Promise<unknown> }[] = [];

beforeAll(async () => {
  redis = await startRedisServer();
});
afterEach(async () => {
  await Promise.all(v5.splice(0).map((c) => c.close()));
  await h?.close();
  h = undefined;
});
afterAll(async () => {
  await redis.stop();
});

const STARTED = 'started conversation in Gladly';
const connection = () => ({ host: '127.0.0.1', port: redis.port });

function transition(id: string, customerId: string, at: string): TransitionJobData {
  return toTransition(
    {
      id,
      type: 'CONVERSATION/CREATED',
      timestamp: at,
      content: { customerId, conversationId: `conv-${id}` },
    },
    new Date(),
  );
}

function delivery(id: string, customerId: string, email: string, at: string): DeliveryJobData {
  return { ...transition(id, customerId, at), email, resolvedCustomerId: customerId };
}

function openV5<T>(name: string, prefix: string, defaultJobOptions: object) {
  const queue = new QueueV5<T>(name, { connection: connection(), prefix, defaultJobOptions });
  v5.push(queue);
  return queue;
}

/** Runs one job to its end with a BullMQ 5 worker, as the previous release's worker did. */
async function finishWithV5(queue: string, prefix: string, outcome: 'complete' | 'fail') {
  let worker: WorkerV5 | undefined;
  const done = new Promise<void>((resolve) => {
    worker = new WorkerV5(
      queue,
      async (_job: JobV5) => {
        if (outcome === 'fail') throw new UnrecoverableErrorV5('klaviyo 400: invalid (previous release)');
        return { outcome: 'delivered' };
      },
      { connection: connection(), prefix },
    );
    worker.on(outcome === 'fail' ? 'failed' : 'completed', () => resolve());
  });
  await done;
  await worker?.close();
}

const uniqueIds = (h: Harness) => h.klaviyo.events.map((e) => `${e.uniqueId} ${e.email}`).sort();

describe('jobs written by BullMQ 5.81 are processed by BullMQ 6', () => {
  it('waiting, delayed, failed (retried), completed (dedupe) and v5-paused jobs all end in Klaviyo exactly once', async () => {
    const prefix = uniquePrefix('upgrade');
    const transitions = openV5<TransitionJobData>(QueueName.transitions, prefix, transitionJobOptions);
    const deliveries = openV5<DeliveryJobData>(QueueName.deliveries, prefix, deliveryJobOptions);
    const at = '2026-11-30T10:00:00.000Z';

    // A delivery that the old worker failed permanently; an operator retries it after the upgrade.
    await deliveries.add('deliver', delivery('evt-up-failed', 'cust-x', 'failed@example.com', at), {
      jobId: legacyDeliveryJobId('evt-up-failed', 'failed@example.com'),
    });
    await finishWithV5(QueueName.deliveries, prefix, 'fail');
    // A transition the old worker completed: its job is the dedupe memory for a redelivery.
    await transitions.add('transition', transition('evt-up-done', 'cust-done', at), {
      jobId: transitionJobId('evt-up-done'),
    });
    await finishWithV5(QueueName.transitions, prefix, 'complete');

    // Waiting and delayed jobs, and a queue an operator paused under v5 (v5 parks its waiting
    // jobs in a separate `paused` list; v6 keeps them in `wait` and moves them back on resume).
    await transitions.add('transition', transition('evt-up-waiting', 'cust-a', at), {
      jobId: transitionJobId('evt-up-waiting'),
    });
    await deliveries.add('deliver', delivery('evt-up-delayed', 'cust-b', 'delayed@example.com', at), {
      jobId: legacyDeliveryJobId('evt-up-delayed', 'delayed@example.com'),
      delay: 1_500,
    });
    await deliveries.pause();
    await deliveries.add('deliver', delivery('evt-up-parked', 'cust-c', 'parked@example.com', at), {
      jobId: legacyDeliveryJobId('evt-up-parked', 'parked@example.com'),
    });
    const client = await deliveries.client;
    expect(await client.llen(`${prefix}:${QueueName.deliveries}:paused`)).toBe(1);
    await Promise.all(v5.splice(0).map((c) => c.close()));

    h = await startHarness(redis.url, { QUEUE_PREFIX: prefix });
    h.gladly.setCustomer('cust-a', ['waiting@example.com']);
    h.gladly.setCustomer('cust-done', ['done@example.com']);

    // The paused queue holds everything until the operator resumes it (as under v5).
    await waitFor(async () => (await h?.producer.transitions.getJobCounts('completed'))?.completed === 2, {
      what: 'the waiting transition fanned out',
    });
    expect(await h.producer.deliveries.isPaused()).toBe(true);
    expect(h.klaviyo.events).toHaveLength(0);
    await h.producer.deliveries.resume();

    await waitFor(() => h?.klaviyo.events.length === 3, { what: 'waiting, delayed and parked deliveries' });

    // The operator's retry (npm run jobs -- retry) of the job v5 failed.
    const report = await retryFailed(h.producer, [QueueName.deliveries], { all: true });
    expect(report.retried).toHaveLength(1);
    await waitFor(() => h?.klaviyo.events.length === 4, { what: 'the retried delivery' });

    // Gladly redelivers the event the old worker completed: still one job, nothing sent.
    await h.send('CONVERSATION/CREATED', { id: 'evt-up-done', customerId: 'cust-done', at });
    const done = await h.producer.transitions.getJob(transitionJobId('evt-up-done'));
    expect(await done?.getState()).toBe('completed');

    expect(uniqueIds(h)).toEqual([
      'evt-up-delayed delayed@example.com',
      'evt-up-failed failed@example.com',
      'evt-up-parked parked@example.com',
      'evt-up-waiting waiting@example.com',
    ]);
    expect(h.klaviyo.duplicates).toBe(0);
    for (const e of h.klaviyo.events) expect(e.metricName).toBe(STARTED);
  });
});

describe('rolling deploy: one side still on BullMQ 5', () => {
  it('an old ingest (BullMQ 5) feeds a new worker (BullMQ 6)', async () => {
    h = await startHarness(redis.url);
    h.gladly.setCustomer('cust-roll', ['roll@example.com']);
    const transitions = openV5<TransitionJobData>(QueueName.transitions, h.prefix, transitionJobOptions);
    await transitions.add('transition', transition('evt-roll-1', 'cust-roll', '2026-11-30T11:00:00.000Z'), {
      jobId: transitionJobId('evt-roll-1'),
    });
    await waitFor(() => h?.klaviyo.events.length === 1, { what: 'the event from the old ingest' });
    expect(uniqueIds(h)).toEqual(['evt-roll-1 roll@example.com']);
  });

  it('a new ingest (BullMQ 6) feeds an old worker (BullMQ 5): same data, options and id', async () => {
    const prefix = uniquePrefix('rolling');
    const { Queue } = await import('bullmq');
    const queue = new Queue<TransitionJobData>(QueueName.transitions, {
      connection: connection(),
      prefix,
      defaultJobOptions: transitionJobOptions,
    });
    const sent = transition('evt-roll-2', 'cust-roll', '2026-11-30T11:05:00.000Z');
    await queue.add('transition', sent, { jobId: transitionJobId('evt-roll-2') });
    await queue.close();

    const seen = await new Promise<JobV5>((resolve, reject) => {
      const worker = new WorkerV5(
        QueueName.transitions,
        async (job: JobV5) => {
          resolve(job);
          return { outcome: 'fanned_out' };
        },
        { connection: connection(), prefix },
      );
      v5.push(worker);
      worker.on('error', reject);
    });
    expect(seen.id).toBe(transitionJobId('evt-roll-2'));
    expect(seen.name).toBe('transition');
    expect(seen.data).toEqual(sent);
    expect(seen.opts).toMatchObject({
      attempts: transitionJobOptions.attempts,
      backoff: transitionJobOptions.backoff,
    });
  });
});
