import { ConfigError, createLogger, handleShutdownSignals } from '@gk/runtime';
import { loadSandboxConfig, type SandboxConfig } from './config.js';
import { createSandbox } from './sandbox.js';

function readConfig(): SandboxConfig {
  try {
    return loadSandboxConfig();
  } catch (err) {
    if (err instanceof ConfigError) {
      process.stderr.write(`sandbox: ${err.message}\n`);
      process.exit(1);
    }
    throw err;
  }
}

const config = readConfig();
const logger = createLogger({ name: 'sandbox', level: config.logLevel });

try {
  const sandbox = await createSandbox({
    port: config.port,
    host: config.host,
    gladly: config.gladly,
    klaviyo: config.klaviyo,
    logger,
  });
  handleShutdownSignals({ logger, deadlineMs: 5_000, shutdown: () => sandbox.close() });
  logger.info(
    {
      url: sandbox.url,
      gladlyApiUrl: sandbox.url,
      klaviyoApiUrl: sandbox.url,
      gladlyRatePerSecond: config.gladly.ratePerSecond,
      klaviyoRatePerSecond: config.klaviyo.ratePerSecond,
      gladlyFailureRate: config.gladly.failureRate,
      klaviyoFailureRate: config.klaviyo.failureRate,
    },
    'sandbox listening: Gladly customer profiles, Klaviyo events and the live page on one port',
  );
} catch (err) {
  process.stderr.write(`sandbox: failed to start: ${err instanceof Error ? err.message : String(err)}\n`);
  process.exit(1);
}
