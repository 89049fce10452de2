/**
 * End to end under faults: the built ingest and two built workers, Gladly and Klaviyo stand-ins
 * injecting 429s, 503s and dropped connections, a sender that redelivers like Gladly, a kill -9
 * of a worker and a kill -9 of Redis (restarted from its AOF) in mid-stream. Every webhook that
 * got a 2xx must end as exactly one recorded Klaviyo event per valid email, with each profile's
 * final state right, nothing stuck and nothing failed.
 */
import { writeFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { normalizeEmails } from '@gk/domain';
import { closeQueues, createQueues, createWorkerConnection } from '@gk/queue';
import {
  type GladlyStandIn,
  type KlaviyoStandIn,
  startGladlyStandIn,
  startKlaviyoStandIn,
} from '@gk/stand-ins';
import {
  freePort,
  type RedisServer,
  type ServiceProcess,
  sleep,
  startRedisServer,
  startServiceProcess,
  waitFor,
} from '@gk/testing';
import type { Redis } from 'ioredis';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { GLADLY_TOKEN, GLADLY_USER, KLAVIYO_KEY } from './harness.js';
import { startWorkerProcess, type WorkerProcess } from './worker-process.js';

const INGEST_MAIN = fileURLToPath(new URL('../../ingest/dist/main.js', import.meta.url));
const HOOK_USER = 'gladly';
const HOOK_PASSWORD = 'fault-stream-webhook-pw';
const PROP = 'In Gladly Conversation';

let redis: RedisServer;
let gladly: GladlyStandIn;
let klaviyo: KlaviyoStandIn;
let ingest: ServiceProcess;
let ingestUrl: string;
const workers: WorkerProcess[] = [];

interface Sent {
  id: string;
  type: string;
  customerId: string;
  timestamp: string;
  answered: number;
}

function workerEnv(): Record<string, string> {
  return {
    REDIS_URL: redis.url,
    QUEUE_PREFIX: 'fault',
    GLADLY_API_URL: gladly.url,
    GLADLY_API_USER: GLADLY_USER,
    GLADLY_API_TOKEN: GLADLY_TOKEN,
    KLAVIYO_API_URL: klaviyo.url,
    KLAVIYO_API_KEY: KLAVIYO_KEY,
    KLAVIYO_RATE_LIMIT_PER_SECOND: '100',
    GLADLY_RATE_LIMIT_PER_SECOND: '50',
    WORKER_LOCK_DURATION_MS: '2000',
    LOG_LEVEL: 'warn',
  };
}

beforeAll(async () => {
  redis = await startRedisServer({ appendonly: true });
  gladly = await startGladlyStandIn({ user: GLADLY_USER, token: GLADLY_TOKEN });
  klaviyo = await startKlaviyoStandIn({ apiKey: KLAVIYO_KEY });
  const port = await freePort();
  ingestUrl = `http://127.0.0.1:${port}`;
  ingest = await startServiceProcess({
    script: INGEST_MAIN,
    env: {
      REDIS_URL: redis.url,
      QUEUE_PREFIX: 'fault',
      PORT: String(port),
      HOST: '127.0.0.1',
      WEBHOOK_BASIC_AUTH: `${HOOK_USER}:${HOOK_PASSWORD}`,
      LOG_LEVEL: 'warn',
    },
    readyUrl: `${ingestUrl}/readyz`,
  });
  workers.push(await startWorkerProcess(workerEnv()), await startWorkerProcess(workerEnv()));
});

afterAll(async () => {
  for (const w of workers) await w.kill();
  await ingest?.kill();
  await Promise.all([gladly?.close(), klaviyo?.close()]);
  await redis?.stop();
});

/** Posts like Gladly: retries on anything but 2xx; returns the 2xx status it finally got. */
async function deliverLikeGladly(body: object): Promise<number> {
  const auth = `Basic ${Buffer.from(`${HOOK_USER}:${HOOK_PASSWORD}`).toString('base64')}`;
  for (let attempt = 0; attempt < 200; attempt++) {
    const res = await fetch(`${ingestUrl}/webhooks/gladly`, {
      method: 'POST',
      headers: { 'content-type': 'application/json', authorization: auth },
      body: JSON.stringify(body),
      signal: AbortSignal.timeout(15_000),
    }).catch(() => null);
    if (res && res.status >= 200 && res.status < 300) return res.status;
    await sleep(200);
  }
  throw new Error('webhook never accepted');
}

describe('fault stream: built ingest + two workers under injected faults and kills', () => {
  it('delivers every accepted transition exactly once per email, in the right final state', async () => {
    // 24 customers with 1–3 emails (one with a case duplicate and an invalid entry), plus an unknown one.
    const customers = new Map<string, string[]>();
    for (let c = 0; c < 24; c++) {
      const emails = Array.from({ length: 1 + (c % 3) }, (_, i) => `c${c}.e${i}@example.com`);
      if (c === 0) emails.push('C0.E0@EXAMPLE.COM', 'not-an-email');
      customers.set(`cust${c}`, emails);
      gladly.setCustomer(`cust${c}`, emails);
    }
    const base = Date.parse('2026-11-20T10:00:00Z');
    const plan: Omit<Sent, 'answered'>[] = [];
    for (let c = 0; c < 24; c++) {
      const at = (m: number) => new Date(base + c * 1000 + m * 60_000).toISOString();
      plan.push({
        id: `fs-${c}-created`,
        type: 'CONVERSATION/CREATED',
        customerId: `cust${c}`,
        timestamp: at(0),
      });
      plan.push({
        id: `fs-${c}-closed`,
        type: 'CONVERSATION/CLOSED',
        customerId: `cust${c}`,
        timestamp: at(5),
      });
      if (c % 2 === 0) {
        plan.push({
          id: `fs-${c}-reopened`,
          type: 'CONVERSATION/REOPENED',
          customerId: `cust${c}`,
          timestamp: at(9),
        });
      }
    }
    plan.push({
      id: 'fs-unknown',
      type: 'CONVERSATION/CREATED',
      customerId: 'nobody',
      timestamp: new Date(base).toISOString(),
    });
    // Shuffle so closes sometimes arrive before their creates.
    plan.sort(() => Math.random() - 0.5);

    gladly.injectFaults({ status: 429, retryAfterSeconds: 1 }, { status: 503 }, { drop: true });
    // A little latency keeps deliveries in flight, so the kills interrupt real work.
    klaviyo.setLatency(25);
    const faults = {
      klaviyo429: 0,
      klaviyo503: 0,
      klaviyoDrop: 0,
      workerKills: 0,
      redisKills: 0,
      redeliveries: 0,
    };
    const injector = setInterval(() => {
      const r = Math.random();
      if (r < 0.3) {
        klaviyo.injectFaults({ status: 429, retryAfterSeconds: 1 });
        faults.klaviyo429++;
      } else if (r < 0.7) {
        klaviyo.injectFaults({ status: 503 });
        faults.klaviyo503++;
      } else {
        klaviyo.injectFaults({ drop: true });
        faults.klaviyoDrop++;
      }
    }, 150);

    const sent: Sent[] = [];
    const third = Math.floor(plan.length / 3);
    for (const [i, p] of plan.entries()) {
      const body = {
        id: p.id,
        type: p.type,
        timestamp: p.timestamp,
        content: { customerId: p.customerId, conversationId: `conv-${p.customerId}` },
      };
      sent.push({ ...p, answered: await deliverLikeGladly(body) });
      if (Math.random() < 0.2) {
        await deliverLikeGladly(body); // Gladly sometimes delivers twice
        faults.redeliveries++;
      }
      if (i === third) {
        const victim = workers.shift();
        await victim?.kill();
        faults.workerKills++;
        workers.push(await startWorkerProcess(workerEnv()));
      }
      if (i === 2 * third) {
        await redis.kill();
        faults.redisKills++;
        await sleep(1_000);
        await redis.restart();
      }
    }
    clearInterval(injector);

    // Expected: one event per (accepted id, valid email); the unknown customer gets nothing.
    const expected = new Map<string, Set<string>>();
    for (const s of sent) {
      const emails = customers.get(s.customerId);
      if (!emails) continue;
      expected.set(s.id, new Set(normalizeEmails(emails).emails.map((e) => e.toLowerCase())));
    }
    const expectedCount = [...expected.values()].reduce((n, set) => n + set.size, 0);
    await waitFor(() => klaviyo.events.length >= expectedCount, {
      timeoutMs: 90_000,
      intervalMs: 250,
      what: `${expectedCount} events`,
    });

    const connection = createWorkerConnection({ url: redis.url }) as Redis;
    const queues = createQueues(connection, 'fault');
    try {
      await waitFor(
        async () => {
          const counts = await Promise.all([
            queues.transitions.getJobCounts('waiting', 'active', 'delayed', 'prioritized'),
            queues.deliveries.getJobCounts('waiting', 'active', 'delayed', 'prioritized'),
          ]);
          return counts.every((c) => Object.values(c).every((n) => n === 0));
        },
        { timeoutMs: 30_000, what: 'queues to drain' },
      );
      expect(await queues.transitions.getFailedCount()).toBe(0);
      expect(await queues.deliveries.getFailedCount()).toBe(0);
    } finally {
      await closeQueues(queues);
      connection.disconnect();
    }

    // Exactly once per (event, email) in Klaviyo's dedupe view, nothing unexpected.
    const recorded = new Map<string, number>();
    for (const e of klaviyo.events) {
      const key = `${e.uniqueId}|${e.email.toLowerCase()}`;
      recorded.set(key, (recorded.get(key) ?? 0) + 1);
    }
    for (const [id, emails] of expected)
      for (const email of emails) expect(recorded.get(`${id}|${email}`), `${id} ${email}`).toBe(1);
    expect(klaviyo.events).toHaveLength(expectedCount);
    expect(klaviyo.events.some((e) => e.email === 'not-an-email')).toBe(false);

    // Final state per profile = the kind of the newest transition of its customer.
    for (const [customerId, emails] of customers) {
      const newest = sent
        .filter((s) => s.customerId === customerId)
        .sort((a, b) => a.timestamp.localeCompare(b.timestamp))
        .at(-1);
      const open = newest?.type !== 'CONVERSATION/CLOSED';
      for (const email of normalizeEmails(emails).emails) {
        expect(klaviyo.profile(email)?.properties[PROP], `${customerId} ${email}`).toBe(open);
      }
    }

    const report = {
      webhooksAccepted: sent.length,
      eventsExpected: expectedCount,
      eventsRecorded: klaviyo.events.length,
      klaviyoPosts: klaviyo.posts,
      duplicatePosts: klaviyo.duplicates,
      duplicatePostsPerEvent: Number((klaviyo.duplicates / expectedCount).toFixed(3)),
      throttled: klaviyo.throttled,
      faults,
      lost: 0,
    };
    console.log(`fault-stream report: ${JSON.stringify(report)}`);
    if (process.env.FAULT_STREAM_REPORT)
      writeFileSync(process.env.FAULT_STREAM_REPORT, JSON.stringify(report, null, 2));

    // Both kinds of process exit 0 on SIGTERM.
    expect(await ingest.stop()).toBe(0);
    for (const w of workers.splice(0)) expect(await w.stop()).toBe(0);
  }, 180_000);
});
