/**
 * Soak (`npm run test:soak`, not part of `npm test`): steady Gladly-like webhooks through the
 * built ingest and two built workers for SOAK_DURATION_MS (default 2 minutes, the CI run) at
 * SOAK_RATE webhooks a second (default 20), sampling every SOAK_SAMPLE_MS (default 1 s) the RSS
 * and live heap of every service (their own `/metrics`) and Redis's `used_memory`.
 *
 * What it holds the run to:
 * - everything sent is delivered once per email and the queues drain; the backlog never grows
 *   beyond a few seconds of traffic (the bridge keeps up);
 * - process memory: after a warm-up, the heap floor (lowest sample, i.e. after GC) and the RSS of
 *   each service in the last third of the run stay within a bound of the first third;
 * - Redis: its growth is what job retention keeps (completed jobs, 48 h). Removing the completed
 *   jobs, as retention does, must leave no key of any job, no lease, at most one ordering mark
 *   per address and BullMQ's capped event streams, and bring used_memory back to near its start.
 *
 * The report (samples and summary) goes to test-results/soak-report.json (or SOAK_REPORT).
 */
import { fileURLToPath } from 'node:url';
import { QueueName } from '@gk/queue';
import { sleep, waitFor } from '@gk/testing';
import { Queue } from 'bullmq';
import type { Redis } from 'ioredis';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { SELF_HEALING_QUEUE } from '../../src/self-healing/self-healing.js';
import { writeReport } from '../chaos/chaos-run.js';
import { createGladlySender } from '../system/gladly-sender.js';
import { createRandom, numberFromEnv, seedFromEnv } from '../system/random.js';
import { type Stack, type StackMonitor, startStack } from '../system/stack.js';

const DURATION_MS = numberFromEnv('SOAK_DURATION_MS', 120_000);
const RATE = numberFromEnv('SOAK_RATE', 20);
const SAMPLE_MS = numberFromEnv('SOAK_SAMPLE_MS', 1_000);
const SEED = seedFromEnv('SOAK_SEED');
const REPORT =
  process.env.SOAK_REPORT ??
  fileURLToPath(new URL('../../../../test-results/soak-report.json', import.meta.url));
const CUSTOMERS = 500;
const PREFIX = 'soak';
const MiB = 1024 * 1024;
/** Keys BullMQ keeps per queue (not per job): `<prefix>:<queue>:<name>`. */
const QUEUE_LEVEL_KEYS = new Set([
  'wait',
  'paused',
  'meta',
  'id',
  'delayed',
  'active',
  'completed',
  'failed',
  'stalled',
  'limiter',
  'prioritized',
  'pc',
  'marker',
  'events',
  'stalled-check',
  'waiting-children',
  'repeat',
  'de',
  'metrics',
]);
/**
 * The worker's self-healing queue: besides BullMQ's queue keys, the reconciliation watermark (one
 * key) and, per job scheduler, its record `repeat:<id>` and its next job `repeat:<id>:<ms>`: a
 * fixed set whatever the traffic.
 */
const SELF_HEALING_KEYS = new Set([...QUEUE_LEVEL_KEYS, 'reconcile-watermark']);
/** BullMQ trims each queue's event stream to about this many entries (`streams.events.maxLen`). */
const EVENT_STREAM_CAP = 10_000;

interface Sample {
  atS: number;
  sent: number;
  services: Record<string, { rss: number; heapUsed: number }>;
  redisUsedMemory: number;
  completedJobs: number;
  pendingJobs: number;
}

let stack: Stack;
let monitor: StackMonitor;

beforeAll(async () => {
  stack = await startStack({
    prefix: PREFIX,
    workers: 2,
    logLevel: 'warn',
    // Above the soak's rate, so the limits pace nothing and the backlog shows whether it keeps up.
    workerEnv: { GLADLY_RATE_LIMIT_PER_SECOND: '100', KLAVIYO_RATE_LIMIT_PER_SECOND: '200' },
  });
  monitor = stack.monitor();
});

afterAll(async () => {
  await monitor?.close();
  await stack?.close();
});

