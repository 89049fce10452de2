/**
 * `npm run backfill` end to end: Gladly's Events API (stand-in) holds the last hours of
 * conversation events; some of them reached the built ingest by webhook, the rest were missed.
 * The built CLI (`node apps/ingest/dist/cli/backfill.js`) stores only the missed ones, with the
 * webhook's job ids, and the built worker delivers them to Klaviyo (stand-in): every event once,
 * none twice. `--dry-run` counts the same and stores nothing.
 */
import { execFile } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';
import {
  type BridgeQueues,
  closeQueues,
  createQueues,
  createWorkerConnection,
  type RedisConnection,
} from '@gk/queue';
import {
  type GladlyEventRecord,
  type GladlyStandIn,
  type KlaviyoStandIn,
  startGladlyStandIn,
  startKlaviyoStandIn,
} from '@gk/stand-ins';
import {
  captureLogOutput,
  freePort,
  registerTestSecrets,
  type ServiceProcess,
  startServiceProcess,
  type TestRedis,
  uniquePrefix,
  useTestRedis,
  waitFor,
} from '@gk/testing';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';

const run = promisify(execFile);
const CLI = fileURLToPath(new URL('../dist/cli/backfill.js', import.meta.url));
const INGEST_MAIN = fileURLToPath(new URL('../dist/main.js', import.meta.url));
const WORKER_MAIN = fileURLToPath(new URL('../../worker/dist/main.js', import.meta.url));
const GLADLY_USER = 'backfill-api@acme.test';
const GLADLY_TOKEN = 'gladly-backfill-token-6b1f';
const KLAVIYO_KEY = 'pk_backfill_key_90ad';
const HOOK_PASSWORD = 'backfill-hook-pw-2e8c';
registerTestSecrets(GLADLY_TOKEN, KLAVIYO_KEY, HOOK_PASSWORD);

const CUSTOMERS: Record<string, string[]> = {
  'bf-rosa': ['rosa.backfill@example.com', 'rosa.work@example.org'],
  'bf-mei': ['mei.backfill@example.com'],
  'bf-lars': ['lars.backfill@example.net'],
};
const minutesAgo = (m: number) => new Date(Date.now() - m * 60_000).toISOString();
const conversationEvent = (id: string, type: string, customerId: string, at: string): GladlyEventRecord => ({
  id,
  type,
  timestamp: at,
  initiator: { id: 'agent-1', type: 'AGENT' },
  content: { customerId, conversationId: `conv-${customerId}` },
});

// The last 2 hours in Gladly. Webhooks reached the bridge for the first three transitions only.
const RECEIVED = [
  conversationEvent('bf-1', 'CONVERSATION/CREATED', 'bf-rosa', minutesAgo(100)),
  conversationEvent('bf-2', 'CONVERSATION/CREATED', 'bf-mei', minutesAgo(90)),
  conversationEvent('bf-3', 'CONVERSATION/CLOSED', 'bf-rosa', minutesAgo(80)),
];
const MISSED = [
  conversationEvent('bf-4', 'CONVERSATION/CLOSED', 'bf-mei', minutesAgo(50)),
  conversationEvent('bf-5', 'CONVERSATION/CREATED', 'bf-lars', minutesAgo(40)),
  conversationEvent('bf-6', 'CONVERSATION/REOPENED', 'bf-rosa', minutesAgo(20)),
];
const OTHERS = [
  conversationEvent('bf-note-1', 'CONVERSATION/NOTE_CREATED', 'bf-rosa', minutesAgo(95)),
  conversationEvent('bf-note-2', 'CONVERSATION/NOTE_CREATED', 'bf-mei', minutesAgo(45)),
  conversationEvent('bf-topic', 'CONVERSATION/TOPIC_ADDED', 'bf-lars', minutesAgo(35)),
  // A transition Gladly recorded without its customer: counted invalid, never stored.
  {
    id: 'bf-broken',
    type: 'CONVERSATION/CLOSED',
    timestamp: minutesAgo(30),
    content: { conversationId: 'c' },
  },
  // Outside the window asked for, and another entity: not in the answer.
  conversationEvent('bf-old', 'CONVERSATION/CREATED', 'bf-mei', minutesAgo(300)),
  { id: 'bf-agent', type: 'AGENT_STATUS/LOGGED_IN', timestamp: minutesAgo(60), content: { agentId: 'a' } },
];
const deliveriesOf = (events: GladlyEventRecord[]) =>
  events.reduce((n, e) => n + (CUSTOMERS[(e.content as { customerId: string }).customerId]?.length ?? 0), 0);

