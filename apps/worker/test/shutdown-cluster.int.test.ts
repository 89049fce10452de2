/**
 * A shutdown always ends: SIGTERM while the Redis Cluster master serving the bridge's slot is
 * away (killed: connections refused; frozen with SIGSTOP: nothing answers) must still make the
 * built worker and ingest exit 0 within their deadlines (25 s, 10 s), with deliveries in flight.
 * BullMQ's close() waits for an `end` event that never comes while that master is away, and
 * commands without a timeout wait for ever: each shutdown step is bounded and forced instead,
 * and the log names the step that was still pending.
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { type TransitionType, toTransition } from '@gk/domain';
import { closeQueues, createQueues, createWorkerConnection, deliveryJobId, queuePrefix } from '@gk/queue';
import { type KlaviyoStandIn, startGladlyStandIn, startKlaviyoStandIn } from '@gk/stand-ins';
import {
  freePort,
  type RedisCluster,
  type ServiceProcess,
  startRedisCluster,
  startServiceProcess,
  waitFor,
} from '@gk/testing';
import { Redis } from 'ioredis';
import { afterEach, describe, expect, it } from 'vitest';
import { GLADLY_TOKEN, GLADLY_USER, KLAVIYO_KEY } from './harness.js';
import { startWorkerProcess } from './worker-process.js';

const INGEST_MAIN = fileURLToPath(new URL('../../ingest/dist/main.js', import.meta.url));
const PREFIX = 'gkstop';
const WORKER_DEADLINE_MS = 25_000;
const INGEST_DEADLINE_MS = 10_000;

const cleanups: (() => Promise<void>)[] = [];
afterEach(async () => {
  for (const cleanup of cleanups.splice(0).reverse()) await cleanup().catch(() => {});
});

async function timedStop(proc: ServiceProcess): Promise<{ code: number | null; ms: number }> {
  const started = Date.now();
  let timer: NodeJS.Timeout | undefined;
  const late = new Promise<'late'>((resolve) => {
    timer = setTimeout(() => resolve('late'), 40_000);
  });
  const code = await Promise.race([proc.stop(), late]);
  clearTimeout(timer);
  if (code === 'late') {
    await proc.kill();
    return { code: null, ms: Date.now() - started };
  }
  return { code, ms: Date.now() - started };
}

function delivery(i: number) {
  const id = `evt-stop-${i}`;
  const email = `stop.${i}@example.com`;
  const type: TransitionType = 'CONVERSATION/CREATED';
  const t = toTransition(
    {
      id,
      type,
      timestamp: '2026-11-20T10:00:00.000Z',
      content: { customerId: `c${i}`, conversationId: 'cv' },
    },
    new Date(),
  );
  return {
    name: 'deliver',
    data: { ...t, email, resolvedCustomerId: `c${i}` },
    opts: { jobId: deliveryJobId(id, email, 'shutdown-test-key') },
  };
}

describe('shutdown on a Redis Cluster whose master is away', () => {
  it.each(['killed', 'frozen'] as const)(
    'worker and ingest exit 0 within their deadlines while the slot master is %s',
    async (how) => {
      const cluster: RedisCluster = await startRedisCluster({ masters: 3 });
      cleanups.push(() => cluster.stop());
      const gladly = await startGladlyStandIn({ user: GLADLY_USER, token: GLADLY_TOKEN });
      const klaviyo: KlaviyoStandIn = await startKlaviyoStandIn({ apiKey: KLAVIYO_KEY });
      cleanups.push(async () => {
        await Promise.all([gladly.close(), klaviyo.close()]);
      });
      // Slow answers: deliveries are in flight when the master goes away.
      klaviyo.setLatency(400);
      const spoolDir = mkdtempSync(join(tmpdir(), 'gk-stop-spool-'));
      cleanups.push(async () => rmSync(spoolDir, { recursive: true, force: true }));

      const port = await freePort();
      const ingest = await startServiceProcess({
        script: INGEST_MAIN,
        env: {
          ...cluster.env,
          QUEUE_PREFIX: PREFIX,
          PORT: String(port),
          HOST: '127.0.0.1',
          WEBHOOK_AUTH_DISABLED: 'true',
          INGEST_SPOOL_PATH: join(spoolDir, 'ingest.spool'),
        },
        readyUrl: `http://127.0.0.1:${port}/readyz`,
      });
      cleanups.push(() => ingest.kill());
      const worker = await startWorkerProcess({
        ...cluster.env,
        QUEUE_PREFIX: PREFIX,
        GLADLY_API_URL: gladly.url,
        GLADLY_API_USER: GLADLY_USER,
        GLADLY_API_TOKEN: GLADLY_TOKEN,
        KLAVIYO_API_URL: klaviyo.url,
        KLAVIYO_API_KEY: KLAVIYO_KEY,
        KLAVIYO_RATE_LIMIT_PER_SECOND: '0',
        WORKER_CONCURRENCY: '5',
      });
      cleanups.push(() => worker.kill());

      const prefix = queuePrefix(PREFIX, true);
      const connection = createWorkerConnection(cluster.target, 'test-producer');
      const queues = createQueues(connection, prefix);
      await queues.deliveries.addBulk(Array.from({ length: 40 }, (_, i) => delivery(i)));
      await closeQueues(queues);
      connection.disconnect();
      await waitFor(() => klaviyo.posts >= 3, { what: 'deliveries in flight' });

      const master = cluster.servers[await cluster.masterFor(prefix)];
      if (!master) throw new Error('no master for the slot');
      if (how === 'killed') {
        await master.kill();
      } else {
        const probe = new Redis(master.url, { maxRetriesPerRequest: 1 });
        const info = await probe.info('server').finally(() => probe.disconnect());
        const pid = Number(/^process_id:(\d+)/m.exec(info)?.[1]);
        process.kill(pid, 'SIGSTOP');
        cleanups.push(async () => {
          process.kill(pid, 'SIGCONT');
        });
      }
      // Work is hanging on the master now (a moment for in-flight commands to get stuck).
      await new Promise((resolve) => setTimeout(resolve, 1_000));

      const [w, i] = await Promise.all([timedStop(worker), timedStop(ingest)]);
      const output = `${worker.output()}\n${ingest.output()}`;
      expect(w.code, `worker exit code (after ${w.ms} ms)\n${worker.output().slice(-3_000)}`).toBe(0);
      expect(w.ms).toBeLessThan(WORKER_DEADLINE_MS);
      expect(i.code, `ingest exit code (after ${i.ms} ms)\n${ingest.output().slice(-3_000)}`).toBe(0);
      expect(i.ms).toBeLessThan(INGEST_DEADLINE_MS);
      expect(output).not.toMatch(/shutdown deadline passed/);
      console.log(`cluster master ${how}: worker stopped in ${w.ms} ms, ingest in ${i.ms} ms`);
    },
    120_000,
  );
});
