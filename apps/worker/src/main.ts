import { createGladlyClient } from '@gk/gladly';
import { createKlaviyoClient } from '@gk/klaviyo';
import { openBridgeConnection } from '@gk/queue';
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
import { createWorkers } from './workers.js';

const config = loadConfigOrExit('worker', () => loadWorkerConfig());
const logger = createLogger({ name: 'worker', level: config.logLevel });
if (config.sandbox) logger.warn('sandbox mode (BRIDGE_SANDBOX=true): development credentials are accepted');
const { connection, prefix } = openBridgeConnection(config.redis, 'worker');
watchRedisConnection(connection, logger);

const registry = createMetricsRegistry('worker');
const bridge = createWorkers({
  config,
  connection,
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

handleShutdownSignals({
  logger,
  deadlineMs: 25_000,
  shutdown: async () => {
    readiness.markShuttingDown();
    await bridge.close();
    await closeServer(server);
    await connection.quit().catch(() => connection.disconnect());
  },
});

await listen(server, config.port, config.host);
void warnIfRedisNotDurable(connection, logger);
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
  },
  'worker started',
);
