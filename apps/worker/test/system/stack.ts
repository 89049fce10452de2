/**
 * The whole bridge as an operator runs it, for chaos and soak tests: a redis-server with AOF
 * (`appendfsync always`), the Gladly and Klaviyo stand-ins, the built ingest
 * (`apps/ingest/dist/main.js`) and N built workers (`apps/worker/dist/main.js`), each a child
 * process that can be killed (-9), frozen (SIGSTOP) or restarted mid-run.
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { createServer, request as httpRequest } from 'node:http';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import {
  type BridgeQueues,
  closeQueues,
  createQueues,
  createWorkerConnection,
  queuePrefix,
  type RedisConnection,
} from '@gk/queue';
import {
  type GladlyStandIn,
  type KlaviyoStandIn,
  startGladlyStandIn,
  startKlaviyoStandIn,
} from '@gk/stand-ins';
import {
  freePort,
  type RedisCluster,
  type RedisServer,
  type ServiceProcess,
  sleep,
  startRedisCluster,
  startRedisServer,
  startServiceProcess,
  testClusterNodes,
} from '@gk/testing';
import { Redis } from 'ioredis';
import { GLADLY_TOKEN, GLADLY_USER, KLAVIYO_KEY } from '../harness.js';
import { startWorkerProcess, type WorkerProcess } from '../worker-process.js';

const INGEST_MAIN = fileURLToPath(new URL('../../../ingest/dist/main.js', import.meta.url));

export const HOOK_USER = 'gladly';
export const HOOK_PASSWORD = 'stack-webhook-pw-7c1e93';
export const HOOK_TOKEN = 'stack-webhook-token-d04a2f';
export const ADMIN_USER = 'ops';
export const ADMIN_PASSWORD = 'stack-admin-pw-5b8e10';

const basic = (user: string, password: string) => Buffer.from(`${user}:${password}`).toString('base64');

/** Graceful shutdown is bounded (10 s ingest, 25 s worker): past that, kill -9 and say null. */
const STOP_TIMEOUT_MS = 30_000;

async function stopWithin(proc: ServiceProcess): Promise<number | null> {
  let timer: NodeJS.Timeout | undefined;
  const late = new Promise<'late'>((resolve) => {
    timer = setTimeout(() => resolve('late'), STOP_TIMEOUT_MS);
  });
  const code = await Promise.race([proc.stop(), late]);
  clearTimeout(timer);
  if (code !== 'late') return code;
  await proc.kill();
  return null;
}

/** Every secret the stack is configured with, as given and as it travels (base64 in Basic auth). */
export const STACK_SECRETS: readonly string[] = [
  HOOK_PASSWORD,
  HOOK_TOKEN,
  ADMIN_PASSWORD,
  GLADLY_TOKEN,
  KLAVIYO_KEY,
  basic(HOOK_USER, HOOK_PASSWORD),
  basic(ADMIN_USER, ADMIN_PASSWORD),
  basic(GLADLY_USER, GLADLY_TOKEN),
];

export interface StackOptions {
  prefix: string;
  workers: number;
  logLevel?: string;
  /** Added to every worker's environment. */
  workerEnv?: Record<string, string>;
  /** Give the workers GLADLY_WEBHOOK_URL: the ingest's webhook URL (its port is chosen here). */
  webhookUrl?: boolean;
  /**
   * A Redis Cluster of three masters instead of one redis-server (default: when the tests are
   * told to use a cluster, REDIS_CLUSTER_NODES set). `redis` is then the master serving the
   * bridge's slot: killing or freezing it is the outage the bridge sees.
   */
  cluster?: boolean;
}

/** Queues on a connection of the test's own, for counting and inspecting jobs. */
export interface StackMonitor {
  queues: BridgeQueues;
  connection: RedisConnection;
  /** Jobs per state for each queue, and whether every non-final state of every queue is empty. */
  counts(): Promise<{
    transitions: Record<string, number>;
    deliveries: Record<string, number>;
    customerChanges: Record<string, number>;
    idle: boolean;
  }>;
  close(): Promise<void>;
}

/** Jobs not yet finished (BullMQ 6: a paused queue's jobs are `waiting`). */
export const PENDING_STATES = ['waiting', 'active', 'delayed', 'prioritized', 'waiting-children'] as const;

