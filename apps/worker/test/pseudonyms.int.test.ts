/**
 * Keyed email pseudonyms: delivery job ids, per-email Redis keys and log fields carry an HMAC of
 * the address under the worker's key (LOG_EMAIL_HASH_KEY, or one generated at first start and
 * kept in Redis), and what versions before keyed pseudonyms left in Redis still counts.
 */
import { createHash } from 'node:crypto';
import { hashEmail, LEGACY_EMAIL_HASH_KEY } from '@gk/domain';
import { createWorkerConnection, deliveryJobId, legacyDeliveryJobId, type RedisConnection } from '@gk/queue';
import { type TestRedis, uniquePrefix, useTestRedis, waitFor } from '@gk/testing';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { PseudonymKey, PseudonymKeyMismatch } from '../src/state/pseudonym-key.js';
import {
  GLADLY_TOKEN,
  GLADLY_USER,
  type Harness,
  KLAVIYO_KEY,
  metricValue,
  startHarness,
} from './harness.js';
import { startWorkerProcess } from './worker-process.js';

let redis: TestRedis;
let connection: RedisConnection;
let h: Harness | undefined;

beforeAll(async () => {
  redis = await useTestRedis();
  connection = createWorkerConnection(redis.target, 'pseudonyms-test');
});
afterEach(async () => {
  await h?.close();
  h = undefined;
});
afterAll(async () => {
  connection?.disconnect();
  await redis.stop();
});

const PROP = 'In Gladly Conversation';

describe('the pseudonym key', () => {
  it('is generated once per Redis and shared by every worker of it', async () => {
    const prefix = uniquePrefix('pk');
    const first = new PseudonymKey(connection, prefix, undefined);
    const second = new PseudonymKey(connection, prefix, undefined);
    const [a, b] = await Promise.all([first.get(), second.get()]);
    expect(a).toMatch(/^[0-9a-f]{64}$/);
    expect(b).toBe(a);
    expect(await new PseudonymKey(connection, uniquePrefix('pk'), undefined).get()).not.toBe(a);
  });

  it('keeps only a fingerprint of a configured key, and refuses another key later', async () => {
    const prefix = uniquePrefix('pk');
    const key = 'operator-chosen-key-9f2c';
    expect(await new PseudonymKey(connection, prefix, key).get()).toBe(key);
    const stored = await connection.get(new PseudonymKey(connection, prefix, key).redisKey);
    expect(stored).toMatch(/^f:[0-9a-f]{64}$/);
    expect(stored).not.toContain(key);
    // A key in use never changes: another one, or none, is refused with what to do.
    await expect(new PseudonymKey(connection, prefix, 'another-key').get()).rejects.toThrow(
      /LOG_EMAIL_HASH_KEY differs.*set it back/,
    );
    await expect(new PseudonymKey(connection, prefix, undefined).get()).rejects.toThrow(
      /made with LOG_EMAIL_HASH_KEY, which is not set/,
    );
  });

  it('refuses a configured key where a generated one is in use', async () => {
    const prefix = uniquePrefix('pk');
    await new PseudonymKey(connection, prefix, undefined).get();
    const late = new PseudonymKey(connection, prefix, 'late-key');
    await expect(late.get()).rejects.toBeInstanceOf(PseudonymKeyMismatch);
    await expect(late.get()).rejects.toThrow(/unset LOG_EMAIL_HASH_KEY/);
  });
});

describe('the built worker', () => {
  it('refuses to start with a key other than the one its Redis pseudonyms were made with', async () => {
    const prefix = uniquePrefix('pk-refused');
    await new PseudonymKey(connection, prefix, 'first-key-in-use').get();
    const worker = await startWorkerProcess(
      {
        ...redis.env,
        QUEUE_PREFIX: prefix,
        GLADLY_API_URL: 'http://127.0.0.1:9',
        GLADLY_API_USER: GLADLY_USER,
        GLADLY_API_TOKEN: GLADLY_TOKEN,
        KLAVIYO_API_URL: 'http://127.0.0.1:9',
        KLAVIYO_API_KEY: KLAVIYO_KEY,
        LOG_EMAIL_HASH_KEY: 'a-different-key',
      },
      false,
    );
    expect(await worker.exited).toBe(1);
    expect(worker.output()).toMatch(/refusing to start: LOG_EMAIL_HASH_KEY differs/);
    expect(worker.output()).not.toContain('a-different-key');
  });
});

