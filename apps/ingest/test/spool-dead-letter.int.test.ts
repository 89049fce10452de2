/**
 * Poison entries in the spool, on the built ingest and the built `gk-jobs`: one this version
 * cannot map to a queue (written by a newer version before a rollback) and one Redis refuses with
 * an error that is not about the connection, between good ones. The good ones must arrive, the
 * poison ones must land in the dead-letter file, `spool list` must show them, and `spool requeue`
 * must store one once its cause is gone (`spool drop` removes the other).
 */
import { execFile } from 'node:child_process';
import { mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import {
  closeQueues,
  createProducerConnection,
  createQueues,
  customerChangeJobId,
  encodeRecord,
  queuePrefix,
  transitionJobId,
} from '@gk/queue';
import {
  captureLogOutput,
  freePort,
  type ServiceProcess,
  startServiceProcess,
  type TestRedis,
  uniquePrefix,
  useTestRedis,
  waitFor,
} from '@gk/testing';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { metricValue } from './helpers.js';

const MAIN = fileURLToPath(new URL('../dist/main.js', import.meta.url));
const JOBS = fileURLToPath(new URL('../../worker/dist/cli/jobs.js', import.meta.url));

let redis: TestRedis;
let dir: string;
let spoolPath: string;
let ingest: ServiceProcess | undefined;
const prefix = uniquePrefix('dead-letter');

const transition = (id: string) => ({
  queue: 'transitions',
  name: 'CONVERSATION/CREATED',
  jobId: transitionJobId(id),
  data: {
    eventId: id,
    kind: 'started',
    gladlyType: 'CONVERSATION/CREATED',
    customerId: 'cust-1',
    conversationId: 'conv-1',
    occurredAt: '2026-11-20T14:03:27.512Z',
    receivedAt: '2026-11-20T14:03:28.000Z',
  },
});
const change = {
  queue: 'customer-changes',
  name: 'CUSTOMER_PROFILE/UPDATED',
  jobId: customerChangeJobId('chg-1'),
  data: {
    eventId: 'chg-1',
    gladlyType: 'CUSTOMER_PROFILE/UPDATED',
    customerIds: ['cust-1'],
    occurredAt: '2026-11-20T14:03:27.512Z',
    receivedAt: '2026-11-20T14:03:28.000Z',
  },
};
/** As a newer version might write it: a queue this version does not have. */
const fromTheFuture = { ...transition('future-1'), queue: 'transitions-v2' };

interface CliRun {
  code: number;
  stdout: string;
  stderr: string;
}

function jobsCli(args: string[]): Promise<CliRun> {
  return new Promise((resolve) => {
    execFile(
      process.execPath,
      [JOBS, ...args],
      {
        env: {
          PATH: process.env.PATH ?? '',
          ...redis.env,
          QUEUE_PREFIX: prefix,
          INGEST_SPOOL_PATH: spoolPath,
        },
      },
      (err, stdout, stderr) => {
        captureLogOutput(`jobs.js ${args.join(' ')}`, `${stdout}${stderr}`);
        resolve({ code: err ? (typeof err.code === 'number' ? err.code : 1) : 0, stdout, stderr });
      },
    );
  });
}

beforeAll(async () => {
  redis = await useTestRedis();
  dir = mkdtempSync(join(tmpdir(), 'gk-dead-letter-'));
  mkdirSync(join(dir, 'spool'));
  spoolPath = join(dir, 'spool', 'ingest.spool');
});

afterAll(async () => {
  await ingest?.stop();
  await redis?.stop();
  rmSync(dir, { recursive: true, force: true });
});

describe('poison entries between good ones', () => {
  it('dead-letters the poison, relays the rest, and the CLI lists, requeues and drops them', async () => {
    const connection = createProducerConnection(redis.target);
    connection.on('error', () => {});
    const queues = createQueues(connection, queuePrefix(prefix, redis.cluster));
    // Redis refuses every add to customer-changes: its id counter is not a number (ERR …).
    await queues.customerChanges.waitUntilReady();
    const idKey = queues.customerChanges.toKey('id');
    await connection.set(idKey, 'not-a-number');

    const entries = [transition('good-1'), fromTheFuture, transition('good-2'), change, transition('good-3')];
    writeFileSync(spoolPath, Buffer.concat(entries.map((j, i) => encodeRecord({ s: i + 1, j }))));

    const port = await freePort();
    ingest = await startServiceProcess({
      script: MAIN,
      env: {
        ...redis.env,
        PORT: String(port),
        HOST: '127.0.0.1',
        QUEUE_PREFIX: prefix,
        WEBHOOK_TOKENS: 'dead-letter-token-0d41a7',
        INGEST_SPOOL_PATH: spoolPath,
        LOG_LEVEL: 'warn',
      },
      readyUrl: `http://127.0.0.1:${port}/healthz`,
    });
    try {
      const present = async (id: string) =>
        (await queues.transitions.getJob(transitionJobId(id))) !== undefined;
      await waitFor(
        async () => (await present('good-1')) && (await present('good-2')) && (await present('good-3')),
        {
          timeoutMs: 30_000,
          intervalMs: 200,
          what: 'the good entries behind the poison ones to arrive',
        },
      );
      await waitFor(
        async () => {
          const res = await fetch(`http://127.0.0.1:${port}/readyz`);
          const body = (await res.json()) as { spool?: { depth: number } };
          return res.status === 200 && body.spool?.depth === 0;
        },
        { timeoutMs: 30_000, what: 'the spool to be empty and the ingest ready' },
      ).catch((err: unknown) => {
        throw new Error(`${(err as Error).message}\n${ingest?.output()}`);
      });
      // Nothing holds up new webhooks: straight to Redis again.
      const event = {
        id: 'after-poison-1',
        type: 'CONVERSATION/CLOSED',
        timestamp: '2026-11-20T14:05:00.000Z',
        initiator: { id: 'agent-1', type: 'AGENT' },
        content: { customerId: 'cust-1', conversationId: 'conv-1' },
      };
      const answer = await fetch(`http://127.0.0.1:${port}/webhooks/gladly`, {
        method: 'POST',
        headers: { 'content-type': 'application/json', 'x-gladly-token': 'dead-letter-token-0d41a7' },
        body: JSON.stringify(event),
      });
      expect(((await answer.json()) as { status: string }).status).toBe('accepted');
      const metrics = await (await fetch(`http://127.0.0.1:${port}/metrics`)).text();
      const dead = (queue: string, reason: string) =>
        metricValue(metrics, 'gk_spool_dead_lettered_total', { queue, reason });
      expect(dead('transitions-v2', 'unreadable')).toBe(1);
      expect(dead('customer-changes', 'rejected')).toBe(1);
      expect(metricValue(metrics, 'gk_spool_dead_letter_entries', {})).toBe(2);
      expect(readFileSync(`${spoolPath}.dead`, 'utf8').trim().split('\n')).toHaveLength(2);

      const listed = await jobsCli(['spool', 'list', '--json']);
      expect(listed.code).toBe(0);
      const list = JSON.parse(listed.stdout) as {
        path: string;
        entries: { id: string; queue: string; jobId: string; reason: string }[];
      };
      expect(list.path).toBe(`${spoolPath}.dead`);
      expect(list.entries.map((e) => [e.queue, e.jobId])).toEqual([
        ['transitions-v2', transitionJobId('future-1')],
        ['customer-changes', customerChangeJobId('chg-1')],
      ]);
      expect(list.entries[0]?.reason).toMatch(/unreadable: unknown queue/);
      expect(list.entries[1]?.reason).toMatch(/rejected: .*not an integer/);
      const text = await jobsCli(['spool', 'list']);
      expect(text.stdout).toContain(customerChangeJobId('chg-1'));
      const [future, rejected] = list.entries;
      if (!future || !rejected) throw new Error('expected two entries');

      // The cause is still there: requeue fails and keeps the entry.
      const tooSoon = await jobsCli(['spool', 'requeue', rejected.id]);
      expect(tooSoon.code).toBe(1);
      expect(tooSoon.stderr).toMatch(/not an integer/);
      // An entry this version cannot read is never requeued by it.
      const unreadable = await jobsCli(['spool', 'requeue', future.id]);
      expect(unreadable.code).toBe(1);
      expect(unreadable.stderr).toMatch(/unknown queue/);

      await connection.del(idKey);
      const requeued = await jobsCli(['spool', 'requeue', rejected.id]);
      expect(requeued.code).toBe(0);
      expect(requeued.stdout).toMatch(/requeued 1/i);
      expect((await queues.customerChanges.getJob(customerChangeJobId('chg-1')))?.data).toEqual(change.data);

      const dropped = await jobsCli(['spool', 'drop', future.id]);
      expect(dropped.code).toBe(0);
      const after = JSON.parse((await jobsCli(['spool', 'list', '--json'])).stdout) as { entries: unknown[] };
      expect(after.entries).toEqual([]);
      console.log(
        `spool-dead-letter: entries written 5, relayed 3, dead-lettered 2 (1 unreadable, 1 rejected), requeued 1, dropped 1`,
      );
    } finally {
      await closeQueues(queues);
      connection.disconnect();
    }
  }, 90_000);
});
