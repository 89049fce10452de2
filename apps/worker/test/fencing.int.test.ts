/**
 * The per-email lease is fenced: a delivery held up (frozen) past its lease, while a newer
 * transition for the same email is delivered by another worker, never sets the profile back
 * when it resumes. In-process: two bridges share Redis and the Klaviyo stand-in; the first one's
 * Klaviyo client holds the old event's request after the lease was taken, as a frozen process
 * would, then lets it go on once the newer one was delivered.
 */
import { Writable } from 'node:stream';
import { type TransitionType, toTransition } from '@gk/domain';
import { createGladlyClient } from '@gk/gladly';
import { createKlaviyoClient, type KlaviyoClient } from '@gk/klaviyo';
import {
  type BridgeQueues,
  closeQueues,
  createQueues,
  createWorkerConnection,
  deliveryJobId,
  type RedisConnection,
} from '@gk/queue';
import { createLogger, createMetricsRegistry } from '@gk/runtime';
import { type KlaviyoStandIn, startGladlyStandIn, startKlaviyoStandIn } from '@gk/stand-ins';
import { captureLogOutput, type TestRedis, uniquePrefix, useTestRedis, waitFor } from '@gk/testing';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { loadWorkerConfig } from '../src/config.js';
import { type BridgeWorkers, createWorkers } from '../src/workers.js';
import { GLADLY_TOKEN, GLADLY_USER, KLAVIYO_KEY } from './harness.js';

const PROP = 'In Gladly Conversation';
const EMAIL = 'fenced.person@example.com';
/** The test adds delivery jobs itself: their ids only need to be deterministic. */
const TEST_PSEUDONYM_KEY = 'fencing-test-key';

let redis: TestRedis;
const cleanups: (() => Promise<void>)[] = [];

beforeAll(async () => {
  redis = await useTestRedis();
});
afterEach(async () => {
  for (const cleanup of cleanups.splice(0).reverse()) await cleanup();
});
afterAll(async () => {
  await redis.stop();
});

interface Bridge {
  bridge: BridgeWorkers;
  logLines: string[];
}

async function startBridge(
  prefix: string,
  klaviyo: KlaviyoClient,
  gladlyUrl: string,
  klaviyoUrl: string,
  env: Record<string, string>,
): Promise<Bridge> {
  const target = redis.target;
  const config = loadWorkerConfig({
    REDIS_URL: target.url,
    REDIS_CLUSTER_NODES: target.clusterNodes?.join(',') ?? '',
    QUEUE_PREFIX: prefix,
    GLADLY_API_URL: gladlyUrl,
    GLADLY_API_USER: GLADLY_USER,
    GLADLY_API_TOKEN: GLADLY_TOKEN,
    KLAVIYO_API_URL: klaviyoUrl,
    KLAVIYO_API_KEY: KLAVIYO_KEY,
    GLADLY_RATE_LIMIT_PER_SECOND: '0',
    KLAVIYO_RATE_LIMIT_PER_SECOND: '0',
    ...env,
  });
  const logLines: string[] = [];
  const sink = new Writable({
    write(chunk, _enc, cb) {
      captureLogOutput('fencing test', String(chunk));
      logLines.push(...String(chunk).split('\n').filter(Boolean));
      cb();
    },
  });
  const connection: RedisConnection = createWorkerConnection(target);
  const bridge = createWorkers({
    config,
    connection,
    prefix,
    logger: createLogger({ name: 'fencing-test', level: 'debug', destination: sink }),
    registry: createMetricsRegistry('worker'),
    gladly: createGladlyClient({ baseUrl: gladlyUrl, user: GLADLY_USER, token: GLADLY_TOKEN }),
    klaviyo,
    timings: { authPauseMs: 300, backoff: { baseMs: 50, capMs: 200 } },
  });
  bridge.run();
  cleanups.push(async () => {
    await bridge.close();
    connection.disconnect();
  });
  return { bridge, logLines };
}

function delivery(type: TransitionType, id: string, at: string) {
  const transition = toTransition(
    { id, type, timestamp: at, content: { customerId: 'cust-fenced', conversationId: 'conv-f' } },
    new Date(),
  );
  return {
    name: 'deliver',
    data: { ...transition, email: EMAIL, resolvedCustomerId: 'cust-fenced' },
    opts: { jobId: deliveryJobId(id, EMAIL, TEST_PSEUDONYM_KEY) },
  };
}

/** The stand-ins and a producer on a fresh prefix, closed after the test. */
async function startScene(name: string) {
  const gladly = await startGladlyStandIn({ user: GLADLY_USER, token: GLADLY_TOKEN });
  const klaviyo: KlaviyoStandIn = await startKlaviyoStandIn({ apiKey: KLAVIYO_KEY });
  cleanups.push(async () => {
    await Promise.all([gladly.close(), klaviyo.close()]);
  });
  const prefix = uniquePrefix(name);
  const producerConnection = createWorkerConnection(redis.target, 'test-producer');
  const producer: BridgeQueues = createQueues(producerConnection, prefix);
  cleanups.push(async () => {
    await closeQueues(producer);
    producerConnection.disconnect();
  });
  return { gladly, klaviyo, prefix, producer };
}