export interface Stack {
  redis: RedisServer;
  gladly: GladlyStandIn;
  klaviyo: KlaviyoStandIn;
  prefix: string;
  ingestUrl: string;
  /** The Authorization header Gladly is configured to send. */
  webhookAuthorization: string;
  adminAuthorization: string;
  ingest(): ServiceProcess;
  workers(): readonly WorkerProcess[];
  /** kill -9 of one worker (by index, default a random one) and a fresh one in its place. */
  killWorker(index?: number, restartAfterMs?: number): Promise<void>;
  /**
   * SIGSTOP for `ms` (longer than the job lock: its jobs stall and move), then SIGCONT. With
   * `midLookup`, waits (up to 5 s) until that worker has a Gladly lookup in flight, so a fan-out
   * is interrupted between the lookup and storing its deliveries, and is run again elsewhere.
   */
  freezeWorker(ms: number, options?: { index?: number; midLookup?: boolean }): Promise<void>;
  /** A new ingest on the same port, after SIGTERM (`graceful`) or kill -9 (`kill`). */
  restartIngest(how: 'graceful' | 'kill'): Promise<void>;
  /** SIGTERM (and wait for exit 0) or kill -9 of the ingest, without starting a new one. */
  stopIngest(how: 'graceful' | 'kill'): Promise<void>;
  /** A new ingest on the same port and spool (after stopIngest). */
  startIngest(): Promise<void>;
  /** kill -9 of Redis, `downMs` of outage, then a restart from its AOF. */
  killRedis(downMs: number): Promise<void>;
  /**
   * SIGSTOP of redis-server for `ms` (a hung Redis: connections stay open, nothing answers), then
   * SIGCONT. `during` runs while it is stopped, after `ms`.
   */
  freezeRedis(ms: number, during?: () => Promise<void>): Promise<void>;
  monitor(): StackMonitor;
  /** Everything every process of the stack wrote so far, killed ones included. */
  output(): string;
  /** SIGTERM to every service; the exit codes, ingest first (null: still running after 30 s). */
  stopServices(): Promise<(number | null)[]>;
  close(): Promise<void>;
}

interface CountingProxy {
  url: string;
  /** Requests received and not yet answered. */
  inFlight(): number;
  close(): Promise<void>;
}

/** A plain HTTP proxy to `target` on a free loopback port that counts requests in flight. */
async function startCountingProxy(target: string): Promise<CountingProxy> {
  let inFlight = 0;
  const server = createServer((req, res) => {
    inFlight += 1;
    res.once('close', () => {
      inFlight -= 1;
    });
    const upstream = httpRequest(
      `${target}${req.url ?? '/'}`,
      { method: req.method, headers: req.headers },
      (answer) => {
        res.writeHead(answer.statusCode ?? 502, answer.headers);
        answer.pipe(res);
      },
    );
    // The stand-in dropped the connection (an injected fault): drop ours too.
    upstream.once('error', () => res.destroy());
    req.pipe(upstream);
  });
  const port = await freePort();
  await new Promise<void>((resolve) => server.listen(port, '127.0.0.1', resolve));
  return {
    url: `http://127.0.0.1:${port}`,
    inFlight: () => inFlight,
    close: () =>
      new Promise<void>((resolve) => {
        server.closeAllConnections();
        server.close(() => resolve());
      }),
  };
}

