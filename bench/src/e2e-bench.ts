import { writeFileSync } from 'node:fs';
import { Agent, request } from 'node:http';
import { join } from 'node:path';
import { performance } from 'node:perf_hooks';
import { closeQueues, createQueues, createWorkerConnection } from '@gk/queue';
import type { GladlyStandIn, KlaviyoRecordedEvent, KlaviyoStandIn } from '@gk/stand-ins';
import { freePort, sleep } from '@gk/testing';
import { Redis } from 'ioredis';
import { WEBHOOK_AUTH_HEADER, WEBHOOK_PASSWORD, WEBHOOK_USER } from './ingest-bench.js';
import { type BenchProcess, SCRIPTS, startProcess } from './processes.js';
import { type RedisMemoryBreakdown, redisMemoryBreakdown, usedMemory } from './redis-stats.js';
import { type LatencySummary, round, summarize } from './stats.js';
import { bridgeWorkerEnv } from './worker-bench.js';
import { emailsOf, type ScheduledWebhook, schedule, until } from './workload.js';

export interface EndToEndResult {
  ratePerSecond: number;
  durationSeconds: number;
  warmupSeconds: number;
  webhooksSent: number;
  webhooksAccepted: number;
  /** Answers other than 200, and requests that got no answer even when resent. */
  webhooksFailed: number;
  /** Connection errors on the sender's side, by code (each followed by a resend, two at most per webhook). */
  connectionErrors: Record<string, number>;
  /** The sender's worst lateness against its schedule (a late sender would flatter the figures). */
  senderMaxLagMs: number;
  deliveriesExpected: number;
  deliveriesReceived: number;
  /** From the ingest's 200 to the Klaviyo stand-in's 202, per delivery, ms. */
  latencyMs: LatencySummary;
  /** Gladly customer-profile requests divided by transitions processed. */
  gladlyLookupsPerTransition: number;
  transitionsCompleted: number;
  redisMemory: {
    usedMemoryDeltaBytes: number;
    /** The INFO delta divided by the transitions retained (each with its deliveries and email state). */
    bytesPerTransitionWithDeliveries: number;
    breakdown: RedisMemoryBreakdown;
  };
  ingestPeakRssBytes: number | null;
  workerPeakRssBytes: number | null;
}

export interface EndToEndOptions {
  redisUrl: string;
  logDir: string;
  gladly: GladlyStandIn;
  klaviyo: KlaviyoStandIn;
  ratePerSecond: number;
  durationSeconds: number;
  /** Sent at the same rate before the measured run, not counted. */
  warmupSeconds: number;
  concurrency: number;
}

function post(agent: Agent, url: URL, body: string): Promise<number> {
  return new Promise((resolve, reject) => {
    const req = request(
      url,
      {
        method: 'POST',
        agent,
        headers: {
          'content-type': 'application/json',
          'content-length': Buffer.byteLength(body),
          authorization: WEBHOOK_AUTH_HEADER,
        },
      },
      (res) => {
        const status = res.statusCode ?? 0;
        res.resume();
        resolve(status);
      },
    );
    req.on('error', reject);
    req.end(body);
  });
}

/** The built ingest on `port`, with the bench's webhook credentials and a spool in the log folder. */
export function startBenchIngest(
  name: string,
  port: number,
  prefix: string,
  options: { redisUrl: string; logDir: string },
  extraEnv: Record<string, string> = {},
): Promise<BenchProcess> {
  return startProcess({
    name,
    script: SCRIPTS.ingest,
    env: {
      PORT: String(port),
      HOST: '127.0.0.1',
      REDIS_URL: options.redisUrl,
      QUEUE_PREFIX: prefix,
      WEBHOOK_BASIC_AUTH: `${WEBHOOK_USER}:${WEBHOOK_PASSWORD}`,
      INGEST_SPOOL_PATH: join(options.logDir, `${name}.spool`),
      ...extraEnv,
    },
    logDir: options.logDir,
    readyUrl: `http://127.0.0.1:${port}/readyz`,
  });
}

/**
 * Webhooks at a fixed rate through the built ingest and worker, against stand-ins answering at
 * once with the rate limiters lifted; per delivery, the time from the ingest's 200 to the Klaviyo
 * stand-in's 202 (one clock: both ends are in this process).
 */
