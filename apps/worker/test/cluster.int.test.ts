/**
 * The bridge on a Redis Cluster of three masters, as `REDIS_CLUSTER_NODES` configures it: the
 * built ingest, worker and `gk-jobs` CLI, with an unbraced QUEUE_PREFIX that the services must
 * hash-tag themselves. Every key of the bridge (all queues, the per-email state) must sit in one
 * slot, the fan-out's MULTI must work, and when the master serving that slot is killed, the
 * ingest's spool must carry webhooks over the outage. The cluster requires a password, as managed
 * clusters do: REDIS_URL carries it for every node, and it must never show in any output (the
 * suite's log guard checks every line for it).
 */
import { execFile } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';
import { type KlaviyoStandIn, startGladlyStandIn, startKlaviyoStandIn } from '@gk/stand-ins';
import {
  captureLogOutput,
  freePort,
  type RedisCluster,
  registerTestSecrets,
  type ServiceProcess,
  startRedisCluster,
  startServiceProcess,
  waitFor,
} from '@gk/testing';
import { Redis } from 'ioredis';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { GLADLY_TOKEN, GLADLY_USER, KLAVIYO_KEY } from './harness.js';
import { startWorkerProcess, type WorkerProcess } from './worker-process.js';

const INGEST_MAIN = fileURLToPath(new URL('../../ingest/dist/main.js', import.meta.url));
const JOBS_CLI = fileURLToPath(new URL('../dist/cli/jobs.js', import.meta.url));
const HOOK_TOKEN = 'cluster-hook-token-41c9e7';
const ADMIN_PASSWORD = 'cluster-admin-pw-8d02';
const PREFIX = 'gkc';
const REDIS_PASSWORD = 'cluster-redis-pw-5e1a9c';
registerTestSecrets(REDIS_PASSWORD, HOOK_TOKEN, ADMIN_PASSWORD);

let cluster: RedisCluster;
let klaviyo: KlaviyoStandIn;
let gladly: Awaited<ReturnType<typeof startGladlyStandIn>>;
let ingest: ServiceProcess;
let worker: WorkerProcess;
let ingestUrl: string;
let spoolDir: string;

const workerEnv = () => ({
  QUEUE_PREFIX: PREFIX,
  GLADLY_API_URL: gladly.url,
  GLADLY_API_USER: GLADLY_USER,
  GLADLY_API_TOKEN: GLADLY_TOKEN,
  KLAVIYO_API_URL: klaviyo.url,
  KLAVIYO_API_KEY: KLAVIYO_KEY,
});

beforeAll(async () => {
  cluster = await startRedisCluster({ masters: 3, password: REDIS_PASSWORD });
  gladly = await startGladlyStandIn({ user: GLADLY_USER, token: GLADLY_TOKEN });
  klaviyo = await startKlaviyoStandIn({ apiKey: KLAVIYO_KEY });
  gladly.setCustomer('cl-many', ['cl.one@example.test', 'cl.two@example.test', 'CL.ONE@example.test']);
  gladly.setCustomer('cl-solo', ['cl.solo@example.test']);
  spoolDir = mkdtempSync(join(tmpdir(), 'gk-cluster-spool-'));
  const port = await freePort();
  ingestUrl = `http://127.0.0.1:${port}`;
  ingest = await startServiceProcess({
    script: INGEST_MAIN,
    env: {
      ...cluster.env,
      QUEUE_PREFIX: PREFIX,
      PORT: String(port),
      HOST: '127.0.0.1',
      WEBHOOK_TOKENS: HOOK_TOKEN,
      ADMIN_USERNAME: 'ops',
      ADMIN_PASSWORD,
      INGEST_SPOOL_PATH: join(spoolDir, 'ingest.spool'),
    },
    readyUrl: `${ingestUrl}/readyz`,
  });
  worker = await startWorkerProcess({ ...cluster.env, ...workerEnv() });
}, 60_000);

afterAll(async () => {
  await ingest?.kill();
  await worker?.kill();
  await Promise.all([gladly?.close(), klaviyo?.close()]);
  await cluster?.stop();
  if (spoolDir) rmSync(spoolDir, { recursive: true, force: true });
});

let n = 0;
async function post(customerId: string, type = 'CONVERSATION/CREATED') {
  n += 1;
  const id = `cl-evt-${n}`;
  const res = await fetch(`${ingestUrl}/webhooks/gladly`, {
    method: 'POST',
    headers: { 'content-type': 'application/json', 'x-gladly-token': HOOK_TOKEN },
    body: JSON.stringify({
      id,
      type,
      timestamp: new Date(Date.UTC(2026, 10, 20, 12) + n * 1000).toISOString(),
      initiator: { id: 'agent-1', type: 'AGENT' },
      content: { customerId, conversationId: `conv-${customerId}` },
    }),
  });
  return { id, status: res.status, body: (await res.json()) as { status: string } };
}

const recorded = (id: string) => klaviyo.events.filter((e) => e.uniqueId === id).map((e) => e.email);

/** Keys matching `pattern` on each master, by master index. */
async function keysPerMaster(pattern: string): Promise<number[]> {
  return Promise.all(
    cluster.servers.map(async (s) => {
      const client = new Redis(s.url); // carries the password
      try {
        return (await client.keys(pattern)).length;
      } finally {
        client.disconnect();
      }
    }),
  );
}

