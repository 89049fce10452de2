import { setTimeout as delay } from 'node:timers/promises';
import { createGladlyClient } from '@gk/gladly';
import { createKlaviyoClient } from '@gk/klaviyo';
import { createStateConnection, openBridgeConnection } from '@gk/queue';
import {
  closeServer,
  createHealthServer,
  createLogger,
  createMetricsRegistry,
  handleShutdownSignals,
  listen,
  loadConfigOrExit,
  Readiness,
  redisReachable,
  warnIfRedisNotDurable,
  watchRedisConnection,
} from '@gk/runtime';
import { loadWorkerConfig } from './config.js';
import { PseudonymKeyMismatch } from './state/pseudonym-key.js';
import { createWorkers } from './workers.js';

const config = loadConfigOrExit('worker', () => loadWorkerConfig());
const logger = createLogger({ name: 'worker', level: config.logLevel });
if (config.sandbox) logger.warn('sandbox mode (BRIDGE_SANDBOX=true): development credentials are accepted');
// BullMQ's connection (it duplicates it for its blocking reads), and one for our own commands,
// which time out instead of waiting for a Redis that does not answer.
const { connection, prefix } = openBridgeConnection(config.redis, 'worker');
const stateConnection = createStateConnection(
  { url: config.redis.url, clusterNodes: config.redis.clusterNodes },
  'worker-state',
);
watchRedisConnection(connection, logger);

const registry = createMetricsRegistry('worker');
const bridge = createWorkers({
  config,
  connection,
  stateConnection,
  prefix,
  logger,
  registry,
  gladly: createGladlyClient({
    baseUrl: config.gladly.baseUrl,
    user: config.gladly.user,
    token: config.gladly.token,
  }),
  klaviyo: createKlaviyoClient({
    baseUrl: config.klaviyo.baseUrl,
    apiKey: config.klaviyo.apiKey,
    revision: config.klaviyo.revision,
  }),
});

const readiness = new Readiness()
  // A key beside the queues' (same hash tag): on a cluster, the master holding them answers.
  .add('redis', redisReachable(connection, 1_000, bridge.queues.transitions.toKey('ready-probe')))
  .add('klaviyo', bridge.klaviyoCredentials.check)
  .add('gladly', bridge.gladlyCredentials.check);
const server = createHealthServer({
  readiness,
  registry,
  warnings: () => bridge.selfHealing.warnings(),
  ...(config.sandbox ? { mode: 'sandbox' } : {}),
});

const disconnectRedis = () => {
  connection.disconnect();
  stateConnection.disconnect();
};

// Every step is bounded and forced past its bound, so the process exits 0 within the deadline
// even when Redis does not answer (on a cluster whose master is away, BullMQ's close() waits
// for an `end` event that never comes). Jobs cut short are re-run elsewhere once their lock lapses.
handleShutdownSignals({
  logger,
  deadlineMs: 25_000,
  steps: [
    { name: 'mark not ready', timeoutMs: 100, run: () => readiness.markShuttingDown() },
    {
      name: 'finish in-flight jobs and close workers',
      timeoutMs: 15_000,
      run: () => bridge.close(),
      force: () => {
        bridge.forceClose();
        disconnectRedis();
      },
    },
    {
      name: 'close health server',
      timeoutMs: 2_000,
      run: () => closeServer(server),
      force: () => server.closeAllConnections(),
    },
    {
      name: 'close redis connections',
      timeoutMs: 2_000,
      run: async () => {
        await Promise.all(
          [connection, stateConnection].map((c) =>
            c.status === 'end' ? undefined : c.quit().then(() => undefined),
          ),
        );
      },
      force: disconnectRedis,
    },
  ],
});

await listen(server, config.port, config.host);
void warnIfRedisNotDurable(connection, logger);

// The email pseudonym key must be the one this Redis's job ids and keys were made with: a worker
// with another one exits 1 (before taking any job when Redis answers at start). Redis not
// answering is no reason to stop: the check goes on in the background until it gets an answer.
async function checkPseudonymKey(): Promise<void> {
  for (let warned = false; ; ) {
    try {
      await bridge.pseudonyms.get();
      return;
    } catch (err) {
      if (err instanceof PseudonymKeyMismatch) {
        process.stderr.write(`worker: refusing to start: ${err.message}\n`);
        bridge.forceClose();
        disconnectRedis();
        process.exit(1);
      }
      if (!warned) logger.warn({ err: (err as Error).message }, 'could not read the email pseudonym key yet');
      warned = true;
      await delay(2_000);
    }
  }
}
await Promise.race([checkPseudonymKey(), delay(3_000)]);
bridge.run();
logger.info(
  {
    port: config.port,
    concurrency: config.concurrency,
    gladlyRatePerSecond: config.gladly.ratePerSecond,
    klaviyoRatePerSecond: config.klaviyo.ratePerSecond,
    klaviyoRevision: config.klaviyo.revision,
    klaviyoCreateProfiles: config.klaviyo.createProfiles,
    customerCacheTtlSeconds: config.gladly.customerCacheTtlSeconds,
    webhookWatchSeconds: config.selfHealing.webhookUrl ? config.selfHealing.watchSeconds : 0,
    reconcileIntervalSeconds: config.selfHealing.reconcileIntervalSeconds,
    reconcileLagSeconds: config.selfHealing.reconcileLagSeconds,
    upstreamMaxPauseSeconds: config.upstreamMaxPauseMs / 1000,
  },
  'worker started',
);
