import { createServer } from 'node:http';
import { openBridgeQueues } from '@gk/queue';
import {
  ConfigError,
  closeServer,
  createLogger,
  handleShutdownSignals,
  listen,
  warnIfRedisNotDurable,
  watchRedisConnection,
} from '@gk/runtime';
import { createApp } from './app.js';
import { type IngestConfig, loadConfig } from './config.js';
import { JobStore } from './store/job-store.js';
import { Spool } from './store/spool.js';

/** Kubernetes' default grace period is 30 s; finishing well within it leaves room for the rest. */
const SHUTDOWN_DEADLINE_MS = 10_000;

function readConfig(): IngestConfig {
  try {
    return loadConfig(process.env);
  } catch (err) {
    if (err instanceof ConfigError) {
      process.stderr.write(`ingest: ${err.message}\n`);
      process.exit(1);
    }
    throw err;
  }
}

async function main(): Promise<void> {
  const config = readConfig();
  const logger = createLogger({
    name: 'ingest',
    level: config.logLevel,
    redactHeaders: [config.webhookAuth.tokenHeader],
  });
  if (config.webhookAuth.disabled)
    logger.warn('webhook authentication is DISABLED (WEBHOOK_AUTH_DISABLED=true)');
  if (config.sandbox) logger.warn('sandbox mode (BRIDGE_SANDBOX=true): development credentials are accepted');
  for (const warning of config.warnings) logger.warn(warning);

  const bridge = openBridgeQueues({ ...config.redis, prefix: config.queuePrefix }, 'producer');
  const { connection, queues, cluster } = bridge;
  watchRedisConnection(connection, logger);
  // Checked once Redis answers; the ingest starts (and says not ready) while it does not.
  connection.once('ready', () => void warnIfRedisNotDurable(connection, logger));

  // The spool is opened before anything listens: entries a previous run left are relayed first.
  let spool: Spool | null = null;
  if (config.spool) {
    try {
      const opened = await Spool.open(config.spool);
      spool = opened.spool;
      logger.info(
        { path: config.spool.path, maxEntries: config.spool.maxEntries, ...opened.report },
        opened.report.rewriteFailed
          ? 'spool opened as it was: rewriting it failed (is the disk full?); relaying what it holds'
          : opened.report.recovered > 0
            ? 'spool opened with entries from a previous run; relaying them to Redis'
            : 'spool opened',
      );
      if (opened.report.corrupt > 0) {
        logger.error(
          { corrupt: opened.report.corrupt },
          'spool records failed their checksum and were dropped',
        );
      }
    } catch (err) {
      process.stderr.write(
        `ingest: cannot open the spool: ${err instanceof Error ? err.message : String(err)}\n`,
      );
      process.exit(1);
    }
  } else {
    logger.warn('spool off (INGEST_SPOOL_ENABLED=false): webhooks are answered 503 while Redis is down');
  }
  const store = new JobStore({
    queues,
    spool,
    logger,
    ...(config.spool?.stallSeconds ? { stallSeconds: config.spool.stallSeconds } : {}),
  });
  connection.on('ready', () => store.nudgeRelay());

  const { app, ops, readiness } = createApp({
    config,
    queues,
    connection,
    logger,
    store,
    separateOps: config.opsPort !== null,
  });
  const server = createServer(app);
  // OPS_PORT: probes and metrics on their own listener, kept off the port Gladly reaches.
  const opsServer = config.opsPort === null ? null : createServer(ops);
  // Gladly's bodies are tiny and it waits at most 15 s: a slower request is not Gladly.
  server.headersTimeout = 10_000;
  server.requestTimeout = 15_000;

  // Every step is bounded and forced past its bound, so the ingest exits 0 within the deadline
  // even when Redis does not answer. What the spool holds stays on disk for the next start.
  let sweep: NodeJS.Timeout | undefined;
  handleShutdownSignals({
    logger,
    deadlineMs: SHUTDOWN_DEADLINE_MS,
    steps: [
      { name: 'mark not ready', timeoutMs: 100, run: () => readiness.markShuttingDown() },
      {
        // Stops accepting and resolves once in-flight requests are answered. A keep-alive socket
        // that goes idle after its last answer would otherwise hold close() for keepAliveTimeout.
        name: 'answer in-flight webhooks and close the server',
        timeoutMs: 4_000,
        run: async () => {
          sweep = setInterval(() => server.closeIdleConnections(), 100);
          sweep.unref();
          await closeServer(server);
          clearInterval(sweep);
        },
        force: () => {
          clearInterval(sweep);
          server.closeAllConnections();
        },
      },
      {
        name: 'close the ops listener',
        timeoutMs: 1_000,
        run: async () => {
          if (opsServer) await closeServer(opsServer);
        },
        force: () => opsServer?.closeAllConnections(),
      },
      { name: 'stop the spool relay', timeoutMs: 2_000, run: () => store.close() },
      {
        name: 'close queues and the redis connection',
        timeoutMs: 2_500,
        run: () => bridge.close(),
        force: () => connection.disconnect(),
      },
    ],
  });

  await listen(server, config.port, config.host);
  if (opsServer && config.opsPort !== null) await listen(opsServer, config.opsPort, config.host);
  logger.info(
    {
      port: config.port,
      opsPort: config.opsPort ?? undefined,
      host: config.host,
      cluster,
      ...(config.sandbox ? { mode: 'sandbox' } : {}),
    },
    'ingest listening',
  );
  store.startRelay();
}

main().catch((err: unknown) => {
  process.stderr.write(`ingest: failed to start: ${err instanceof Error ? err.message : String(err)}\n`);
  process.exit(1);
});
