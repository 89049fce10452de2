/**
 * A Redis Cluster that requires a password, as managed clusters do: REDIS_CLUSTER_NODES names the
 * nodes and REDIS_URL carries the credentials for every node (`rediss://` would add TLS). The
 * built ingest, worker and gk-jobs must authenticate, and the password must never show in any
 * output (the suite's log guard checks every line for it).
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
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { GLADLY_TOKEN, GLADLY_USER, KLAVIYO_KEY } from './harness.js';
import { startWorkerProcess, type WorkerProcess } from './worker-process.js';

const INGEST_MAIN = fileURLToPath(new URL('../../ingest/dist/main.js', import.meta.url));
const JOBS_CLI = fileURLToPath(new URL('../dist/cli/jobs.js', import.meta.url));
const REDIS_PASSWORD = 'cluster-redis-pw-5e1a9c';
const HOOK_TOKEN = 'cluster-auth-hook-token-7d2b';
registerTestSecrets(REDIS_PASSWORD, HOOK_TOKEN);

let cluster: RedisCluster;
let klaviyo: KlaviyoStandIn;
let gladly: Awaited<ReturnType<typeof startGladlyStandIn>>;
let ingest: ServiceProcess;
let worker: WorkerProcess;
let ingestUrl: string;
let spoolDir: string;

beforeAll(async () => {
  cluster = await startRedisCluster({ password: REDIS_PASSWORD });
  gladly = await startGladlyStandIn({ user: GLADLY_USER, token: GLADLY_TOKEN });
  klaviyo = await startKlaviyoStandIn({ apiKey: KLAVIYO_KEY });
  gladly.setCustomer('auth-cust', ['auth.one@example.test']);
  spoolDir = mkdtempSync(join(tmpdir(), 'gk-cluster-auth-spool-'));
  const port = await freePort();
  ingestUrl = `http://127.0.0.1:${port}`;
  ingest = await startServiceProcess({
    script: INGEST_MAIN,
    env: {
      ...cluster.env,
      QUEUE_PREFIX: 'gka',
      PORT: String(port),
      HOST: '127.0.0.1',
      WEBHOOK_TOKENS: HOOK_TOKEN,
      INGEST_SPOOL_PATH: join(spoolDir, 'ingest.spool'),
    },
    readyUrl: `${ingestUrl}/readyz`,
  });
  worker = await startWorkerProcess({
    ...cluster.env,
    QUEUE_PREFIX: 'gka',
    GLADLY_API_URL: gladly.url,
    GLADLY_API_USER: GLADLY_USER,
    GLADLY_API_TOKEN: GLADLY_TOKEN,
    KLAVIYO_API_URL: klaviyo.url,
    KLAVIYO_API_KEY: KLAVIYO_KEY,
  });
}, 60_000);

afterAll(async () => {
  await ingest?.stop();
  await worker?.stop();
  await Promise.all([gladly?.close(), klaviyo?.close()]);
  await cluster?.stop();
  if (spoolDir) rmSync(spoolDir, { recursive: true, force: true });
});

describe('a Redis Cluster that requires a password (credentials from REDIS_URL)', () => {
  it('is used by the ingest, the worker and gk-jobs, and the password shows nowhere', async () => {
    expect(cluster.env.REDIS_URL).toContain(REDIS_PASSWORD);
    const res = await fetch(`${ingestUrl}/webhooks/gladly`, {
      method: 'POST',
      headers: { 'content-type': 'application/json', 'x-gladly-token': HOOK_TOKEN },
      body: JSON.stringify({
        id: 'auth-evt-1',
        type: 'CONVERSATION/CREATED',
        timestamp: '2026-11-20T12:00:00Z',
        initiator: { id: 'agent-1', type: 'AGENT' },
        content: { customerId: 'auth-cust', conversationId: 'conv-auth' },
      }),
    });
    expect(await res.json()).toMatchObject({ status: 'accepted' });
    await waitFor(() => klaviyo.events.some((e) => e.uniqueId === 'auth-evt-1'), { what: 'the delivery' });

    const { stdout, stderr } = await promisify(execFile)(process.execPath, [JOBS_CLI, 'counts', '--json'], {
      env: { PATH: process.env.PATH ?? '', ...cluster.env, QUEUE_PREFIX: 'gka' },
    });
    captureLogOutput('gk-jobs (cluster with password)', stdout + stderr);
    const counts = JSON.parse(stdout) as Record<string, Record<string, number>>;
    expect(counts.transitions?.completed).toBe(1);
    expect(counts.deliveries?.completed).toBe(1);

    // Without the password, the cluster refuses: the service does not get ready.
    const { REDIS_URL: _withPassword, ...withoutPassword } = cluster.env;
    const refused = await startWorkerProcess(
      {
        ...withoutPassword,
        QUEUE_PREFIX: 'gka',
        GLADLY_API_URL: gladly.url,
        GLADLY_API_USER: GLADLY_USER,
        GLADLY_API_TOKEN: GLADLY_TOKEN,
        KLAVIYO_API_URL: klaviyo.url,
        KLAVIYO_API_KEY: KLAVIYO_KEY,
      },
      false,
    );
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
});