let redis: TestRedis;
let gladly: GladlyStandIn;
let klaviyo: KlaviyoStandIn;
let ingest: ServiceProcess;
let worker: ServiceProcess;
let observer: RedisConnection;
let queues: BridgeQueues;
const prefix = uniquePrefix('backfill');

function cliEnv(overrides: Record<string, string> = {}): Record<string, string> {
  return {
    PATH: process.env.PATH ?? '',
    ...redis.env,
    QUEUE_PREFIX: prefix,
    GLADLY_API_URL: gladly.url,
    GLADLY_API_USER: GLADLY_USER,
    GLADLY_API_TOKEN: GLADLY_TOKEN,
    ...overrides,
  };
}

async function backfill(args: string[], env = cliEnv()) {
  const result = await run(process.execPath, [CLI, ...args], { env }).then(
    ({ stdout, stderr }) => ({ code: 0, stdout, stderr }),
    (err: { code: number; stdout: string; stderr: string }) => ({
      code: err.code,
      stdout: err.stdout,
      stderr: err.stderr,
    }),
  );
  captureLogOutput('gk-backfill', `${result.stdout}${result.stderr}`);
  return result;
}

const transitionCount = async () => {
  const counts = await queues.transitions.getJobCounts('waiting', 'active', 'delayed', 'completed', 'failed');
  return Object.values(counts).reduce((a, b) => a + b, 0);
};

beforeAll(async () => {
  redis = await useTestRedis();
  gladly = await startGladlyStandIn({
    user: GLADLY_USER,
    token: GLADLY_TOKEN,
    customers: CUSTOMERS,
    events: [...RECEIVED, ...MISSED, ...OTHERS] as GladlyEventRecord[],
  });
  klaviyo = await startKlaviyoStandIn({ apiKey: KLAVIYO_KEY });
  observer = createWorkerConnection(redis.target, 'backfill-observer');
  queues = createQueues(observer, prefix);

  const ingestPort = await freePort();
  ingest = await startServiceProcess({
    script: INGEST_MAIN,
    env: {
      ...redis.env,
      QUEUE_PREFIX: prefix,
      PORT: String(ingestPort),
      HOST: '127.0.0.1',
      WEBHOOK_BASIC_AUTH: `gladly:${HOOK_PASSWORD}`,
    },
    readyUrl: `http://127.0.0.1:${ingestPort}/readyz`,
  });
  const workerPort = await freePort();
  worker = await startServiceProcess({
    script: WORKER_MAIN,
    env: {
      ...redis.env,
      QUEUE_PREFIX: prefix,
      WORKER_PORT: String(workerPort),
      HOST: '127.0.0.1',
      GLADLY_API_URL: gladly.url,
      GLADLY_API_USER: GLADLY_USER,
      GLADLY_API_TOKEN: GLADLY_TOKEN,
      KLAVIYO_API_URL: klaviyo.url,
      KLAVIYO_API_KEY: KLAVIYO_KEY,
    },
    readyUrl: `http://127.0.0.1:${workerPort}/readyz`,
  });

  // What Gladly's webhook delivered before it went down.
  for (const event of RECEIVED) {
    const res = await fetch(`http://127.0.0.1:${ingestPort}/webhooks/gladly`, {
      method: 'POST',
      headers: {
        'content-type': 'application/json',
        authorization: `Basic ${Buffer.from(`gladly:${HOOK_PASSWORD}`).toString('base64')}`,
      },
      body: JSON.stringify(event),
    });
    expect(res.status).toBe(200);
  }
  await waitFor(() => klaviyo.events.length === deliveriesOf(RECEIVED), {
    timeoutMs: 15_000,
    what: 'the webhooks’ deliveries',
  });
});