describe('keyed pseudonyms in the worker', () => {
  it('delivery job ids and Redis keys carry the keyed pseudonym, never the unkeyed one or the address', async () => {
    h = await startHarness(redis.target);
    const email = 'Keyed.Person@Example.com';
    h.gladly.setCustomer('cust-keyed', [email]);
    await h.send('CONVERSATION/CREATED', {
      id: 'evt-keyed',
      customerId: 'cust-keyed',
      at: '2026-11-20T14:00:00Z',
    });
    await waitFor(() => h?.klaviyo.events.length === 1, { what: 'the event' });
    const key = await h.bridge.pseudonyms.get();
    await waitFor(async () => (await h?.producer.deliveries.getCompletedCount()) === 1, {
      what: 'the delivery to complete',
    });
    const [job] = await h.producer.deliveries.getJobs(['completed']);
    expect(job?.id).toBe(deliveryJobId('evt-keyed', email, key));
    expect(job?.id).not.toBe(legacyDeliveryJobId('evt-keyed', email));
    const keys = await connection.keys(`${h.prefix}:*`);
    const unkeyed = [
      hashEmail(email, LEGACY_EMAIL_HASH_KEY),
      createHash('sha256').update(email.toLowerCase()).digest('hex').slice(0, 24),
    ];
    for (const k of keys) {
      expect(k.toLowerCase()).not.toContain('keyed.person');
      for (const u of unkeyed) expect(k).not.toContain(u);
    }
    expect(keys.some((k) => k.includes(`:email:${hashEmail(email, key)}:applied`))).toBe(true);
    // The log's pseudonym is the same keyed one.
    expect(h.logLines.some((l) => l.includes(hashEmail(email, key)))).toBe(true);
  });

  it('honours an ordering mark written by a version before keyed pseudonyms', async () => {
    h = await startHarness(redis.target);
    const email = 'marked.before@example.com';
    h.gladly.setCustomer('cust-marked', [email]);
    // The previous version applied a close at 14:41 to this address (its key layout, unkeyed).
    const legacyBase = `${h.prefix}:state:email:${hashEmail(email, LEGACY_EMAIL_HASH_KEY)}`;
    await connection.set(
      `${legacyBase}:applied`,
      `${Date.parse('2026-11-20T14:41:00.000Z')}|evt-close-v1`,
      'EX',
      3600,
    );
    await h.send('CONVERSATION/CREATED', {
      id: 'evt-late-create',
      customerId: 'cust-marked',
      at: '2026-11-20T14:03:00Z',
    });
    await waitFor(() => h?.klaviyo.events.length === 1, { what: 'the late create' });
    expect(h.klaviyo.events[0]?.backfill).toBe(true);
    expect(h.klaviyo.events[0]?.profileProperties).toBeUndefined();
    expect(h.klaviyo.profile(email)?.properties[PROP]).toBeUndefined();
  });

  it('waits for a lease held by a worker of the version before keyed pseudonyms', async () => {
    h = await startHarness(redis.target);
    const email = 'leased.before@example.com';
    h.gladly.setCustomer('cust-leased', [email]);
    const legacyBase = `${h.prefix}:state:email:${hashEmail(email, LEGACY_EMAIL_HASH_KEY)}`;
    await connection.set(`${legacyBase}:lease`, 'v1-job-id', 'PX', 1_500);
    const sentAt = Date.now();
    await h.send('CONVERSATION/CREATED', {
      id: 'evt-after-lease',
      customerId: 'cust-leased',
      at: '2026-11-20T14:03:00Z',
    });
    await waitFor(() => h?.klaviyo.events.length === 1, { timeoutMs: 10_000, what: 'the event' });
    expect(h.klaviyo.requestTimes[0] ?? 0).toBeGreaterThanOrEqual(sentAt + 1_000);
    expect(
      await metricValue(h.registry, 'gk_deliveries_total', { outcome: 'waited_for_lease' }),
    ).toBeGreaterThan(0);
  });

  it('a fan-out run again does not add a delivery a version before keyed pseudonyms already queued', async () => {
    h = await startHarness(redis.target);
    const emails = ['queued.before@example.com', 'not.yet@example.com'];
    h.gladly.setCustomer('cust-queued', emails);
    // The first lookup fails, so the transition runs a second time; meanwhile the previous
    // version's fan-out (the one that ran before) has queued the first address's delivery.
    h.gladly.injectFaults({ status: 503 });
    const transition = {
      eventId: 'evt-queued-v1',
      customerId: 'cust-queued',
      conversationId: 'conv-1',
      gladlyType: 'CONVERSATION/CLOSED',
      kind: 'closed',
      occurredAt: '2026-11-20T14:41:00.000Z',
      receivedAt: '2026-11-20T14:41:01.000Z',
    } as const;
    await h.producer.deliveries.add(
      'deliver',
      { ...transition, email: emails[0] as string, resolvedCustomerId: 'cust-queued' },
      { jobId: legacyDeliveryJobId('evt-queued-v1', emails[0] as string), delay: 1_500 },
    );
    await h.send('CONVERSATION/CLOSED', {
      id: 'evt-queued-v1',
      customerId: 'cust-queued',
      at: transition.occurredAt,
    });
    await waitFor(() => h?.klaviyo.events.length === 2, { timeoutMs: 15_000, what: 'both events' });
    await waitFor(async () => (await h?.producer.deliveries.getCompletedCount()) === 2, {
      what: 'both deliveries to complete',
    });
    // One delivery job per address (the first under its old id), one POST each.
    expect(await h.producer.deliveries.getJobCounts('completed', 'waiting', 'delayed', 'failed')).toEqual({
      completed: 2,
      waiting: 0,
      delayed: 0,
      failed: 0,
    });
    expect(h.klaviyo.posts).toBe(2);
    expect(h.klaviyo.events.map((e) => e.email).sort()).toEqual([...emails].sort());
  });
});
