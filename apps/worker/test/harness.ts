import { Writable } from 'node:stream';
import { type TransitionType, toTransition } from '@gk/domain';
import { createGladlyClient } from '@gk/gladly';
import { createKlaviyoClient } from '@gk/klaviyo';
import {
  type BridgeQueues,
  closeQueues,
  createQueues,
  createWorkerConnection,
  type RedisConnection,
  type RedisTarget,
  transitionJobId,
} from '@gk/queue';
import { createLogger, createMetricsRegistry } from '@gk/runtime';
import {
  type GladlyStandIn,
  type KlaviyoStandIn,
  startGladlyStandIn,
  startKlaviyoStandIn,
} from '@gk/stand-ins';
import { captureLogOutput, registerTestSecrets, uniquePrefix } from '@gk/testing';
import type { Registry } from 'prom-client';
import { loadWorkerConfig, type WorkerConfig } from '../src/config.js';
import { type BridgeWorkers, createWorkers } from '../src/workers.js';

export const GLADLY_USER = 'api-user@acme.test';
export const GLADLY_TOKEN = 'gladly-test-token-3f9a';
export const KLAVIYO_KEY = 'pk_test_klaviyo_5d2c';
registerTestSecrets(GLADLY_TOKEN, KLAVIYO_KEY);

export interface Harness {
  gladly: GladlyStandIn;
  klaviyo: KlaviyoStandIn;
  config: WorkerConfig;
  prefix: string;
  producer: BridgeQueues;
  bridge: BridgeWorkers;
  registry: Registry;
  logLines: string[];
  /** Adds a transition the way the ingest does (same job id derivation). */
  send(
    type: TransitionType,
    opts: { id: string; customerId: string; at: string; conversationId?: string },
  ): Promise<void>;
  close(): Promise<void>;
}

/** `redis`: a URL, or a target from useTestRedis() (a single server or a cluster). */
export async function startHarness(
  redis: string | RedisTarget,
  env: Record<string, string> = {},
  timings: Parameters<typeof createWorkers>[0]['timings'] = {},
): Promise<Harness> {
  const gladly = await startGladlyStandIn({ user: GLADLY_USER, token: GLADLY_TOKEN });
  const klaviyo = await startKlaviyoStandIn({ apiKey: KLAVIYO_KEY });
  // A test may point the worker at jobs it left in Redis beforehand (e.g. with BullMQ 5).
  const prefix = env.QUEUE_PREFIX ?? uniquePrefix('worker');
  const target: RedisTarget = typeof redis === 'string' ? { url: redis } : redis;
  const config = loadWorkerConfig({
    REDIS_URL: target.url,
    REDIS_CLUSTER_NODES: target.clusterNodes?.join(',') ?? '',
    QUEUE_PREFIX: prefix,
    GLADLY_API_URL: gladly.url,
    GLADLY_API_USER: GLADLY_USER,
    GLADLY_API_TOKEN: GLADLY_TOKEN,
    KLAVIYO_API_URL: klaviyo.url,
    KLAVIYO_API_KEY: KLAVIYO_KEY,
    GLADLY_RATE_LIMIT_PER_SECOND: '0',
    KLAVIYO_RATE_LIMIT_PER_SECOND: '0',
    WORKER_CONCURRENCY: '10',
    ...env,
  });
  const logLines: string[] = [];
  const sink = new Writable({
    write(chunk, _enc, cb) {
      captureLogOutput('worker harness', String(chunk));
      logLines.push(...String(chunk).split('\n').filter(Boolean));
      cb();
    },
  });
  const logger = createLogger({ name: 'worker-test', level: 'debug', destination: sink });
  const connection: RedisConnection = createWorkerConnection(target);
  const producerConnection: RedisConnection = createWorkerConnection(target, 'test-producer');
  const registry = createMetricsRegistry('worker');
  const bridge = createWorkers({
    config,
    connection,
    prefix,
    logger,
    registry,
    gladly: createGladlyClient({
      baseUrl: gladly.url,
      user: GLADLY_USER,
      token: GLADLY_TOKEN,
      timeoutMs: 2_000,
    }),
    klaviyo: createKlaviyoClient({ baseUrl: klaviyo.url, apiKey: KLAVIYO_KEY, timeoutMs: 2_000 }),
    timings: { authPauseMs: 300, backoff: { baseMs: 50, capMs: 500 }, ...timings },
  });
  const producer = createQueues(producerConnection, prefix);
  bridge.run();
  return {
    gladly,
    klaviyo,
    config,
    prefix,
    producer,
    bridge,
    registry,
    logLines,
    async send(type, { id, customerId, at, conversationId = `conv-${customerId}` }) {
      const transition = toTransition(
        { id, type, timestamp: at, content: { customerId, conversationId } },
        new Date(),
      );
      await producer.transitions.add('transition', transition, { jobId: transitionJobId(id) });
    },
    async close() {
      await bridge.close();
      await closeQueues(producer);
      connection.disconnect();
      producerConnection.disconnect();
      await Promise.all([gladly.close(), klaviyo.close()]);
    },
  };
}

/** The value of one sample of a metric, or 0 when it has not been seen. */
export async function metricValue(registry: Registry, name: string, labels: Record<string, string> = {}) {
  const metric = await registry.getSingleMetric(name)?.get();
  const sample = metric?.values.find((v) =>
    Object.entries(labels).every(([k, val]) => (v.labels as Record<string, unknown>)[k] === val),
  );
  return sample?.value ?? 0;
}