afterAll(async () => {
  await worker?.stop();
  await ingest?.stop();
  if (queues) await closeQueues(queues);
  observer?.disconnect();
  await Promise.all([gladly?.close(), klaviyo?.close()]);
  await redis?.stop();
});

describe('npm run backfill (built CLI) against the Events API stand-in', () => {
  it('--dry-run counts what is missing and what is already there, and stores nothing', async () => {
    const before = await transitionCount();
    const { code, stdout, stderr } = await backfill(['--since', '2h', '--dry-run', '--json']);
    expect(code, stderr).toBe(0);
    const summary = JSON.parse(stdout);
    expect(summary).toMatchObject({
      dryRun: true,
      read: 10,
      transitions: 6,
      enqueued: 0,
      missing: 3,
      alreadyPresent: 3,
      skippedByType: { 'CONVERSATION/NOTE_CREATED': 2, 'CONVERSATION/TOPIC_ADDED': 1 },
      invalid: 1,
      invalidLines: [{ line: 9, reason: expect.stringMatching(/^content\.customerId/) }],
    });
    expect(stderr).toContain('dry run: nothing will be stored');
    expect(await transitionCount()).toBe(before);
    expect(gladly.eventRequests.at(-1)).toMatchObject({ status: 200, entities: ['CONVERSATION'] });
  });

  it('stores only the missed transitions, and the worker delivers each of them once', async () => {
    const { code, stdout, stderr } = await backfill(['--since', '2h']);
    expect(code, stderr).toBe(0);
    expect(stdout).toContain('Read 10 events from Gladly: 6 conversation transitions.');
    expect(stdout).toMatch(/enqueued: +3\n/);
    expect(stdout).toMatch(/already present: +3 /);
    expect(stdout).toContain('CONVERSATION/NOTE_CREATED: 2');
    expect(stdout).toMatch(/invalid lines: +1\n +line 9: content\.customerId/);

    const expected = deliveriesOf([...RECEIVED, ...MISSED]);
    await waitFor(() => klaviyo.events.length === expected, { timeoutMs: 15_000, what: 'every delivery' });
    for (const event of MISSED) {
      const customerId = (event.content as { customerId: string }).customerId;
      for (const email of CUSTOMERS[customerId] ?? []) {
        expect(klaviyo.events.filter((e) => e.uniqueId === event.id && e.email === email)).toHaveLength(1);
      }
    }
    // Nothing was sent twice: one POST per (event, email), the webhooks' ones included.
    expect(klaviyo.posts).toBe(expected);
    expect(klaviyo.duplicates).toBe(0);
    expect(klaviyo.profile('rosa.backfill@example.com')?.properties['In Gladly Conversation']).toBe(true);
  });

  it('a second run finds everything already present', async () => {
    const { code, stdout } = await backfill(['--since', '2h', '--json']);
    expect(code).toBe(0);
    expect(JSON.parse(stdout)).toMatchObject({ transitions: 6, enqueued: 0, missing: 0, alreadyPresent: 6 });
  });

  it('refuses more than 24 hours back (exit 2) and says why', async () => {
    const { code, stderr } = await backfill(['--since', '25h']);
    expect(code).toBe(2);
    expect(stderr).toContain("Gladly's Events API only keeps the last 24 hours");
    expect(stderr).toContain('Usage: npm run backfill');
  });

  it('wrong Gladly credentials: exit 1 naming Gladly, nothing stored, no token in the output', async () => {
    const before = await transitionCount();
    const { code, stdout, stderr } = await backfill(
      ['--since', '1h'],
      cliEnv({ GLADLY_API_TOKEN: 'wrong-token-77' }),
    );
    expect(code).toBe(1);
    expect(stderr).toMatch(/Gladly: events: Gladly rejected the API credentials \(401\)/);
    expect(`${stdout}${stderr}`).not.toContain('wrong-token-77');
    expect(await transitionCount()).toBe(before);
  });

  it('a missing setting: exit 1 naming the variable', async () => {
    const { code, stderr } = await backfill(['--since', '1h'], cliEnv({ GLADLY_API_URL: '' }));
    expect(code).toBe(1);
    expect(stderr).toContain('GLADLY_API_URL');
  });
});
