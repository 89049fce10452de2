/**
 * `gk-doctor` as an operator runs it: the built bin against the Gladly and Klaviyo stand-ins and a
 * throwaway `redis-server` with AOF on (as the one `npm start` starts). Each ✗ is provoked by
 * switching one thing on the stand-ins or in Redis; the doctor itself must change nothing.
 */
import { execFile } from 'node:child_process';
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { createServer } from 'node:http';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { createProducerConnection, createQueues, createWorkerConnection, QueueName } from '@gk/queue';
import {
  type GladlyStandIn,
  type KlaviyoStandIn,
  startGladlyStandIn,
  startKlaviyoStandIn,
} from '@gk/stand-ins';
import {
  captureLogOutput,
  freePort,
  type RedisServer,
  registerTestSecrets,
  secretsFromEnv,
  startRedisServer,
  uniquePrefix,
} from '@gk/testing';
import { Queue, UnrecoverableError, Worker } from 'bullmq';
import { Redis } from 'ioredis';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import type { CheckResult } from '../src/cli/doctor-checks.js';

const CLI = fileURLToPath(new URL('../dist/cli/doctor.js', import.meta.url));
const KEY = 'pk_doctor_test_key_123';
const GLADLY_USER = 'doctor-api-user@example.com';
const GLADLY_TOKEN = 'doctor-gladly-token-456';

let redis: RedisServer;
let admin: Redis;
let gladly: GladlyStandIn;
let klaviyo: KlaviyoStandIn;
let dir: string;

interface DoctorRun {
  code: number;
  checks: CheckResult[];
  stdout: string;
}

function baseEnv(): Record<string, string> & { QUEUE_PREFIX: string } {
  return {
    REDIS_URL: redis.url,
    QUEUE_PREFIX: uniquePrefix('doctor'),
    GLADLY_API_URL: gladly.url,
    GLADLY_API_USER: GLADLY_USER,
    GLADLY_API_TOKEN: GLADLY_TOKEN,
    KLAVIYO_API_URL: klaviyo.url,
    KLAVIYO_API_KEY: KEY,
    WEBHOOK_BASIC_AUTH: 'gladly:doctor-webhook-secret',
    INGEST_SPOOL_PATH: join(dir, 'spool', 'ingest.spool'),
  };
}

function doctor(env: Record<string, string>, args: string[] = ['--json']): Promise<DoctorRun> {
  registerTestSecrets(...secretsFromEnv(env));
  return new Promise((resolve) => {
    execFile(
      process.execPath,
      [CLI, ...args],
      { env: { PATH: process.env.PATH ?? '', ...env } },
      (err, stdout, stderr) => {
        captureLogOutput(`doctor.js ${args.join(' ')}`, `${stdout}${stderr}`);
        const code = err ? (typeof err.code === 'number' ? err.code : 1) : 0;
        const checks = args.includes('--json')
          ? (JSON.parse(stdout) as { checks: CheckResult[] }).checks
          : [];
        resolve({ code, checks, stdout });
      },
    );
  });
}

const byName = (run: DoctorRun, name: string) => {
  const found = run.checks.find((c) => c.name === name);
  if (!found) throw new Error(`no check named ${name} in ${JSON.stringify(run.checks.map((c) => c.name))}`);
  return found;
};
const failedNames = (run: DoctorRun) => run.checks.filter((c) => c.status === 'fail').map((c) => c.name);

beforeAll(async () => {
  dir = mkdtempSync(join(tmpdir(), 'gk-doctor-'));
  mkdirSync(join(dir, 'spool'));
  redis = await startRedisServer();
  admin = new Redis(redis.url);
  gladly = await startGladlyStandIn({ user: GLADLY_USER, token: GLADLY_TOKEN });
  gladly.setRateLimit(10);
  klaviyo = await startKlaviyoStandIn({ apiKey: KEY });
});

afterEach(async () => {
  klaviyo.setScopes(null);
  klaviyo.setRevisionMin(null);
  await admin.config('SET', 'appendonly', 'yes');
  await admin.config('SET', 'maxmemory-policy', 'noeviction');
  await admin.config('SET', 'maxmemory', '0');
  rmSync(join(dir, 'spool', 'ingest.spool'), { force: true });
});

