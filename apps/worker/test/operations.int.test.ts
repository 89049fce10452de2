/**
 * What an operator sees, end to end: the built ingest and worker (LOG_LEVEL=debug) with the
 * Gladly and Klaviyo stand-ins, driven through a demo-like stream that touches every outcome
 * (accepted, duplicate, ignored, each rejection, unknown customer, no email, invalid emails,
 * stale transition, 429s, 5xx, a permanent failure retried with the CLI), then a Redis outage, a
 * shutdown with work in flight, and rejected credentials. Checks that:
 * - `/metrics` on both services counts exactly what happened;
 * - every metric and label value that deploy/ (alert rules, dashboard) uses is in those scrapes;
 * - `/readyz` names what is wrong (Redis, shutting down, Klaviyo key, Gladly credentials);
 * - there is one log line per webhook and per delivery attempt, tied together by event and job
 *   ids, and no line holds a test email address or secret.
 */
import { execFile } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import {
  type GladlyStandIn,
  type KlaviyoStandIn,
  startGladlyStandIn,
  startKlaviyoStandIn,
} from '@gk/stand-ins';
import {
  freePort,
  type RedisServer,
  registerTestSecrets,
  type ServiceProcess,
  sleep,
  startRedisServer,
  startServiceProcess,
  waitFor,
} from '@gk/testing';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { deployFiles, metricReferences } from '../../../scripts/deploy-metrics.mjs';
import { GLADLY_TOKEN, GLADLY_USER, KLAVIYO_KEY } from './harness.js';
import { startWorkerProcess, type WorkerProcess } from './worker-process.js';

const INGEST_MAIN = fileURLToPath(new URL('../../ingest/dist/main.js', import.meta.url));
const CLI = fileURLToPath(new URL('../dist/cli/jobs.js', import.meta.url));
const PREFIX = 'ops';
const HOOK_USER = 'gladly-ops';
const HOOK_PASSWORD = 'ops-webhook-pw-71c2e9';
const WRONG_PASSWORD = 'not-the-password-4411';
const ADMIN_PASSWORD = 'ops-admin-pw-93ab07';
const HASH_KEY = 'ops-hash-key-5e6f1d';
registerTestSecrets(HOOK_PASSWORD, WRONG_PASSWORD, ADMIN_PASSWORD, HASH_KEY);

const CUSTOMERS: Record<string, string[]> = {
  'cust-multi': [
    'Rosa.Alvarez@example.com',
    'rosa.alvarez@EXAMPLE.com ',
    'rosa@work.example.org',
    'not-an-email',
  ],
  'cust-solo': ['mei.tanaka@example.com'],
  'cust-none': ['still-not-an-email'],
  'cust-stale': ['lars@example.net'],
  'cust-gladly': ['priya@example.com'],
  'cust-refused': ['refused.person@example.com'],
  'cust-inflight': ['ben.okafor@example.com'],
  'cust-keyed': ['tom.becker@example.com'],
};
const TEST_EMAILS = Object.values(CUSTOMERS)
  .flat()
  .filter((e) => e.includes('@'))
  .map((e) => e.trim().toLowerCase());

let redis: RedisServer;
let gladly: GladlyStandIn;
let klaviyo: KlaviyoStandIn;
let ingest: ServiceProcess;
let ingestUrl: string;
let worker: WorkerProcess;
let worker2: WorkerProcess | undefined;
const outputs: (() => string)[] = [];
const sentWebhooks: { id?: string; status: number }[] = [];

function workerEnv(): Record<string, string> {
  return {
    REDIS_URL: redis.url,
    QUEUE_PREFIX: PREFIX,
    GLADLY_API_URL: gladly.url,
    GLADLY_API_USER: GLADLY_USER,
    GLADLY_API_TOKEN: GLADLY_TOKEN,
    KLAVIYO_API_URL: klaviyo.url,
    KLAVIYO_API_KEY: KLAVIYO_KEY,
    LOG_EMAIL_HASH_KEY: HASH_KEY,
    LOG_LEVEL: 'debug',
    // Exact lookup counts per outcome below: every transition looks its customer up (cache off;
    // the cache has its own tests in customer-cache.int.test.ts).
    GLADLY_CUSTOMER_CACHE_TTL_SECONDS: '0',
  };
}