describe('fenced per-email lease', () => {
  it('a delivery held past its lease while a newer one is delivered elsewhere never sets the profile back', async () => {
    const { gladly, klaviyo, prefix, producer } = await startScene('fencing');

    // The first worker's Klaviyo client stops before sending the old event, as a process frozen
    // between its lease check and the request would, until the test lets it go on.
    const real = createKlaviyoClient({ baseUrl: klaviyo.url, apiKey: KLAVIYO_KEY, timeoutMs: 2_000 });
    let holding = false;
    let release: () => void = () => {};
    const released = new Promise<void>((resolve) => {
      release = resolve;
    });
    let heldOnce = false;
    const frozen: KlaviyoClient = {
      ...real,
      async createEvent(input, options) {
        if (input.uniqueId === 'evt-old' && !heldOnce) {
          heldOnce = true;
          holding = true;
          await released;
        }
        return real.createEvent(input, options);
      },
    };
    // One job at a time on the first worker: busy with the old event, it cannot take the newer one.
    const env = { WORKER_LOCK_DURATION_MS: '1000', WORKER_CONCURRENCY: '1' };
    const first = await startBridge(prefix, frozen, gladly.url, klaviyo.url, env);

    const old = delivery('CONVERSATION/CREATED', 'evt-old', '2026-11-20T10:00:00.000Z');
    await producer.deliveries.add(old.name, old.data, old.opts);
    await waitFor(() => holding, { what: 'the first worker to hold the old event after taking the lease' });

    const second = await startBridge(prefix, real, gladly.url, klaviyo.url, {
      WORKER_LOCK_DURATION_MS: '1000',
    });
    const newer = delivery('CONVERSATION/CLOSED', 'evt-new', '2026-11-20T10:01:00.000Z');
    await producer.deliveries.add(newer.name, newer.data, newer.opts);
    // The newer transition waits for the lease, then is delivered by the second worker.
    await waitFor(() => klaviyo.events.some((e) => e.uniqueId === 'evt-new'), {
      timeoutMs: 45_000,
      what: 'the newer transition to reach Klaviyo',
    });
    expect(klaviyo.profile(EMAIL)?.properties[PROP]).toBe(false);

    // The held delivery resumes, long after its lease lapsed.
    release();
    await waitFor(
      async () =>
        (await producer.deliveries.getJob(deliveryJobId('evt-old', EMAIL, TEST_PSEUDONYM_KEY)))
          ?.finishedOn !== undefined,
      { timeoutMs: 20_000, what: 'the old delivery to finish' },
    );

    // The profile ends at the newest transition; the old one is in Klaviyo's history as backfill.
    expect(klaviyo.profile(EMAIL)?.properties[PROP]).toBe(false);
    expect(klaviyo.events.find((e) => e.uniqueId === 'evt-old')?.backfill).toBe(true);
    expect(klaviyo.events.filter((e) => e.uniqueId === 'evt-new')).toHaveLength(1);
    const job = await producer.deliveries.getJob(deliveryJobId('evt-old', EMAIL, TEST_PSEUDONYM_KEY));
    expect(job?.returnvalue).toMatchObject({ outcome: 'delivered_backfill' });
    expect(second.logLines.length).toBeGreaterThan(0);
    expect(first.logLines.join('\n')).not.toContain(EMAIL);
  }, 90_000);

  it('a delivery Klaviyo recorded by a worker that then died counts as applied: an older one goes as backfill', async () => {
    const { gladly, klaviyo, prefix, producer } = await startScene('fencing-dead');

    // The first worker's request reaches Klaviyo, which records the event; then the worker is
    // gone before it can note it in Redis (killed, or frozen for good): its call never returns.
    const real = createKlaviyoClient({ baseUrl: klaviyo.url, apiKey: KLAVIYO_KEY, timeoutMs: 2_000 });
    let wakeUp: () => void = () => {};
    const dead = new Promise<void>((resolve) => {
      wakeUp = resolve;
    });
    let diedOnce = false;
    const dying: KlaviyoClient = {
      ...real,
      async createEvent(input, options) {
        const answer = await real.createEvent(input, options);
        if (input.uniqueId === 'evt-new' && !diedOnce) {
          diedOnce = true;
          await dead;
        }
        return answer;
      },
    };
    const env = { WORKER_LOCK_DURATION_MS: '1000', WORKER_CONCURRENCY: '1' };
    const first = await startBridge(prefix, dying, gladly.url, klaviyo.url, env);
    // Cleanups run in reverse: the dead call returns before the first worker is closed.
    cleanups.push(async () => wakeUp());

    const newer = delivery('CONVERSATION/CLOSED', 'evt-new', '2026-11-20T10:01:00.000Z');
    await producer.deliveries.add(newer.name, newer.data, newer.opts);
    await waitFor(() => klaviyo.events.some((e) => e.uniqueId === 'evt-new'), {
      what: 'Klaviyo to record the newer transition',
    });
    expect(klaviyo.profile(EMAIL)?.properties[PROP]).toBe(false);

    // An older transition for the same address, on another worker, once the lease has lapsed.
    await startBridge(prefix, real, gladly.url, klaviyo.url, { WORKER_LOCK_DURATION_MS: '1000' });
    const old = delivery('CONVERSATION/CREATED', 'evt-old', '2026-11-20T10:00:00.000Z');
    await producer.deliveries.add(old.name, old.data, old.opts);
    await waitFor(
      async () =>
        (await producer.deliveries.getJob(deliveryJobId('evt-old', EMAIL, TEST_PSEUDONYM_KEY)))
          ?.finishedOn !== undefined,
      { timeoutMs: 45_000, what: 'the older delivery to finish' },
    );

    // Klaviyo recorded the newer one, so the older one never sets the profile back.
    expect(klaviyo.events.find((e) => e.uniqueId === 'evt-old')?.backfill).toBe(true);
    expect(klaviyo.profile(EMAIL)?.properties[PROP]).toBe(false);
    const job = await producer.deliveries.getJob(deliveryJobId('evt-old', EMAIL, TEST_PSEUDONYM_KEY));
    expect(job?.returnvalue).toMatchObject({ outcome: 'delivered_backfill' });
    expect(first.logLines.join('\n')).not.toContain(EMAIL);
  }, 90_000);
});