afterAll(async () => {
  admin?.disconnect();
  await gladly?.close();
  await klaviyo?.close();
  await redis?.stop();
  rmSync(dir, { recursive: true, force: true });
});

describe('gk-doctor: the Gladly webhook', () => {
  it('✗ when none has GLADLY_WEBHOOK_URL or it is disabled, ! when it lacks customer events, ✓ when enabled with all', async () => {
    const receiver = createServer((req, res) => {
      req.resume();
      req.on('end', () => res.writeHead(200).end());
    });
    await new Promise<void>((resolve) => receiver.listen(0, '127.0.0.1', resolve));
    try {
      const url = `http://127.0.0.1:${(receiver.address() as AddressInfo).port}/webhooks/gladly`;
      const env = { ...baseEnv(), GLADLY_WEBHOOK_URL: url };
      const missing = byName(await doctor(env), 'gladly webhook');
      expect(missing).toMatchObject({ status: 'fail', fix: 'npm run gladly -- webhook register' });

      const hook = await gladly.webhooks.create({ name: 'bridge', url, events: ['CONVERSATION/CREATED'] });
      const lacking = byName(await doctor(env), 'gladly webhook');
      expect(lacking.status).toBe('fail');
      expect(lacking.summary).toContain('CONVERSATION/CLOSED');

      await gladly.webhooks.update(hook.id, {
        events: ['CONVERSATION/CREATED', 'CONVERSATION/CLOSED', 'CONVERSATION/REOPENED'],
      });
      expect(byName(await doctor(env), 'gladly webhook').status).toBe('warn');

      await gladly.webhooks.update(hook.id, {
        events: [
          'CONVERSATION/CREATED',
          'CONVERSATION/CLOSED',
          'CONVERSATION/REOPENED',
          'CUSTOMER/MERGED',
          'CUSTOMER_PROFILE/UPDATED',
          'CUSTOMER_PROFILE/DELETED',
        ],
      });
      expect(byName(await doctor(env), 'gladly webhook')).toMatchObject({
        status: 'ok',
        summary: 'enabled, subscribed to every event the bridge reads',
      });

      await gladly.webhooks.update(hook.id, { enabled: false });
      expect(byName(await doctor(env), 'gladly webhook')).toMatchObject({
        status: 'fail',
        summary: 'disabled by hand',
      });
      gladly.webhooks.remove(hook.id);
    } finally {
      receiver.closeAllConnections();
      await new Promise((resolve) => receiver.close(resolve));
    }
  });
});

describe('gk-doctor on a healthy set-up', () => {
  it('exits 0: every check ✓ but the webhook, the segment not yet created and metrics before any event', async () => {
    const env = baseEnv();
    const keysBefore = await admin.dbsize();
    const postsBefore = klaviyo.posts;
    const run = await doctor(env);
    expect(failedNames(run)).toEqual([]);
    expect(run.code).toBe(0);
    expect(run.checks.filter((c) => c.status === 'warn').map((c) => c.name)).toEqual([
      'gladly webhook',
      'klaviyo segment',
      'klaviyo metrics',
    ]);
    expect(byName(run, 'gladly webhook').summary).toBe(
      "GLADLY_WEBHOOK_URL not set: webhook not checked, and the worker's watchdog is off",
    );
    expect(byName(run, 'redis persistence').status).toBe('ok');
    expect(byName(run, 'gladly rate limit').summary).toMatch(/^limit 10, \d+ remaining/);
    expect(byName(run, 'klaviyo scope segments:write').summary).toMatch(/^present/);
    // Changed nothing: no key in Redis, no event, no segment; one Create Event probe with a body Klaviyo refuses.
    expect(await admin.dbsize()).toBe(keysBefore);
    expect(klaviyo.events).toHaveLength(0);
    expect(klaviyo.posts - postsBefore).toBe(1);
    expect(klaviyo.segmentCreates).toBe(0);
  });

  it('prints one line per check with ✓ / ✗ / ! and the fix under each ✗', async () => {
    await admin.config('SET', 'appendonly', 'no');
    const run = await doctor(baseEnv(), []);
    expect(run.code).toBe(1);
    expect(run.stdout).toContain('✓ redis: reachable\n');
    expect(run.stdout).toMatch(
      /✗ redis persistence: AOF is off \(appendonly no\).*\n {4}fix: run Redis with --appendonly yes/,
    );
    expect(run.stdout).toContain(
      "! gladly webhook: GLADLY_WEBHOOK_URL not set: webhook not checked, and the worker's watchdog is off\n",
    );
    expect(run.stdout.trimEnd().split('\n').at(-1)).toBe('1 problem to fix, 3 to look at');
  });

  it('✓ for the segment and the metrics once they exist', async () => {
    const name = 'Doctor healthy segment';
    const created = await fetch(`${klaviyo.url}/api/segments`, {
      method: 'POST',
      headers: {
        authorization: `Klaviyo-API-Key ${KEY}`,
        revision: '2026-07-15',
        'content-type': 'application/vnd.api+json',
      },
      body: JSON.stringify({
        data: {
          type: 'segment',
          attributes: {
            name,
            definition: {
              condition_groups: [
                {
                  conditions: [
                    {
                      type: 'profile-property',
                      property: "properties['In Gladly Conversation']",
                      filter: { type: 'boolean', operator: 'equals', value: true },
                    },
                  ],
                },
              ],
            },
          },
        },
      }),
    });
    expect(created.status).toBe(201);
    await postEvent('started conversation in Gladly');
    const run = await doctor({ ...baseEnv(), KLAVIYO_SEGMENT_NAME: name });
    expect(run.code).toBe(0);
    expect(byName(run, 'klaviyo segment')).toMatchObject({ status: 'ok' });
    expect(byName(run, 'klaviyo metrics')).toMatchObject({
      status: 'ok',
      summary: 'visible: "started conversation in Gladly"',
    });
    expect(byName(run, 'klaviyo scope segments:write').summary).toMatch(/not needed any more/);
  });
});