beforeAll(async () => {
  redis = await startRedisServer();
  gladly = await startGladlyStandIn({ user: GLADLY_USER, token: GLADLY_TOKEN });
  klaviyo = await startKlaviyoStandIn({ apiKey: KLAVIYO_KEY });
  for (const [id, emails] of Object.entries(CUSTOMERS)) gladly.setCustomer(id, emails);
  const port = await freePort();
  ingestUrl = `http://127.0.0.1:${port}`;
  ingest = await startServiceProcess({
    script: INGEST_MAIN,
    env: {
      REDIS_URL: redis.url,
      QUEUE_PREFIX: PREFIX,
      PORT: String(port),
      HOST: '127.0.0.1',
      WEBHOOK_BASIC_AUTH: `${HOOK_USER}:${HOOK_PASSWORD}`,
      ADMIN_USERNAME: 'ops',
      ADMIN_PASSWORD,
      LOG_LEVEL: 'debug',
    },
    readyUrl: `${ingestUrl}/readyz`,
  });
  outputs.push(ingest.output);
  worker = await startWorkerProcess(workerEnv());
  outputs.push(worker.output);
});

afterAll(async () => {
  await worker2?.kill();
  await worker?.kill();
  await ingest?.kill();
  await Promise.all([gladly?.close(), klaviyo?.close()]);
  await redis?.stop();
});

// ---------------------------------------------------------------------------------------------
// Helpers

interface Sample {
  name: string;
  labels: Record<string, string>;
  value: number;
}

function parseMetrics(text: string): Sample[] {
  const samples: Sample[] = [];
  for (const line of text.split('\n')) {
    const m = /^([a-zA-Z_:][a-zA-Z0-9_:]*)(?:\{(.*)\})? (\S+)$/.exec(line);
    if (!m?.[1] || !m[3]) continue;
    const labels: Record<string, string> = {};
    for (const l of (m[2] ?? '').matchAll(/([a-zA-Z_][a-zA-Z0-9_]*)="((?:[^"\\]|\\.)*)"/g)) {
      if (l[1]) labels[l[1]] = l[2] ?? '';
    }
    samples.push({ name: m[1], labels, value: Number(m[3]) });
  }
  return samples;
}

async function scrape(url: string): Promise<Sample[]> {
  const res = await fetch(`${url}/metrics`);
  expect(res.status).toBe(200);
  expect(res.headers.get('content-type')).toMatch(/^text\/plain/);
  return parseMetrics(await res.text());
}

/** Sum of the samples of `name` whose labels include `labels`. */
function value(samples: Sample[], name: string, labels: Record<string, string> = {}): number {
  return samples
    .filter((s) => s.name === name && Object.entries(labels).every(([k, v]) => s.labels[k] === v))
    .reduce((sum, s) => sum + s.value, 0);
}

const workerUrl = (w: WorkerProcess) => `http://127.0.0.1:${w.port}`;

async function post(body: unknown, opts: { password?: string; contentType?: string; raw?: string } = {}) {
  const res = await fetch(`${ingestUrl}/webhooks/gladly`, {
    method: 'POST',
    headers: {
      'content-type': opts.contentType ?? 'application/json',
      authorization: `Basic ${Buffer.from(`${HOOK_USER}:${opts.password ?? HOOK_PASSWORD}`).toString('base64')}`,
    },
    body: opts.raw ?? JSON.stringify(body),
  });
  const id = (body as { id?: string } | null)?.id;
  sentWebhooks.push({ ...(id ? { id } : {}), status: res.status });
  return res.status;
}

function event(id: string, type: string, customerId: string, at: Date = new Date()) {
  return {
    id,
    type,
    timestamp: at.toISOString(),
    initiator: { id: 'agent-1', type: 'AGENT' },
    content: { customerId, conversationId: `conv-${customerId}` },
  };
}

const eventsFor = (id: string) => klaviyo.events.filter((e) => e.uniqueId === id);

async function delivered(id: string, count = 1) {
  await waitFor(() => eventsFor(id).length >= count, { timeoutMs: 20_000, what: `${id} in Klaviyo` });
}