async function processMemory(url: string): Promise<{ rss: number; heapUsed: number }> {
  const text = await (await fetch(`${url}/metrics`)).text();
  const value = (name: string) =>
    Number(new RegExp(`^${name}(?:\\{[^}]*\\})? (\\S+)$`, 'm').exec(text)?.[1] ?? Number.NaN);
  return {
    rss: value('gk_process_resident_memory_bytes'),
    heapUsed: value('gk_nodejs_heap_size_used_bytes'),
  };
}

async function usedMemory(redis: Redis): Promise<number> {
  const info = await redis.info('memory');
  return Number(/^used_memory:(\d+)/m.exec(info)?.[1] ?? Number.NaN);
}

const median = (xs: number[]) => {
  const s = [...xs].sort((a, b) => a - b);
  return s[Math.floor(s.length / 2)] ?? Number.NaN;
};

describe('soak: steady webhooks through the built ingest and two workers', () => {
  it(`keeps up for ${DURATION_MS / 1000} s at ${RATE}/s with memory flat beyond job retention`, async () => {
    const random = createRandom(SEED);
    const redis = monitor.connection as Redis;
    const customers: string[][] = [];
    for (let c = 0; c < CUSTOMERS; c++) {
      const emails = Array.from({ length: random.int(1, 3) }, (_, i) => `soak${c}.e${i}@example.com`);
      customers.push(emails);
      stack.gladly.setCustomer(`cust${c}`, emails);
    }
    stack.gladly.setLatency(50);
    stack.klaviyo.setLatency(20);
    const sender = createGladlySender({
      url: stack.ingestUrl,
      authorization: stack.webhookAuthorization,
      random,
      redeliverChance: 0.02,
    });

    const baselineRedis = await usedMemory(redis);
    const services = () => ({
      ingest: stack.ingestUrl,
      ...Object.fromEntries(stack.workers().map((w, i) => [`worker${i + 1}`, `http://127.0.0.1:${w.port}`])),
    });
    const samples: Sample[] = [];
    const started = Date.now();
    let sent = 0;
    let expectedEvents = 0;
    const inFlight = new Set<Promise<unknown>>();
    const open = new Map<number, boolean>();

    const sample = async () => {
      const memory: Sample['services'] = {};
      for (const [name, url] of Object.entries(services())) memory[name] = await processMemory(url);
      const { transitions, deliveries } = await monitor.counts();
      const pending = (c: Record<string, number>) =>
        (c.waiting ?? 0) + (c.active ?? 0) + (c.delayed ?? 0) + (c.prioritized ?? 0);
      samples.push({
        atS: Math.round((Date.now() - started) / 100) / 10,
        sent,
        services: memory,
        redisUsedMemory: await usedMemory(redis),
        completedJobs: (transitions.completed ?? 0) + (deliveries.completed ?? 0),
        pendingJobs: pending(transitions) + pending(deliveries),
      });
    };

    // Steady traffic: each tick sends the webhooks due by then, each the next transition of a
    // random customer (open → closed → reopened …), one second of Gladly time apart.
    const base = Date.parse('2026-11-20T00:00:00.000Z');
    let nextSample = 0;
    while (Date.now() - started < DURATION_MS) {
      const due = Math.floor(((Date.now() - started) / 1000) * RATE);
      while (sent < due) {
        const c = random.int(0, CUSTOMERS - 1);
        const seenBefore = open.has(c);
        const wasOpen = open.get(c) ?? false;
        open.set(c, !wasOpen);
        const body = {
          id: `soak-${sent}-${random.int(0, 1e9).toString(36)}`,
          type: wasOpen
            ? 'CONVERSATION/CLOSED'
            : seenBefore
              ? 'CONVERSATION/REOPENED'
              : 'CONVERSATION/CREATED',
          timestamp: new Date(base + sent * 1_000).toISOString(),
          content: { customerId: `cust${c}`, conversationId: `conv-${c}` },
        };
        sent += 1;
        expectedEvents += customers[c]?.length ?? 0;
        const p = sender.deliver(body).finally(() => inFlight.delete(p));
        inFlight.add(p);
      }
      if (Date.now() - started >= nextSample) {
        nextSample += SAMPLE_MS;
        await sample();
      }
      await sleep(20);
    }
    await Promise.all(inFlight);
    const sendMs = Date.now() - started;

    let idleBefore = false;
    await waitFor(
      async () => {
        const { idle } = await monitor.counts();
        const done = idle && idleBefore && stack.klaviyo.events.length >= expectedEvents;
        idleBefore = idle;
        return done;
      },
      { timeoutMs: 60_000, intervalMs: 500, what: 'the queues to drain' },
    );
    await sample();
    const stats = sender.stats();

    // Redis without what retention keeps: remove completed jobs as their 48 h expiry would.
    const beforeClean = await usedMemory(redis);
    const completedAtEnd = samples.at(-1)?.completedJobs ?? 0;
    // The self-healing queue keeps its last 50 runs by count; removed here too.
    const selfHealing = new Queue(SELF_HEALING_QUEUE, { connection: redis, prefix: PREFIX });
    for (const queue of [...Object.values(monitor.queues), selfHealing]) {
      while ((await queue.clean(0, 5_000, 'completed')).length > 0) {}
    }
    await selfHealing.close();
    // What is left: each queue's own keys (a fixed set), and per-address or per-customer state,
    // which must expire by itself. A key of a job, a lease, or anything kept forever is a leak.
    const keys = await redis.keys(`${PREFIX}:*`);
    const queueNames = new Set(Object.values(QueueName) as string[]);
    const jobKeys: string[] = [];
    const queueKeys: string[] = [];
    const stateKeys: string[] = [];
    const schedulerKeys: string[] = [];
    for (const key of keys) {
      const [, namespace = '', rest = '', ...more] = key.split(':');
      if (namespace === SELF_HEALING_QUEUE) {
        if (SELF_HEALING_KEYS.has(rest) && more.length === 0) queueKeys.push(key);
        else if (rest === 'repeat' && more.length <= 2) schedulerKeys.push(key);
        else jobKeys.push(key);
      } else if (namespace === 'state' && rest === 'email-pseudonym-key' && more.length === 0) {
        queueKeys.push(key); // one key per Redis, never expiring by design (see PseudonymKey)
      } else if (namespace === 'state' && rest === 'held' && more.length === 0) {
        // One index per Redis (addresses held "in conversation", for gk_profiles_stuck and
        // `profiles stuck`): an address leaves it when its profile is told false or its state
        // expired; it expires itself 30 days after the last address joined it.
        queueKeys.push(key);
      } else if (!queueNames.has(namespace)) stateKeys.push(key);
      else if (QUEUE_LEVEL_KEYS.has(rest) && more.length === 0) queueKeys.push(key);
      else jobKeys.push(key);
    }
    const schedulers = new Set(schedulerKeys.map((k) => k.split(':')[3]));
    const leaseKeys = stateKeys.filter((k) => k.endsWith(':lease'));
    const ttls = await Promise.all(stateKeys.map((k) => redis.pttl(k)));
    const keptForever = stateKeys.filter((_, i) => (ttls[i] ?? 0) < 0);
    const stateByNamespace: Record<string, number> = {};
    for (const key of stateKeys) {
      const namespace = key.split(':').slice(1, 3).join(':');
      stateByNamespace[namespace] = (stateByNamespace[namespace] ?? 0) + 1;
    }
    const streamLengths = await Promise.all([...queueNames].map((q) => redis.xlen(`${PREFIX}:${q}:events`)));
    await sleep(500);
    const afterClean = await usedMemory(redis);

    // Process memory: first third after a warm-up quarter vs the last third.
    const steady = samples.slice(Math.floor(samples.length / 4));
    const third = Math.max(1, Math.floor(steady.length / 3));
    const early = steady.slice(0, third);
    const late = steady.slice(-third);
    const memory: Record<
      string,
      { rssEarlyMiB: number; rssLateMiB: number; heapFloorEarlyMiB: number; heapFloorLateMiB: number }
    > = {};
    for (const name of Object.keys(samples[0]?.services ?? {})) {
      const of = (xs: Sample[], k: 'rss' | 'heapUsed') =>
        xs.map((s) => s.services[name]?.[k]).filter((v): v is number => Number.isFinite(v));
      memory[name] = {
        rssEarlyMiB: round(median(of(early, 'rss')) / MiB),
        rssLateMiB: round(median(of(late, 'rss')) / MiB),
        heapFloorEarlyMiB: round(Math.min(...of(early, 'heapUsed')) / MiB),
        heapFloorLateMiB: round(Math.min(...of(late, 'heapUsed')) / MiB),
      };
    }
    const distinctEmails = customers.reduce((n, e) => n + e.length, 0);
    const report = {
      seed: SEED,
      durationSeconds: round(sendMs / 1000),
      ratePerSecond: RATE,
      webhooksSent: sent,
      webhooksAccepted: stats.accepted,
      posts: stats.posts,
      eventsExpected: expectedEvents,
      eventsRecorded: stack.klaviyo.events.length,
      duplicatePosts: stack.klaviyo.duplicates,
      maxPendingJobs: Math.max(...samples.map((s) => s.pendingJobs)),
      memory,
      redis: {
        baselineMiB: round(baselineRedis / MiB),
        endMiB: round(beforeClean / MiB),
        completedJobsRetained: completedAtEnd,
        bytesPerRetainedJob: Math.round((beforeClean - afterClean) / Math.max(1, completedAtEnd)),
        afterRemovingCompletedMiB: round(afterClean / MiB),
        keysLeft: {
          jobs: jobKeys.length,
          queues: queueKeys.length,
          schedulers: schedulerKeys.length,
          state: stateByNamespace,
        },
        stateKeysWithoutExpiry: keptForever.length,
        eventStreamLengths: streamLengths,
      },
      samples,
    };
    writeReport(REPORT, report);
    const { samples: _omitted, ...summary } = report;
    console.log(`soak report (seed ${SEED}): ${JSON.stringify(summary, null, 2)}`);

    expect(samples.length).toBeGreaterThanOrEqual(12);
    expect(stats.gaveUp).toBe(0);
    expect(stats.accepted).toBe(sent);
    expect(stack.klaviyo.events.length).toBe(expectedEvents);
    // It keeps up: the backlog never holds more than ten seconds of traffic.
    expect(report.maxPendingJobs).toBeLessThan(RATE * 3 * 10);
    for (const [name, m] of Object.entries(memory)) {
      // Bounds leave room for V8's heap sizing and GC timing; a leak of a few KiB per job
      // (thousands of jobs here) crosses them.
      expect(m.heapFloorLateMiB, `${name} heap floor`).toBeLessThanOrEqual(
        Math.max(m.heapFloorEarlyMiB * 1.25, m.heapFloorEarlyMiB + 8),
      );
      expect(m.rssLateMiB, `${name} RSS`).toBeLessThanOrEqual(
        Math.max(m.rssEarlyMiB * 1.3, m.rssEarlyMiB + 32),
      );
    }
    expect(jobKeys.slice(0, 5), 'keys of jobs left after removing completed jobs').toEqual([]);
    expect(leaseKeys.slice(0, 5), 'email leases left after the drain').toEqual([]);
    expect(keptForever.slice(0, 5), 'state that never expires').toEqual([]);
    // Each job scheduler keeps its record and its next job, nothing per run.
    expect(schedulerKeys.length, 'job scheduler keys').toBeLessThanOrEqual(2 * schedulers.size);
    // At most a few keys per address and per customer: bounded by who exists, not by traffic.
    expect(stateKeys.length).toBeLessThanOrEqual(3 * (distinctEmails + CUSTOMERS));
    for (const length of streamLengths) expect(length).toBeLessThanOrEqual(EVENT_STREAM_CAP * 1.1);
    const allowance = (distinctEmails + CUSTOMERS) * 512 + queueNames.size * EVENT_STREAM_CAP * 400 + 2 * MiB;
    expect(afterClean - baselineRedis).toBeLessThan(allowance);
  });
});

function round(n: number): number {
  return Math.round(n * 10) / 10;
}