async function postEvent(metric: string) {
  const answer = await fetch(`${klaviyo.url}/api/events`, {
    method: 'POST',
    headers: {
      authorization: `Klaviyo-API-Key ${KEY}`,
      revision: '2026-07-15',
      'content-type': 'application/vnd.api+json',
    },
    body: JSON.stringify({
      data: {
        type: 'event',
        attributes: {
          properties: {},
          time: '2026-11-20T14:00:00Z',
          unique_id: `doctor-${Math.random()}`,
          metric: { data: { type: 'metric', attributes: { name: metric } } },
          profile: { data: { type: 'profile', attributes: { email: 'metric.seed@example.com' } } },
        },
      },
    }),
  });
  expect(answer.status).toBe(202);
}

describe('each ✗ of gk-doctor, provoked', () => {
  it('configuration: a missing variable is named, its value never shown', async () => {
    const run = await doctor({ ...baseEnv(), KLAVIYO_API_KEY: '' });
    expect(run.code).toBe(1);
    expect(byName(run, 'configuration')).toMatchObject({ status: 'fail' });
    expect(byName(run, 'configuration').summary).toContain('KLAVIYO_API_KEY');
  });

  it('secrets: development credentials with NODE_ENV=production (the configuration refuses them too)', async () => {
    const run = await doctor({
      ...baseEnv(),
      NODE_ENV: 'production',
      WEBHOOK_BASIC_AUTH: 'gladly:dev-webhook-password',
    });
    expect(failedNames(run)).toEqual(['configuration', 'secrets']);
    expect(byName(run, 'secrets').summary).toBe(
      'development or placeholder credentials with NODE_ENV=production: WEBHOOK_BASIC_AUTH',
    );
    // Outside production, or on the sandbox route, the same values are fine.
    const local = await doctor({ ...baseEnv(), WEBHOOK_BASIC_AUTH: 'gladly:dev-webhook-password' });
    expect(local.code).toBe(0);
    expect(byName(local, 'secrets').summary).toContain('development defaults in use (WEBHOOK_BASIC_AUTH)');
    const sandbox = await doctor({
      ...baseEnv(),
      NODE_ENV: 'production',
      BRIDGE_SANDBOX: 'true',
      WEBHOOK_BASIC_AUTH: 'gladly:dev-webhook-password',
    });
    expect(sandbox.code).toBe(0);
  });

  it('secrets from <NAME>_FILE are read as the services read them', async () => {
    const file = join(dir, 'klaviyo-key');
    writeFileSync(file, `${KEY}\n`);
    const { KLAVIYO_API_KEY: _unused, ...env } = baseEnv();
    const run = await doctor({ ...env, KLAVIYO_API_KEY_FILE: file });
    expect(run.code).toBe(0);
    expect(byName(run, 'klaviyo key').status).toBe('ok');
  });

  it('redis: unreachable', async () => {
    const run = await doctor({ ...baseEnv(), REDIS_URL: `redis://127.0.0.1:${await freePort()}` });
    expect(failedNames(run)).toEqual(['redis']);
    expect(byName(run, 'redis persistence').status).toBe('warn');
  });

  it('redis: AOF off, as on the machines’ shared Redis', async () => {
    await admin.config('SET', 'appendonly', 'no');
    const run = await doctor(baseEnv());
    expect(failedNames(run)).toEqual(['redis persistence']);
    expect(byName(run, 'redis persistence').fix).toContain('appendonly yes');
  });

  it('redis: an eviction policy', async () => {
    await admin.config('SET', 'maxmemory-policy', 'allkeys-lru');
    const run = await doctor(baseEnv());
    expect(failedNames(run)).toEqual(['redis eviction']);
    expect(byName(run, 'redis eviction').summary).toContain('allkeys-lru');
  });

  it('redis: no memory headroom', async () => {
    const used = Number(/used_memory:(\d+)/.exec(await admin.info('memory'))?.[1]);
    await admin.config('SET', 'maxmemory', String(Math.ceil(used * 1.02)));
    const run = await doctor(baseEnv());
    expect(failedNames(run)).toEqual(['redis memory']);
  });

  it('deliveries queue paused', async () => {
    const env = baseEnv();
    const queue = new Queue(QueueName.deliveries, {
      connection: admin.duplicate(),
      prefix: env.QUEUE_PREFIX,
    });
    await queue.pause();
    try {
      const run = await doctor(env);
      expect(failedNames(run)).toEqual(['deliveries queue']);
    } finally {
      await queue.close();
    }
  });

  it('a delivery failed in the last hour for a reason other than a permanent 4xx; permanent 4xx alone is ✓', async () => {
    const env = baseEnv();
    const connection = createProducerConnection({ url: redis.url, clusterNodes: [] });
    const queues = createQueues(connection, env.QUEUE_PREFIX);
    const worker = new Worker(
      QueueName.deliveries,
      async (job) => {
        if (job.data.kind === 'permanent')
          throw new UnrecoverableError('klaviyo 400: Klaviyo 400 invalid: bad');
        throw new Error('klaviyo: Klaviyo 503 service_unavailable: down');
      },
      {
        connection: createWorkerConnection({ url: redis.url, clusterNodes: [] }),
        prefix: env.QUEUE_PREFIX,
      },
    );
    try {
      // biome-ignore lint/suspicious/noExplicitAny: a bare job for the failed set
      const deliveries = queues.deliveries as unknown as Queue<any>;
      await deliveries.add('d', { kind: 'permanent' }, { attempts: 1 });
      await waitForFailed(deliveries, 1);
      const permanentOnly = await doctor(env);
      expect(permanentOnly.code).toBe(0);
      expect(byName(permanentOnly, 'failed deliveries').summary).toContain('1 permanent 4xx');

      await deliveries.add('d', { kind: 'retryable' }, { attempts: 1 });
      await waitForFailed(deliveries, 2);
      const run = await doctor(env);
      expect(failedNames(run)).toEqual(['failed deliveries']);
      expect(byName(run, 'failed deliveries').summary).toContain('Klaviyo 503');
    } finally {
      await worker.close();
      await Promise.all(Object.values(queues).map((q) => q.close()));
      connection.disconnect();
    }
  });

  it('the local spool is not empty', async () => {
    writeFileSync(join(dir, 'spool', 'ingest.spool'), '00000000 {"s":1}\n');
    const run = await doctor(baseEnv());
    expect(failedNames(run)).toEqual(['ingest spool']);
    expect(byName(run, 'ingest spool').summary).toMatch(/^\d+ bytes waiting in /);
  });

  it('the spool as a directory: files in it count, lock files do not; a spool turned off is ✓', async () => {
    const spoolDir = join(dir, 'spool-dir');
    mkdirSync(spoolDir, { recursive: true });
    writeFileSync(join(spoolDir, 'ingest.lock'), '123');
    const empty = await doctor({ ...baseEnv(), INGEST_SPOOL_PATH: spoolDir });
    expect(byName(empty, 'ingest spool').status).toBe('ok');
    writeFileSync(join(spoolDir, 'segment-0001.log'), 'x'.repeat(10));
    const full = await doctor({ ...baseEnv(), INGEST_SPOOL_PATH: spoolDir });
    expect(failedNames(full)).toEqual(['ingest spool']);
    expect(byName(full, 'ingest spool').summary).toMatch(/^10 bytes waiting/);
    const off = await doctor({ ...baseEnv(), INGEST_SPOOL_ENABLED: 'false', INGEST_SPOOL_PATH: spoolDir });
    expect(byName(off, 'ingest spool')).toMatchObject({
      status: 'ok',
      summary: 'off (INGEST_SPOOL_ENABLED=false)',
    });
  });

  it('deliveries held by a Klaviyo 429 pause: a !, not a ✗', async () => {
    const env = baseEnv();
    const queue = new Queue(QueueName.deliveries, {
      connection: admin.duplicate(),
      prefix: env.QUEUE_PREFIX,
    });
    try {
      await queue.rateLimit(60_000);
      const run = await doctor(env);
      expect(run.code).toBe(0);
      expect(byName(run, 'deliveries queue')).toMatchObject({ status: 'warn' });
      expect(byName(run, 'deliveries queue').summary).toMatch(/^held for another \d+ s/);
    } finally {
      await queue.removeRateLimitKey();
      await queue.close();
    }
  });

  it('gladly: an unexpected answer', async () => {
    gladly.injectFaults({ status: 500 });
    const run = await doctor(baseEnv());
    expect(failedNames(run)).toEqual(['gladly credentials']);
    expect(byName(run, 'gladly credentials').summary).toBe('unexpected answer 500');
  });

  it('dead-lettered spool entries', async () => {
    const path = join(dir, 'spool', 'ingest.spool');
    writeFileSync(`${path}.dead`, '{"id":"abc"}\n');
    try {
      const run = await doctor(baseEnv());
      expect(failedNames(run)).toEqual(['ingest spool']);
      expect(byName(run, 'ingest spool').fix).toContain('npm run jobs -- spool list');
    } finally {
      rmSync(`${path}.dead`, { force: true });
    }
  });

  it('gladly: credentials rejected', async () => {
    const run = await doctor({ ...baseEnv(), GLADLY_API_TOKEN: 'wrong-gladly-token-789' });
    expect(failedNames(run)).toEqual(['gladly credentials']);
    expect(byName(run, 'gladly credentials').fix).toContain('GLADLY_API_TOKEN');
  });

  it('gladly: unreachable', async () => {
    const run = await doctor({ ...baseEnv(), GLADLY_API_URL: `http://127.0.0.1:${await freePort()}` });
    expect(failedNames(run)).toEqual(['gladly credentials']);
    expect(byName(run, 'gladly credentials').summary).toContain('ECONNREFUSED');
  });

  it('gladly: the bridge is set above the rate limit Gladly reports', async () => {
    const run = await doctor({ ...baseEnv(), GLADLY_RATE_LIMIT_PER_SECOND: '20' });
    expect(failedNames(run)).toEqual(['gladly rate limit']);
  });

  it('klaviyo: key rejected', async () => {
    const run = await doctor({ ...baseEnv(), KLAVIYO_API_KEY: 'pk_not_the_key_000' });
    expect(failedNames(run)).toEqual(['klaviyo key']);
  });

  it('klaviyo: unreachable', async () => {
    const run = await doctor({ ...baseEnv(), KLAVIYO_API_URL: `http://127.0.0.1:${await freePort()}` });
    expect(failedNames(run)).toEqual(['klaviyo key']);
    expect(byName(run, 'klaviyo key').summary).toContain('ECONNREFUSED');
  });

  it('klaviyo: scopes missing, each named (profiles:read only when KLAVIYO_CREATE_PROFILES=false)', async () => {
    klaviyo.setScopes(['segments:read']);
    const createsBefore = klaviyo.segmentCreates;
    const run = await doctor({ ...baseEnv(), KLAVIYO_CREATE_PROFILES: 'false' });
    expect(failedNames(run)).toEqual([
      'klaviyo scope events:write',
      'klaviyo scope profiles:read',
      'klaviyo scope segments:write',
      'klaviyo scope metrics:read',
    ]);
    expect(byName(run, 'klaviyo scope metrics:read').fix).toContain('metrics read access');
    expect(byName(run, 'klaviyo scope segments:read').status).toBe('ok');
    expect(klaviyo.segmentCreates).toBe(createsBefore);
    const defaults = await doctor(baseEnv());
    expect(defaults.checks.some((c) => c.name === 'klaviyo scope profiles:read')).toBe(false);
  });

  it('klaviyo: revision refused', async () => {
    klaviyo.setRevisionMin('2027-01-15');
    const run = await doctor(baseEnv());
    expect(failedNames(run)).toEqual(['klaviyo revision']);
    expect(byName(run, 'klaviyo revision').summary).toContain('2026-07-15 refused');
  });

  it('klaviyo: a segment of that name that does not hold back the right profiles', async () => {
    const name = 'Doctor wrong segment';
    const answer = await fetch(`${klaviyo.url}/api/segments`, {
      method: 'POST',
      headers: {
        authorization: `Klaviyo-API-Key ${KEY}`,
        revision: '2026-07-15',
        'content-type': 'application/vnd.api+json',
      },
      body: JSON.stringify({
        data: {
          type: 'segment',
          attributes: {
            name,
            definition: {
              condition_groups: [
                {
                  conditions: [
                    {
                      type: 'profile-property',
                      property: "properties['In Gladly Conversation']",
                      filter: { type: 'boolean', operator: 'equals', value: false },
                    },
                  ],
                },
              ],
            },
          },
        },
      }),
    });
    expect(answer.status).toBe(201);
    const run = await doctor({ ...baseEnv(), KLAVIYO_SEGMENT_NAME: name });
    expect(failedNames(run)).toEqual(['klaviyo segment']);
  });

  it("klaviyo: events were delivered but the bridge's metrics are not visible", async () => {
    const env = baseEnv();
    const connection = createProducerConnection({ url: redis.url, clusterNodes: [] });
    const queues = createQueues(connection, env.QUEUE_PREFIX);
    const worker = new Worker(QueueName.deliveries, async () => ({ delivered: true }), {
      connection: createWorkerConnection({ url: redis.url, clusterNodes: [] }),
      prefix: env.QUEUE_PREFIX,
    });
    try {
      // biome-ignore lint/suspicious/noExplicitAny: a bare job for the completed set
      const deliveries = queues.deliveries as unknown as Queue<any>;
      await deliveries.add('d', {});
      for (let i = 0; i < 100 && (await deliveries.getCompletedCount()) === 0; i += 1) await sleep(50);
      const run = await doctor({
        ...env,
        KLAVIYO_METRIC_STARTED: 'metric nobody sent',
        KLAVIYO_METRIC_CLOSED: 'nor this',
      });
      expect(failedNames(run)).toEqual(['klaviyo metrics']);
    } finally {
      await worker.close();
      await Promise.all(Object.values(queues).map((q) => q.close()));
      connection.disconnect();
    }
  });

  it('a Redis that refuses CONFIG (managed services): ! for what cannot be read, exit 0', async () => {
    const locked = await startRedisServer({ extraArgs: ['--rename-command', 'CONFIG', ''] });
    try {
      const run = await doctor({ ...baseEnv(), REDIS_URL: locked.url });
      expect(run.code).toBe(0);
      expect(byName(run, 'redis persistence')).toMatchObject({ status: 'warn' });
      expect(byName(run, 'redis eviction')).toMatchObject({ status: 'warn' });
    } finally {
      await locked.stop();
    }
  });

  it('usage: an unknown argument exits 2', async () => {
    const run = await new Promise<number>((resolve) =>
      execFile(process.execPath, [CLI, '--nope'], { env: { PATH: process.env.PATH ?? '' } }, (err) =>
        resolve(err && typeof err.code === 'number' ? err.code : 0),
      ),
    );
    expect(run).toBe(2);
  });
});

function sleep(ms: number) {
  return new Promise((resolve) => setTimeout(resolve, ms));
}

// biome-ignore lint/suspicious/noExplicitAny: any queue
async function waitForFailed(queue: Queue<any>, count: number) {
  for (let i = 0; i < 100 && (await queue.getFailedCount()) < count; i += 1) await sleep(50);
  expect(await queue.getFailedCount()).toBe(count);
}