export async function startStack(options: StackOptions): Promise<Stack> {
  const logLevel = options.logLevel ?? 'info';
  const cluster: RedisCluster | null =
    (options.cluster ?? testClusterNodes().length > 0) ? await startRedisCluster() : null;
  const prefix = queuePrefix(options.prefix, cluster !== null);
  const redis = cluster
    ? (cluster.servers[await cluster.masterFor(prefix)] as RedisServer)
    : await startRedisServer({ appendonly: true });
  const redisEnv = cluster ? cluster.env : { REDIS_URL: redis.url };
  const gladly = await startGladlyStandIn({ user: GLADLY_USER, token: GLADLY_TOKEN });
  const klaviyo = await startKlaviyoStandIn({ apiKey: KLAVIYO_KEY });
  const port = await freePort();
  const ingestUrl = `http://127.0.0.1:${port}`;
  const started: ServiceProcess[] = [];
  const spoolDir = mkdtempSync(join(tmpdir(), 'gk-stack-spool-'));

  const ingestEnv = {
    ...redisEnv,
    QUEUE_PREFIX: options.prefix,
    PORT: String(port),
    HOST: '127.0.0.1',
    WEBHOOK_BASIC_AUTH: `${HOOK_USER}:${HOOK_PASSWORD}`,
    WEBHOOK_TOKENS: HOOK_TOKEN,
    ADMIN_USERNAME: ADMIN_USER,
    ADMIN_PASSWORD,
    LOG_LEVEL: logLevel,
    // The spool (webhooks Redis did not store, relayed once it answers) outlives an ingest restart.
    INGEST_SPOOL_PATH: join(spoolDir, 'ingest.spool'),
  };
  const workerEnv = {
    ...redisEnv,
    QUEUE_PREFIX: options.prefix,
    GLADLY_API_URL: gladly.url,
    GLADLY_API_USER: GLADLY_USER,
    GLADLY_API_TOKEN: GLADLY_TOKEN,
    KLAVIYO_API_URL: klaviyo.url,
    KLAVIYO_API_KEY: KLAVIYO_KEY,
    LOG_LEVEL: logLevel,
    ...(options.webhookUrl ? { GLADLY_WEBHOOK_URL: `${ingestUrl}/webhooks/gladly` } : {}),
    ...options.workerEnv,
  };

  const startIngest = async () => {
    const proc = await startServiceProcess({
      script: INGEST_MAIN,
      env: ingestEnv,
      readyUrl: `${ingestUrl}/readyz`,
    });
    started.push(proc);
    return proc;
  };
  // Each worker reaches Gladly through its own counting proxy, so a freeze can wait for a lookup.
  const proxies = new Map<WorkerProcess, CountingProxy>();
  const startWorker = async () => {
    const proxy = await startCountingProxy(gladly.url);
    const proc = await startWorkerProcess({ ...workerEnv, GLADLY_API_URL: proxy.url });
    proxies.set(proc, proxy);
    started.push(proc);
    return proc;
  };

  let ingest = await startIngest();
  const stopIngest = async (how: 'graceful' | 'kill') => {
    if (how === 'graceful') {
      const code = await stopWithin(ingest);
      if (code !== 0) throw new Error(`the ingest exited ${code} on SIGTERM`);
    } else await ingest.kill();
  };
  const workers: WorkerProcess[] = [];
  for (let i = 0; i < options.workers; i++) workers.push(await startWorker());

  const pickIndex = (index?: number) => index ?? Math.floor(Math.random() * workers.length);

  return {
    redis,
    gladly,
    klaviyo,
    prefix: options.prefix,
    ingestUrl,
    webhookAuthorization: `Basic ${basic(HOOK_USER, HOOK_PASSWORD)}`,
    adminAuthorization: `Basic ${basic(ADMIN_USER, ADMIN_PASSWORD)}`,
    ingest: () => ingest,
    workers: () => workers,
    async killWorker(index, restartAfterMs = 0) {
      const i = pickIndex(index);
      const [victim] = workers.splice(i, 1);
      await victim?.kill();
      if (restartAfterMs > 0) await sleep(restartAfterMs);
      workers.push(await startWorker());
    },
    async freezeWorker(ms, freezeOptions = {}) {
      const victim = workers[pickIndex(freezeOptions.index)];
      if (!victim) return;
      const proxy = proxies.get(victim);
      if (freezeOptions.midLookup && proxy) {
        const deadline = Date.now() + 5_000;
        while (proxy.inFlight() === 0 && Date.now() < deadline) await sleep(5);
      }
      victim.child.kill('SIGSTOP');
      await sleep(ms);
      victim.child.kill('SIGCONT');
    },
    stopIngest,
    async startIngest() {
      ingest = await startIngest();
    },
    async restartIngest(how) {
      await stopIngest(how);
      ingest = await startIngest();
    },
    async freezeRedis(ms, during) {
      const probe = new Redis(redis.url, { maxRetriesPerRequest: 1 });
      const info = await probe.info('server').finally(() => probe.disconnect());
      const pid = Number(/^process_id:(\d+)/m.exec(info)?.[1]);
      if (!pid) throw new Error('redis-server did not say its process id');
      process.kill(pid, 'SIGSTOP');
      try {
        await sleep(ms);
        await during?.();
      } finally {
        process.kill(pid, 'SIGCONT');
      }
    },
    async killRedis(downMs) {
      await redis.kill();
      await sleep(downMs);
      await redis.restart();
    },
    monitor() {
      const connection = createWorkerConnection(
        cluster ? cluster.target : { url: redis.url },
        'test-monitor',
      );
      const queues = createQueues(connection, prefix);
      return {
        queues,
        connection,
        async counts() {
          const [transitions, deliveries, customerChanges] = await Promise.all(
            [queues.transitions, queues.deliveries, queues.customerChanges].map((q) =>
              q.getJobCounts(...PENDING_STATES, 'completed', 'failed'),
            ),
          );
          const all = [transitions, deliveries, customerChanges] as Record<string, number>[];
          const idle = all.every((c) => PENDING_STATES.every((s) => (c[s] ?? 0) === 0));
          return {
            transitions: transitions ?? {},
            deliveries: deliveries ?? {},
            customerChanges: customerChanges ?? {},
            idle,
          };
        },
        async close() {
          await closeQueues(queues);
          connection.disconnect();
        },
      };
    },
    output: () => started.map((p) => p.output()).join('\n'),
    async stopServices() {
      const codes = [await stopWithin(ingest)];
      for (const w of workers) codes.push(await stopWithin(w));
      return codes;
    },
    async close() {
      for (const p of started) await p.kill();
      for (const proxy of proxies.values()) await proxy.close();
      await Promise.all([gladly.close(), klaviyo.close()]);
      await (cluster ? cluster.stop() : redis.stop());
      rmSync(spoolDir, { recursive: true, force: true });
    },
  };
}