export async function benchEndToEnd(options: EndToEndOptions): Promise<EndToEndResult> {
  const prefix = 'bench-e2e';
  const warmup = schedule(options.ratePerSecond * options.warmupSeconds, options.ratePerSecond, 'warm');
  const webhooks = schedule(options.ratePerSecond * options.durationSeconds, options.ratePerSecond);
  for (const w of [...warmup, ...webhooks]) options.gladly.setCustomer(w.customerId, emailsOf(w.customerId));
  options.klaviyo.reset();

  const redis = new Redis(options.redisUrl);
  const ingestPort = await freePort();
  const workerPort = await freePort();
  const ingest = await startBenchIngest('ingest-e2e', ingestPort, prefix, options);
  const worker = await startProcess({
    name: 'worker-e2e',
    script: SCRIPTS.worker,
    env: bridgeWorkerEnv(options, {
      QUEUE_PREFIX: prefix,
      WORKER_PORT: String(workerPort),
      WORKER_CONCURRENCY: String(options.concurrency),
      KLAVIYO_RATE_LIMIT_PER_SECOND: '0',
      GLADLY_RATE_LIMIT_PER_SECOND: '0',
    }),
    logDir: options.logDir,
    readyUrl: `http://127.0.0.1:${workerPort}/readyz`,
  });

  const deliveredAt = new Map<string, number>();
  const onEvent = (e: KlaviyoRecordedEvent) => deliveredAt.set(`${e.uniqueId}|${e.email}`, performance.now());
  options.klaviyo.on('event', onEvent);
  // FIFO over a few sockets keeps each one busy: an idle pooled socket is what the server closes
  // after its keep-alive timeout, racing a request sent on it (ECONNRESET).
  const agent = new Agent({ keepAlive: true, maxSockets: 16, scheduling: 'fifo' });
  const url = new URL(`http://127.0.0.1:${ingestPort}/webhooks/gladly`);
  const queueConnection = createWorkerConnection({ url: options.redisUrl }, 'bench-e2e-check');
  const queues = createQueues(queueConnection, prefix);
  const completed = async () => ({
    transitions: await queues.transitions.getCompletedCount(),
    deliveries: await queues.deliveries.getCompletedCount(),
  });
  const deliveriesOf = (sent: SendResult, list: ScheduledWebhook[]) =>
    list.flatMap((w) => (sent.acceptedAt.has(w.id) ? emailsOf(w.customerId).map((e) => `${w.id}|${e}`) : []));

  try {
    // Not measured: freshly started processes compile their hot paths and open their connections.
    const warm = await sendAtRate(agent, url, warmup, options.ratePerSecond);
    const warmExpected = deliveriesOf(warm, warmup);
    await until(() => warmExpected.every((k) => deliveredAt.has(k)), 30_000, 'the warm-up deliveries');
    await sleep(500);

    const lookupsBefore = options.gladly.requests.length;
    const memoryBefore = await usedMemory(redis);
    const before = await completed();
    const sent = await sendAtRate(agent, url, webhooks, options.ratePerSecond);
    const expected = deliveriesOf(sent, webhooks);
    await until(
      () => expected.every((k) => deliveredAt.has(k)),
      60_000,
      'every delivery to reach Klaviyo',
    ).catch(() => {});
    // Completed transitions and deliveries are what Redis retains; wait until all are marked so.
    let after = before;
    const deadline = Date.now() + 15_000;
    do {
      after = await completed();
      if (
        after.transitions - before.transitions >= sent.acceptedAt.size &&
        after.deliveries - before.deliveries >= expected.length
      )
        break;
      await sleep(100);
    } while (Date.now() < deadline);
    const transitions = after.transitions - before.transitions;

    const latencies: number[] = [];
    const csv = ['event_id,email_index,accepted_ms,delivered_ms,latency_ms'];
    const emailIndex = new Map<string, number>();
    for (const key of expected) {
      const eventId = key.slice(0, key.indexOf('|'));
      const delivered = deliveredAt.get(key);
      const accepted = sent.acceptedAt.get(eventId);
      const index = emailIndex.get(eventId) ?? 0;
      emailIndex.set(eventId, index + 1);
      if (delivered !== undefined && accepted !== undefined) {
        latencies.push(delivered - accepted);
        const at = (t: number) => round(t - sent.start, 1);
        csv.push(`${eventId},${index},${at(accepted)},${at(delivered)},${round(delivered - accepted, 1)}`);
      }
    }
    // Per delivery, for looking into the tail (times from the start of the measured run).
    writeFileSync(join(options.logDir, 'e2e-latencies.csv'), `${csv.join('\n')}\n`);
    const summary = summarize(latencies);
    const lookups = options.gladly.requests.length - lookupsBefore;
    const memoryAfter = await usedMemory(redis);
    const breakdown = await redisMemoryBreakdown(redis, prefix);
    return {
      ratePerSecond: options.ratePerSecond,
      durationSeconds: options.durationSeconds,
      warmupSeconds: options.warmupSeconds,
      webhooksSent: webhooks.length,
      webhooksAccepted: sent.acceptedAt.size,
      webhooksFailed: sent.failed,
      connectionErrors: sent.connectionErrors,
      senderMaxLagMs: round(sent.maxLagMs, 1),
      deliveriesExpected: expected.length,
      deliveriesReceived: latencies.length,
      latencyMs: {
        count: summary.count,
        p50: round(summary.p50, 1),
        p99: round(summary.p99, 1),
        max: round(summary.max, 1),
        mean: round(summary.mean, 1),
      },
      gladlyLookupsPerTransition: transitions ? round(lookups / transitions, 3) : Number.NaN,
      transitionsCompleted: transitions,
      redisMemory: {
        usedMemoryDeltaBytes: memoryAfter - memoryBefore,
        bytesPerTransitionWithDeliveries: transitions
          ? round((memoryAfter - memoryBefore) / transitions, 0)
          : Number.NaN,
        breakdown,
      },
      ingestPeakRssBytes: ingest.peakRssBytes(),
      workerPeakRssBytes: worker.peakRssBytes(),
    };
  } finally {
    options.klaviyo.off('event', onEvent);
    agent.destroy();
    await closeQueues(queues);
    await queueConnection.quit();
    await ingest.stop();
    await worker.stop();
    redis.disconnect();
  }
}