async function jobsCli(args: string[]) {
  const run = promisify(execFile);
  const { stdout, stderr } = await run(process.execPath, [JOBS_CLI, ...args], {
    env: { PATH: process.env.PATH ?? '', ...cluster.env, QUEUE_PREFIX: PREFIX },
  });
  captureLogOutput('gk-jobs (cluster)', stderr);
  return stdout;
}

describe('the bridge on a 3-master Redis Cluster', () => {
  it('authenticates to every node with the credentials in REDIS_URL, and is refused without them', async () => {
    expect(cluster.env.REDIS_URL).toContain(REDIS_PASSWORD);
    const { REDIS_URL: _withPassword, ...withoutPassword } = cluster.env;
    const refused = await startWorkerProcess({ ...withoutPassword, ...workerEnv() }, false);
    try {
      await waitFor(
        async () =>
          (await fetch(`http://127.0.0.1:${refused.port}/readyz`).catch(() => null))?.status === 503,
        { what: 'the worker without the password to say not ready' },
      );
    } finally {
      await refused.kill();
    }
  });

  it('delivers through the cluster, fanning out to every email in one MULTI', async () => {
    const many = await post('cl-many');
    const solo = await post('cl-solo');
    expect([many.body.status, solo.body.status]).toEqual(['accepted', 'accepted']);
    await waitFor(() => recorded(many.id).length === 2 && recorded(solo.id).length === 1, {
      what: 'deliveries in Klaviyo',
    });
    expect(recorded(many.id).sort()).toEqual(['cl.one@example.test', 'cl.two@example.test']);
    expect((await post('cl-solo', 'CONVERSATION/CLOSED')).body.status).toBe('accepted');
    await waitFor(
      () => klaviyo.profile('cl.solo@example.test')?.properties['In Gladly Conversation'] === false,
      {
        what: 'the close to apply',
      },
    );
  });

  it('keeps every key of the bridge in the one slot of its hash-tagged prefix, on one master', async () => {
    const owner = await cluster.masterFor(`{${PREFIX}}`);
    const counts = await keysPerMaster(`{${PREFIX}}*`);
    expect(counts[owner]).toBeGreaterThan(0);
    expect(counts.filter((_, i) => i !== owner)).toEqual([0, 0]);
    // Nothing unbraced leaked onto another master (queue keys, email leases and marks).
    const stray = await keysPerMaster(`*${PREFIX}*`);
    expect(stray.filter((_, i) => i !== owner)).toEqual([0, 0]);
    const client = new Redis(cluster.servers[owner]?.url ?? '');
    try {
      const keys = await client.keys(`{${PREFIX}}*`);
      expect(keys.some((k) => k.startsWith(`{${PREFIX}}:transitions:`))).toBe(true);
      expect(keys.some((k) => k.startsWith(`{${PREFIX}}:deliveries:`))).toBe(true);
      expect(keys.some((k) => k.includes(':email:') && k.endsWith(':applied'))).toBe(true);
    } finally {
      client.disconnect();
    }
  });

  it('serves gk-jobs and the dashboard from the cluster', async () => {
    const counts = JSON.parse(await jobsCli(['counts', '--json'])) as Record<string, Record<string, number>>;
    expect(counts.transitions?.completed).toBeGreaterThanOrEqual(3);
    expect(counts.deliveries?.completed).toBeGreaterThanOrEqual(4);
    const auth = `Basic ${Buffer.from(`ops:${ADMIN_PASSWORD}`).toString('base64')}`;
    const res = await fetch(`${ingestUrl}/admin/queues/api/queues`, { headers: { authorization: auth } });
    expect(res.status).toBe(200);
    const names = ((await res.json()) as { queues: { name: string }[] }).queues.map((q) => q.name);
    expect(names).toEqual(expect.arrayContaining(['transitions', 'deliveries']));
  });

  it('spools webhooks while the master of its slot is down, and relays them when it is back', async () => {
    const owner = await cluster.masterFor(`{${PREFIX}}`);
    const master = cluster.servers[owner];
    if (!master) throw new Error('no master');
    await master.kill();
    const during = [await post('cl-many'), await post('cl-solo', 'CONVERSATION/CREATED')];
    expect(during.map((d) => [d.status, d.body.status])).toEqual([
      [200, 'spooled'],
      [200, 'spooled'],
    ]);
    // Readiness asks the master of the bridge's slot, not any node: the worker says not ready,
    // the ingest stays ready (its spool takes webhooks) and says why.
    const workerReady = await fetch(`http://127.0.0.1:${worker.port}/readyz`);
    expect(workerReady.status).toBe(503);
    expect(await workerReady.text()).toMatch(/redis/i);
    const ingestReady = await fetch(`${ingestUrl}/readyz`);
    expect(ingestReady.status).toBe(200);
    expect(((await ingestReady.json()) as { warnings?: string[] }).warnings?.join(' ')).toMatch(/redis/i);
    // Back within the cluster's node timeout, from its AOF and nodes.conf, with the same slots.
    await master.restart();
    await waitFor(
      async () => {
        const ready = (await (await fetch(`${ingestUrl}/readyz`)).json()) as { spool?: { depth: number } };
        return ready.spool?.depth === 0;
      },
      { timeoutMs: 30_000, what: 'the spool to be relayed' },
    );
    await waitFor(
      () => recorded(during[0]?.id ?? '').length === 2 && recorded(during[1]?.id ?? '').length === 1,
      {
        timeoutMs: 30_000,
        what: 'the spooled webhooks delivered',
      },
    );
    expect(klaviyo.duplicates).toBe(0);
  });
});
