/**
 * Two ingests on one spool path with the same PID, as in containers where every ingest is PID 1
 * (a rolling update, or replicas sharing a volume): each runs in its own PID namespace
 * (`unshare --pid --fork --mount-proc`, which needs root, as CI runs). Redis is down while they
 * take webhooks; the first is stopped before Redis returns. Every webhook either of them answered
 * 200 must be a job once Redis is back.
 */
import { type ChildProcess, spawn, spawnSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { closeQueues, createProducerConnection, createQueues, transitionJobId } from '@gk/queue';
import {
  freePort,
  type RedisServer,
  registerTestSecrets,
  sleep,
  startRedisServer,
  trackChild,
  uniquePrefix,
  waitFor,
} from '@gk/testing';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { basicAuth, freshEvent, postWebhook } from './helpers.js';

const MAIN = fileURLToPath(new URL('../dist/main.js', import.meta.url));
const USER = 'gladly';
const PASSWORD = 'shared-spool-password-7c21';

const isRoot = process.getuid?.() === 0;
const canUnshare =
  isRoot &&
  spawnSync('unshare', ['--pid', '--fork', '--mount-proc', 'true'], { stdio: 'ignore' }).status === 0;
const skipReason = !isRoot
  ? 'needs root: unshare --pid creates a PID namespace only as root'
  : 'unshare --pid --fork --mount-proc does not work here';
if (!canUnshare) console.warn(`spool-shared-path: skipped (${skipReason})`);

interface Ingest {
  name: string;
  url: string;
  child: ChildProcess;
  output(): string;
  exited: Promise<number | null>;
  alive(): boolean;
  /** The node process's PID as this (root) namespace sees it, and as its own namespace does. */
  pids(): { host: number; inner: string };
}

let redis: RedisServer;
let dir: string;
const prefix = uniquePrefix('shared-spool');
const running: Ingest[] = [];

beforeAll(async () => {
  if (!canUnshare) return;
  registerTestSecrets(PASSWORD);
  redis = await startRedisServer();
  await redis.kill(); // down from the start: every webhook goes to the spool
  dir = mkdtempSync(join(tmpdir(), 'gk-shared-spool-'));
});

afterAll(async () => {
  for (const ingest of running) if (ingest.alive()) ingest.child.kill('SIGKILL');
  await redis?.stop();
  if (dir) rmSync(dir, { recursive: true, force: true });
});

async function startIngest(name: string): Promise<Ingest> {
  const port = await freePort();
  let out = '';
  const child = trackChild(
    spawn('unshare', ['--pid', '--fork', '--mount-proc', process.execPath, MAIN], {
      env: {
        PATH: process.env.PATH ?? '',
        PORT: String(port),
        HOST: '127.0.0.1',
        REDIS_URL: redis.url,
        QUEUE_PREFIX: prefix,
        WEBHOOK_BASIC_AUTH: `${USER}:${PASSWORD}`,
        INGEST_SPOOL_PATH: join(dir, 'ingest.spool'),
        LOG_LEVEL: 'warn',
      },
      stdio: ['ignore', 'pipe', 'pipe'],
    }),
  );
  child.stdout?.on('data', (d) => {
    out += String(d);
  });
  child.stderr?.on('data', (d) => {
    out += String(d);
  });
  const exited = new Promise<number | null>((resolve) => child.once('exit', (code) => resolve(code)));
  const alive = () => child.exitCode === null && child.signalCode === null;
  const pids = () => {
    const host = Number(
      readFileSync(`/proc/${child.pid}/task/${child.pid}/children`, 'utf8').trim().split(/\s+/)[0],
    );
    const nspid = /^NSpid:\s+(.*)$/m.exec(readFileSync(`/proc/${host}/status`, 'utf8'))?.[1] ?? '';
    return { host, inner: nspid.trim().split(/\s+/).pop() ?? '' };
  };
  const ingest: Ingest = {
    name,
    url: `http://127.0.0.1:${port}`,
    child,
    output: () => out,
    exited,
    alive,
    pids,
  };
  running.push(ingest);
  // Up (healthz answers) or refused (exited): either is allowed, sharing the spool is not.
  await waitFor(
    async () => {
      if (!alive()) return true;
      const res = await fetch(`${ingest.url}/healthz`).catch(() => null);
      return res?.status === 200;
    },
    { timeoutMs: 30_000, what: `ingest ${name} to start or refuse` },
  );
  return ingest;
}

async function stop(ingest: Ingest): Promise<void> {
  if (!ingest.alive()) return;
  // SIGTERM to node itself (PID 1 in its namespace), as an orchestrator stopping a container does.
  process.kill(ingest.pids().host, 'SIGTERM');
  await ingest.exited;
}

async function sendTo(ingest: Ingest, count: number): Promise<{ ok: string[]; other: number }> {
  const ok: string[] = [];
  let other = 0;
  for (let i = 0; i < count; i++) {
    const event = freshEvent();
    const res = await postWebhook(ingest.url, event, { auth: basicAuth(USER, PASSWORD) }).catch(() => null);
    if (res?.status === 200) ok.push(event.id);
    else other += 1;
    await res?.body?.cancel();
  }
  return { ok, other };
}

describe.skipIf(!canUnshare)('two ingests on one spool path with the same PID', () => {
  it('never lose a webhook either answered 200 when one of them stops before Redis returns', async () => {
    const a = await startIngest('A');
    expect(a.alive()).toBe(true);
    expect(a.pids().inner).toBe('1');
    const b = await startIngest('B');
    if (b.alive()) expect(b.pids().inner).toBe('1');
    else expect(b.output()).toContain(join(dir, 'ingest.spool'));

    const bShares = b.alive();
    const answered: string[] = [];
    const fromA = await sendTo(a, 20);
    answered.push(...fromA.ok);
    expect(fromA.ok).toHaveLength(20);
    if (b.alive()) answered.push(...(await sendTo(b, 20)).ok);
    // A second ingest on the path either refused it or keeps running: never a crash after a 200.
    expect({ bShares, bAlive: b.alive(), bExit: b.child.exitCode }).toEqual(
      bShares ? { bShares, bAlive: true, bExit: null } : { bShares, bAlive: false, bExit: 1 },
    );

    // The rolling update: the first one stops while Redis is still down.
    await stop(a);
    expect(a.child.exitCode).toBe(0);
    // Its replacement takes the same spool path (when B refused, B never held anything).
    const survivor = b.alive() ? b : await startIngest('C');
    expect(survivor.alive()).toBe(true);
    expect(survivor.pids().inner).toBe('1');
    if (survivor !== b) answered.push(...(await sendTo(survivor, 10)).ok);

    await redis.restart();
    const connection = createProducerConnection({ url: redis.url });
    connection.on('error', () => {});
    const queues = createQueues(connection, prefix);
    try {
      let missing: string[] = answered;
      await waitFor(
        async () => {
          const found = await Promise.all(
            missing.map(async (id) => ((await queues.transitions.getJob(transitionJobId(id))) ? null : id)),
          );
          missing = found.filter((id): id is string => id !== null);
          return missing.length === 0;
        },
        { timeoutMs: 30_000, intervalMs: 250, what: 'every answered webhook to be a job' },
      ).catch(() => {});
      expect({ answered: answered.length, missing: missing.length }).toEqual({
        answered: answered.length,
        missing: 0,
      });
      console.log(
        `spool-shared-path: ${answered.length} answered 200, all in Redis; second ingest ${b === survivor ? 'shared the path' : 'refused the path'}`,
      );
    } finally {
      await closeQueues(queues);
      connection.disconnect();
      await stop(survivor);
      await sleep(10);
    }
  }, 120_000);
});