async function readyz(url: string): Promise<{ status: number; body: ReadyBody }> {
  const res = await fetch(`${url}/readyz`).catch(() => null);
  if (!res) return { status: 0, body: { status: 'no answer' } };
  return { status: res.status, body: (await res.json()) as ReadyBody };
}

interface ReadyBody {
  status: string;
  reasons?: string[];
  warnings?: string[];
  spool?: { depth: number; maxEntries: number };
}

function runCli(args: string[]): Promise<{ code: number; stdout: string }> {
  return new Promise((resolve) => {
    execFile(
      process.execPath,
      [CLI, ...args],
      { env: { PATH: process.env.PATH ?? '', REDIS_URL: redis.url, QUEUE_PREFIX: PREFIX } },
      (err, stdout, stderr) => {
        outputs.push(() => `${stdout}${stderr}`);
        resolve({ code: err ? Number(err.code ?? 1) : 0, stdout });
      },
    );
  });
}

function logLines(output: string): Record<string, unknown>[] {
  return output
    .split('\n')
    .filter((l) => l.startsWith('{'))
    .map((l) => JSON.parse(l) as Record<string, unknown>);
}

let ingestMetrics: Sample[] = [];
let workerMetrics: Sample[] = [];

// ---------------------------------------------------------------------------------------------

