import {
  type BridgeQueues,
  closeQueues,
  createProducerConnection,
  createQueues,
  queuePrefix,
} from '@gk/queue';
import { ConfigError, parseEnv, redisEnvShape, waitForRedis } from '@gk/runtime';
import { z } from 'zod';
import { type CliCommand, parseCliArgs, USAGE, UsageError } from './args.js';
import { countJobs, listFailed, retryFailed } from './failed-jobs.js';
import { formatCounts, formatFailed, formatRetry } from './format.js';

export const EXIT = { ok: 0, failed: 1, usage: 2 } as const;

export interface CliIo {
  stdout: (text: string) => void;
  stderr: (text: string) => void;
}

const CliEnv = z.object(redisEnvShape);

/** Where the CLI connects, for messages: never the password of a redis:// URL. */
export function describeTarget(url: string, clusterNodes: readonly string[]): string {
  if (clusterNodes.length > 0) return `cluster ${clusterNodes.join(',')}`;
  try {
    const u = new URL(url);
    if (u.password) u.password = '***';
    return u.toString();
  } catch {
    return 'REDIS_URL';
  }
}

async function execute(command: Exclude<CliCommand, { kind: 'help' }>, queues: BridgeQueues, io: CliIo) {
  const out = (json: unknown, text: string) =>
    io.stdout(`${command.json ? JSON.stringify(json, null, 2) : text}\n`);
  switch (command.kind) {
    case 'counts': {
      const counts = await countJobs(queues, command.queues);
      out(counts, formatCounts(counts));
      return EXIT.ok;
    }
    case 'failed': {
      const list = await listFailed(queues, command.queues, {
        limit: command.limit,
        ...(command.reason ? { reason: command.reason } : {}),
      });
      out(list, formatFailed(list, command.reason));
      return EXIT.ok;
    }
    case 'retry': {
      const report = await retryFailed(queues, command.queues, command.target);
      out(report, formatRetry(report));
      // Naming a job that cannot be retried is an error a script should notice.
      return report.refused.length > 0 ? EXIT.failed : EXIT.ok;
    }
  }
}

/** The whole CLI: parses, connects, runs one command, answers an exit status. */
export async function runJobsCli(
  argv: readonly string[],
  env: NodeJS.ProcessEnv,
  io: CliIo,
  options: { connectTimeoutMs?: number } = {},
): Promise<number> {
  let command: CliCommand;
  try {
    command = parseCliArgs(argv);
  } catch (err) {
    if (!(err instanceof UsageError)) throw err;
    io.stderr(`gk-jobs: ${err.message}\n\n${USAGE}\n`);
    return EXIT.usage;
  }
  if (command.kind === 'help') {
    io.stdout(`${USAGE}\n`);
    return EXIT.ok;
  }

  let config: z.infer<typeof CliEnv>;
  try {
    config = parseEnv(CliEnv, env);
  } catch (err) {
    if (!(err instanceof ConfigError)) throw err;
    io.stderr(`gk-jobs: ${err.message}\n`);
    return EXIT.failed;
  }

  const cluster = config.REDIS_CLUSTER_NODES.length > 0;
  const target = describeTarget(config.REDIS_URL, config.REDIS_CLUSTER_NODES);
  const connection = createProducerConnection(
    { url: config.REDIS_URL, clusterNodes: config.REDIS_CLUSTER_NODES },
    'jobs-cli',
  );
  connection.on('error', () => {
    // Reported once below; ioredis would otherwise print every reconnect attempt.
  });
  let queues: BridgeQueues | undefined;
  try {
    try {
      await waitForRedis(connection, options.connectTimeoutMs ?? 5_000);
    } catch (err) {
      io.stderr(`gk-jobs: Redis unreachable at ${target}: ${(err as Error).message}\n`);
      return EXIT.failed;
    }
    queues = createQueues(connection, queuePrefix(config.QUEUE_PREFIX, cluster));
    return await execute(command, queues, io);
  } catch (err) {
    io.stderr(`gk-jobs: ${(err as Error).message}\n`);
    return EXIT.failed;
  } finally {
    if (queues) await closeQueues(queues);
    await connection.quit().catch(() => connection.disconnect());
  }
}