export interface SendResult {
  /** performance.now() of the first slot. */
  start: number;
  /** Event id → performance.now() when its 200 arrived. */
  acceptedAt: Map<string, number>;
  /** Answers other than 200, and requests that got no answer even when resent. */
  failed: number;
  /** Connection errors by code (each followed by a resend, two at most per webhook). */
  connectionErrors: Record<string, number>;
  maxLagMs: number;
}

/** Sends each webhook at its slot (slot s at s/rate seconds) without waiting for earlier answers. */
export async function sendAtRate(
  agent: Agent,
  url: URL,
  webhooks: ScheduledWebhook[],
  ratePerSecond: number,
): Promise<SendResult> {
  const result: SendResult = {
    start: performance.now() + 50,
    acceptedAt: new Map(),
    failed: 0,
    connectionErrors: {},
    maxLagMs: 0,
  };
  const intervalMs = 1000 / ratePerSecond;
  const inFlight: Promise<void>[] = [];
  for (const [s, w] of webhooks.entries()) {
    const due = result.start + s * intervalMs;
    const wait = due - performance.now();
    if (wait > 1) await sleep(wait);
    result.maxLagMs = Math.max(result.maxLagMs, performance.now() - due);
    const body = JSON.stringify({
      id: w.id,
      type: w.type,
      timestamp: new Date().toISOString(),
      initiator: { id: w.customerId, type: 'CUSTOMER' },
      content: { customerId: w.customerId, conversationId: `conv-${w.customerId}` },
    });
    const attempt = async (): Promise<void> => {
      try {
        const status = await post(agent, url, body);
        if (status === 200) result.acceptedAt.set(w.id, performance.now());
        else result.failed += 1;
      } catch (err) {
        const code = (err as { code?: string }).code ?? 'error';
        result.connectionErrors[code] = (result.connectionErrors[code] ?? 0) + 1;
        throw err;
      }
    };
    // A connection error before any answer (say, a keep-alive socket the server closed just as
    // it was reused) is resent, twice at most, as Gladly would; the ingest dedupes by event id.
    inFlight.push(
      attempt()
        .catch(() => attempt())
        .catch(() => attempt())
        .catch(() => {
          result.failed += 1;
        }),
    );
  }
  await Promise.all(inFlight);
  return result;
}