describe('operations: metrics, logs, readiness and failed-job tooling on the built services', () => {
  it('runs a demo-like stream touching every outcome, and the CLI retries the permanent failure', async () => {
    const now = Date.now();
    expect(await post({ id: 'ping-ops-1', type: 'PING', timestamp: new Date().toISOString() })).toBe(200);
    const multi = event('evt-ops-multi', 'CONVERSATION/CREATED', 'cust-multi');
    expect(await post(multi)).toBe(200);
    expect(await post(multi)).toBe(200); // Gladly's redelivery: a duplicate
    expect(await post(event('evt-ops-status', 'CONVERSATION_STATUS/UPDATED', 'cust-solo'))).toBe(200);
    expect(
      await post(event('evt-ops-401', 'CONVERSATION/CREATED', 'cust-solo'), { password: WRONG_PASSWORD }),
    ).toBe(401);
    expect(await post(null, { raw: 'hello', contentType: 'text/plain' })).toBe(415);
    expect(await post(null, { raw: '{' })).toBe(400);
    expect(await post(null, { raw: JSON.stringify({ pad: 'x'.repeat(70 * 1024) }) })).toBe(413);
    const noCustomer = event('evt-ops-invalid', 'CONVERSATION/CREATED', 'cust-solo') as Record<
      string,
      unknown
    >;
    noCustomer.content = { conversationId: 'c1' };
    expect(await post(noCustomer)).toBe(400);
    expect(await post(event('evt-ops-ghost', 'CONVERSATION/CREATED', 'cust-ghost'))).toBe(200);
    expect(await post(event('evt-ops-none', 'CONVERSATION/CREATED', 'cust-none'))).toBe(200);
    await delivered('evt-ops-multi', 2);

    // A transition older than the one already applied to the email goes out as backfill.
    expect(
      await post(event('evt-ops-stale-closed', 'CONVERSATION/CLOSED', 'cust-stale', new Date(now - 1_000))),
    ).toBe(200);
    await delivered('evt-ops-stale-closed');
    expect(
      await post(
        event('evt-ops-stale-created', 'CONVERSATION/CREATED', 'cust-stale', new Date(now - 60_000)),
      ),
    ).toBe(200);
    await delivered('evt-ops-stale-created');
    expect(eventsFor('evt-ops-stale-created')[0]?.backfill).toBe(true);

    // Klaviyo 503 (retried with backoff), then Klaviyo 429 (queue paused for Retry-After).
    klaviyo.injectFaults({ status: 503 });
    expect(await post(event('evt-ops-503', 'CONVERSATION/CLOSED', 'cust-solo'))).toBe(200);
    await delivered('evt-ops-503');
    klaviyo.injectFaults({ status: 429, retryAfterSeconds: 1 });
    expect(await post(event('evt-ops-429', 'CONVERSATION/REOPENED', 'cust-solo'))).toBe(200);
    await delivered('evt-ops-429');

    // Gladly 429 then 503 on the lookup.
    gladly.injectFaults({ status: 429, retryAfterSeconds: 1 }, { status: 503 });
    expect(await post(event('evt-ops-gladly', 'CONVERSATION/CREATED', 'cust-gladly'))).toBe(200);
    await delivered('evt-ops-gladly');

    // A permanent failure: Klaviyo refuses with 400. The ingest's queue gauge shows it.
    klaviyo.injectFaults({ status: 400 });
    expect(await post(event('evt-ops-refused', 'CONVERSATION/CREATED', 'cust-refused'))).toBe(200);
    await waitFor(
      async () =>
        value(await scrape(ingestUrl), 'gk_queue_jobs', { queue: 'deliveries', state: 'failed' }) === 1,
      { what: 'the failed delivery on the ingest /metrics' },
    );
    // The worker counts it when BullMQ reports the job failed, a moment after Redis has it.
    await waitFor(
      async () =>
        value(await scrape(workerUrl(worker)), 'gk_jobs_failed_total', { queue: 'deliveries' }) === 1,
      { what: 'gk_jobs_failed_total on the worker' },
    );
    expect(
      value(await scrape(workerUrl(worker)), 'gk_deliveries_total', { outcome: 'failed_permanent' }),
    ).toBe(1);

    // The operator lists it (email masked) and retries it; it arrives.
    const list = await runCli(['failed', '--json']);
    expect(list.code).toBe(0);
    const failed = JSON.parse(list.stdout) as { jobs: { id: string; email?: string; reason: string }[] };
    expect(failed.jobs).toHaveLength(1);
    expect(failed.jobs[0]?.email).toBe('r***@example.com');
    expect(failed.jobs[0]?.reason).toMatch(/^klaviyo 400/);
    const retry = await runCli(['retry', '--reason', '^klaviyo 400']);
    expect(retry.code).toBe(0);
    expect(retry.stdout).toContain('retried 1 job(s)');
    await delivered('evt-ops-refused');
    await waitFor(
      async () =>
        value(await scrape(ingestUrl), 'gk_queue_jobs', { queue: 'deliveries', state: 'failed' }) === 0,
      { what: 'the failed set to empty' },
    );
    // Done when nothing is waiting: scrape both services for the checks below.
    await waitFor(
      async () => {
        const s = await scrape(ingestUrl);
        return ['waiting', 'active', 'delayed'].every((state) => value(s, 'gk_queue_jobs', { state }) === 0);
      },
      { what: 'queues to drain' },
    );
    ingestMetrics = await scrape(ingestUrl);
    workerMetrics = await scrape(workerUrl(worker));
  });

  it('/metrics of the ingest counts every webhook by type and outcome, and queue depth', () => {
    const hooks = (type: string, outcome: string) =>
      value(ingestMetrics, 'gk_webhooks_received_total', { type, outcome });
    expect(hooks('PING', 'pong')).toBe(1);
    expect(value(ingestMetrics, 'gk_webhooks_received_total', { outcome: 'accepted' })).toBe(9);
    expect(hooks('CONVERSATION/CREATED', 'accepted')).toBe(6);
    expect(hooks('CONVERSATION/CLOSED', 'accepted')).toBe(2);
    expect(hooks('CONVERSATION/REOPENED', 'accepted')).toBe(1);
    expect(hooks('CONVERSATION/CREATED', 'duplicate')).toBe(1);
    expect(hooks('CONVERSATION_STATUS/UPDATED', 'ignored')).toBe(1);
    expect(hooks('unknown', 'rejected_auth')).toBe(1);
    expect(hooks('unknown', 'rejected_media_type')).toBe(1);
    expect(hooks('unknown', 'rejected_too_large')).toBe(1);
    expect(hooks('unknown', 'rejected_invalid')).toBe(1);
    expect(hooks('CONVERSATION/CREATED', 'rejected_invalid')).toBe(1);
    expect(value(ingestMetrics, 'gk_webhooks_received_total')).toBe(sentWebhooks.length);
    expect(
      value(ingestMetrics, 'gk_ingest_request_duration_seconds_count', { route: '/webhooks/gladly' }),
    ).toBe(sentWebhooks.length);
    for (const queue of ['transitions', 'deliveries']) {
      for (const state of ['waiting', 'active', 'delayed', 'prioritized', 'failed']) {
        expect(
          ingestMetrics.some(
            (s) => s.name === 'gk_queue_jobs' && s.labels.queue === queue && s.labels.state === state,
          ),
        ).toBe(true);
      }
    }
    expect(value(ingestMetrics, 'gk_queue_jobs', { queue: 'transitions', state: 'completed' })).toBe(9);
    expect(value(ingestMetrics, 'gk_queue_jobs', { queue: 'deliveries', state: 'completed' })).toBe(8);
    expect(value(ingestMetrics, 'gk_process_cpu_seconds_total', { service: 'ingest' })).toBeGreaterThan(0);
  });

  it('/metrics of the worker counts transitions, deliveries, skips, 429s, upstream calls and lag', () => {
    const m = workerMetrics;
    const transitions = (outcome: string) => value(m, 'gk_transitions_total', { outcome });
    const deliveries = (outcome: string) => value(m, 'gk_deliveries_total', { outcome });
    expect(transitions('fanned_out')).toBe(7);
    expect(transitions('customer_not_found')).toBe(1);
    expect(transitions('no_email')).toBe(1);
    expect(transitions('throttled')).toBe(1);
    expect(transitions('retried')).toBe(1);
    expect(transitions('credentials_rejected')).toBe(0);
    expect(deliveries('delivered')).toBe(7);
    expect(deliveries('delivered_backfill')).toBe(1);
    expect(deliveries('failed_permanent')).toBe(1);
    expect(deliveries('retried')).toBe(1);
    expect(deliveries('throttled')).toBe(1);
    expect(value(m, 'gk_invalid_emails_skipped_total')).toBe(2);
    expect(value(m, 'gk_upstream_throttled_total', { upstream: 'klaviyo' })).toBe(1);
    expect(value(m, 'gk_upstream_throttled_total', { upstream: 'gladly' })).toBe(1);
    expect(value(m, 'gk_jobs_failed_total', { queue: 'deliveries' })).toBe(1);
    expect(value(m, 'gk_jobs_failed_total', { queue: 'transitions' })).toBe(0);
    const calls = (upstream: string, status_class: string) =>
      value(m, 'gk_upstream_request_duration_seconds_count', { upstream, status_class });
    // 202s: 7 delivered + 1 backfill; 4xx: the 400 and the 429; 5xx: the 503.
    expect(calls('klaviyo', '2xx')).toBe(8);
    expect(calls('klaviyo', '4xx')).toBe(2);
    expect(calls('klaviyo', '5xx')).toBe(1);
    // Lookups: 8 found (one with no valid email); 4xx: the unknown customer and the 429; 5xx: the 503.
    expect(calls('gladly', '2xx')).toBe(8);
    expect(calls('gladly', '4xx')).toBe(2);
    expect(calls('gladly', '5xx')).toBe(1);
    expect(value(m, 'gk_delivery_lag_seconds_count')).toBe(8);
    expect(value(m, 'gk_delivery_lag_seconds_sum')).toBeGreaterThan(0);
    expect(value(m, 'gk_upstream_credentials_rejected', { upstream: 'klaviyo' })).toBe(0);
    expect(value(m, 'gk_upstream_credentials_rejected', { upstream: 'gladly' })).toBe(0);
    expect(m.filter((s) => s.name === 'gk_upstream_credentials_rejected')).toHaveLength(2);
  });

  it('every metric and exact label value that deploy/ uses is in the scrapes', () => {
    const seen = [...ingestMetrics, ...workerMetrics];
    const names = new Set(seen.map((s) => s.name));
    const missing: string[] = [];
    let checked = 0;
    for (const file of deployFiles()) {
      const isRuleTest = file.includes('/tests/');
      for (const ref of metricReferences(readFileSync(file, 'utf8'))) {
        checked += 1;
        if (!names.has(ref.name)) {
          missing.push(`${file}: ${ref.name}`);
          continue;
        }
        // Test input series describe made-up situations; the rules and the dashboard must match real series.
        if (isRuleTest) continue;
        for (const { label, op, value: v } of ref.matchers) {
          if (op !== '=' || ['job', 'instance'].includes(label)) continue;
          if (!seen.some((s) => s.name === ref.name && s.labels[label] === v)) {
            missing.push(`${file}: ${ref.name}{${label}="${v}"}`);
          }
        }
      }
    }
    expect(missing).toEqual([]);
    expect(checked).toBeGreaterThan(30);
  });

  it('logs one line per webhook and per delivery attempt, tied by event and job ids', async () => {
    // The services log asynchronously: let the last lines reach stdout first.
    const isWebhookLine = (l: Record<string, unknown>) =>
      (l.req as { url?: string } | undefined)?.url === '/webhooks/gladly';
    await waitFor(() => logLines(ingest.output()).filter(isWebhookLine).length >= sentWebhooks.length, {
      what: 'a log line for every webhook',
    });
    await waitFor(
      () =>
        logLines(worker.output()).some(
          (l) => l.eventId === 'evt-ops-refused' && l.msg === 'delivered to klaviyo',
        ),
      { what: 'the last delivery line' },
    );
    const webhookLines = logLines(ingest.output()).filter(isWebhookLine);
    expect(webhookLines).toHaveLength(sentWebhooks.length);
    for (const sent of sentWebhooks.filter((s) => s.id && s.status === 200)) {
      const line = webhookLines.find(
        (l) => (l.webhook as { eventId?: string } | undefined)?.eventId === sent.id,
      );
      expect(line, `webhook line for ${sent.id}`).toBeDefined();
    }
    const accepted = webhookLines.find(
      (l) => (l.webhook as { eventId?: string; outcome?: string }).eventId === 'evt-ops-multi',
    );
    expect(accepted).toMatchObject({
      msg: 'webhook accepted',
      webhook: { type: 'CONVERSATION/CREATED', outcome: 'accepted', jobId: 't-evt-ops-multi' },
      res: { statusCode: 200 },
    });
    expect(
      webhookLines.find((l) => (l.webhook as { outcome?: string }).outcome === 'rejected_auth'),
    ).toMatchObject({
      msg: 'webhook rejected_auth',
      res: { statusCode: 401 },
    });

    const workerLines = logLines(worker.output());
    const fanOut = workerLines.find(
      (l) => l.msg === 'transition fanned out' && l.eventId === 'evt-ops-multi',
    );
    expect(fanOut).toMatchObject({ jobId: 't-evt-ops-multi', queue: 'transitions' });
    const deliveryIds = fanOut?.deliveries as string[];
    expect(deliveryIds).toHaveLength(2);
    for (const jobId of deliveryIds) {
      const lines = workerLines.filter((l) => l.jobId === jobId && l.queue === 'deliveries');
      expect(lines).toHaveLength(1);
      expect(lines[0]).toMatchObject({
        msg: 'delivered to klaviyo',
        eventId: 'evt-ops-multi',
        transitionJobId: 't-evt-ops-multi',
        attempt: 1,
        status: 202,
      });
      expect(lines[0]?.emailHash).toMatch(/^[0-9a-f]{8,}$/);
    }
    // The 503 then the success: one line per attempt, same job, attempts 1 and 2.
    const retried = workerLines.filter((l) => l.eventId === 'evt-ops-503' && l.queue === 'deliveries');
    expect(retried.map((l) => [l.attempt, l.msg])).toEqual([
      [1, 'klaviyo delivery failed; will retry with backoff'],
      [2, 'delivered to klaviyo'],
    ]);
    expect(new Set(retried.map((l) => l.jobId)).size).toBe(1);
    const refused = workerLines.filter((l) => l.eventId === 'evt-ops-refused' && l.queue === 'deliveries');
    expect(refused.map((l) => l.msg)).toEqual([
      'klaviyo refused the event permanently',
      'job failed; it stays in the failed set until retried (npm run jobs -- retry)',
      'delivered to klaviyo',
    ]);
  });

  it('/readyz names an unreachable Redis on both services, and recovers', async () => {
    await redis.kill();
    const url = workerUrl(worker);
    await waitFor(async () => (await readyz(url)).status === 503, { what: `${url} not ready` });
    const { body } = await readyz(url);
    expect(body.status).toBe('not ready');
    expect(body.reasons?.join(' ')).toMatch(/redis/i);
    // The ingest keeps taking webhooks into its spool: ready, with a warning naming Redis.
    await waitFor(async () => ((await readyz(ingestUrl)).body.warnings ?? []).join(' ').match(/redis/i), {
      what: 'the ingest to warn about Redis',
    });
    const ingestReady = await readyz(ingestUrl);
    expect(ingestReady.status).toBe(200);
    expect(ingestReady.body.spool?.depth).toBe(0);
    await redis.restart();
    for (const url of [ingestUrl, workerUrl(worker)]) {
      await waitFor(async () => (await readyz(url)).status === 200, {
        timeoutMs: 20_000,
        what: `${url} ready`,
      });
    }
  });

  it('/readyz says "shutting down" while the worker finishes a delivery in flight, which arrives', async () => {
    klaviyo.injectFaults({ delayMs: 2_500 });
    const posts = klaviyo.posts;
    expect(await post(event('evt-ops-inflight', 'CONVERSATION/CREATED', 'cust-inflight'))).toBe(200);
    await waitFor(() => klaviyo.posts > posts, { what: 'the delivery to start' });
    await sleep(300);
    worker.child.kill('SIGTERM');
    let seen: { status: number; body: { reasons?: string[] } } | undefined;
    await waitFor(
      async () => {
        seen = await readyz(workerUrl(worker));
        return seen.status === 503;
      },
      { intervalMs: 25, what: 'the worker to report shutting down' },
    );
    expect(seen?.body.reasons).toContain('shutting down');
    expect(await worker.exited).toBe(0);
    expect(eventsFor('evt-ops-inflight')).toHaveLength(1);
  });

  it('/readyz and gk_upstream_credentials_rejected name a rejected Klaviyo key and Gladly credentials', async () => {
    worker2 = await startWorkerProcess(workerEnv());
    outputs.push(worker2.output);
    const url = workerUrl(worker2);
    klaviyo.setApiKey('pk_rotated_somewhere_else');
    expect(await post(event('evt-ops-keyed', 'CONVERSATION/CREATED', 'cust-keyed'))).toBe(200);
    await waitFor(
      async () => value(await scrape(url), 'gk_upstream_credentials_rejected', { upstream: 'klaviyo' }) === 1,
      {
        what: 'klaviyo credentials rejected',
      },
    );
    gladly.setCredentials(GLADLY_USER, 'a-token-gladly-revoked');
    expect(await post(event('evt-ops-gladly-key', 'CONVERSATION/CREATED', 'cust-solo'))).toBe(200);
    await waitFor(
      async () => value(await scrape(url), 'gk_upstream_credentials_rejected', { upstream: 'gladly' }) === 1,
      {
        what: 'gladly credentials rejected',
      },
    );
    const { status, body } = await readyz(url);
    expect(status).toBe(503);
    expect(body.reasons?.some((r) => /^klaviyo credentials rejected/.test(r))).toBe(true);
    expect(body.reasons?.some((r) => /^gladly credentials rejected/.test(r))).toBe(true);
    const m = await scrape(url);
    expect(value(m, 'gk_deliveries_total', { outcome: 'credentials_rejected' })).toBeGreaterThanOrEqual(1);
    expect(value(m, 'gk_transitions_total', { outcome: 'credentials_rejected' })).toBeGreaterThanOrEqual(1);
    expect(await worker2.stop()).toBe(0);
  });

  it('no output line of either service (or the CLI) holds a test email address or secret', () => {
    const all = outputs.map((o) => o()).join('\n');
    expect(all.length).toBeGreaterThan(10_000);
    const lower = all.toLowerCase();
    for (const email of [...TEST_EMAILS, GLADLY_USER.toLowerCase()]) expect(lower).not.toContain(email);
    for (const secret of [
      HOOK_PASSWORD,
      WRONG_PASSWORD,
      ADMIN_PASSWORD,
      HASH_KEY,
      GLADLY_TOKEN,
      KLAVIYO_KEY,
    ]) {
      expect(all).not.toContain(secret);
    }
    expect(all).not.toContain(Buffer.from(`${HOOK_USER}:${WRONG_PASSWORD}`).toString('base64'));
    // The lines do name the emails, as keyed hashes and masks.
    expect(all).toMatch(/"emailHash":"[0-9a-f]+"/);
  });
});
