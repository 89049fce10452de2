import { join, resolve } from 'node:path';
import { type BridgeQueues, deadLetterPath, openBridgeQueues } from '@gk/queue';
import {
  ConfigError,
  envInt,
  envSecret,
  envString,
  parseEnv,
  REDIS_SECRETS,
  redisEnvShape,
  waitForRedis,
} from '@gk/runtime';
import { z } from 'zod';
import { EmailState } from '../state/email-state.js';
import { PseudonymKey } from '../state/pseudonym-key.js';
import { type CliCommand, parseCliArgs, USAGE, UsageError } from './args.js';
import { countJobs, listFailed, retryFailed } from './failed-jobs.js';
import { formatCounts, formatFailed, formatRetry } from './format.js';
import {
  dropDeadLetters,
  formatDeadLetters,
  formatDrop,
  formatRequeue,
  listDeadLetters,
  requeueDeadLetters,
} from './spool-dead-letters.js';
import { closeStuck, formatClose, formatStuck, listStuck } from './stuck-profiles.js';

export const EXIT = { ok: 0, failed: 1, usage: 2 } as const;

export interface CliIo {
  stdout: (text: string) => void;
  stderr: (text: string) => void;
  /** Asks a yes/no question (a terminal); absent when there is no one to ask. */
  ask?: (question: string) => Promise<boolean>;
}

const CliEnv = z.object({
  ...redisEnvShape,
  /** Where the ingest's spool is (its dead-letter file is beside it); the ingest's own default. */
  INGEST_SPOOL_PATH: envString(),
  PORT: envInt(3000, 1, 65535),
  /** `profiles stuck` lists addresses held "in conversation" longer than this. */
  STUCK_AFTER_DAYS: envInt(14, 0, 3650),
  /** The key of the email pseudonyms, as the worker has it (see PseudonymKey). */
  LOG_EMAIL_HASH_KEY: envSecret(),
});

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

type RedisCommand = Extract<
  CliCommand,
  { kind: 'counts' | 'failed' | 'retry' | 'spool-requeue' | 'profiles-stuck' }
>;

interface RedisContext {
  queues: BridgeQueues;
  emailState: EmailState;
  /** The key of the email pseudonyms (a closing event's job id). */
  pseudonymKey: () => Promise<string>;
  spoolPath: string;
  stuckAfterDays: number;
}

async function execute(command: RedisCommand, ctx: RedisContext, io: CliIo) {
  const { queues, spoolPath } = ctx;
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
    case 'spool-requeue': {
      const report = await requeueDeadLetters(deadLetterPath(spoolPath), queues, command.target);
      out(report, formatRequeue(report));
      return problemsOf(report, io);
    }
    case 'profiles-stuck':
      return profilesStuck(command, ctx, io, out);
  }
}

async function profilesStuck(
  command: Extract<CliCommand, { kind: 'profiles-stuck' }>,
  ctx: RedisContext,
  io: CliIo,
  out: (json: unknown, text: string) => void,
): Promise<number> {
  if (!command.close) {
    const list = await listStuck(ctx.emailState, ctx.stuckAfterDays);
    out(list, formatStuck(list));
    return EXIT.ok;
  }
  let ids: string[];
  if ('ids' in command.close) ids = command.close.ids;
  else {
    // The operator confirms each one: only on a terminal.
    if (!io.ask) {
      io.stderr(
        'gk-jobs: profiles stuck --close without ids asks about each address: run it on a terminal, or name the ids\n',
      );
      return EXIT.usage;
    }
    const list = await listStuck(ctx.emailState, ctx.stuckAfterDays);
    io.stdout(`${formatStuck(list)}\n`);
    ids = [];
    for (const a of list.addresses) {
      const conversations = a.conversations.join(', ') || 'none known';
      if (
        await io.ask(
          `send "not in conversation" to ${a.email} (held ${a.days} days; ${conversations})? [y/N] `,
        )
      )
        ids.push(a.id);
    }
  }
  const report = await closeStuck(ctx.emailState, ctx.queues, ctx.pseudonymKey, ids);
  out(report, formatClose(report));
  for (const id of report.notHeld) io.stderr(`gk-jobs: ${id} is not held "in conversation"; nothing sent\n`);
  return report.notHeld.length > 0 ? EXIT.failed : EXIT.ok;
}

/** Entries not handled go to stderr too, and make the exit status 1: a script should notice. */
function problemsOf(
  report: { refused?: { id: string; reason: string }[]; notFound: string[] },
  io: CliIo,
): number {
  const refused = report.refused ?? [];
  for (const r of refused) io.stderr(`gk-jobs: ${r.id} not requeued: ${r.reason}\n`);
  for (const id of report.notFound) io.stderr(`gk-jobs: no dead-lettered entry ${id}\n`);
  return refused.length + report.notFound.length > 0 ? EXIT.failed : EXIT.ok;
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
    config = parseEnv(CliEnv, env, { secrets: [...REDIS_SECRETS, 'LOG_EMAIL_HASH_KEY'] });
  } catch (err) {
    if (!(err instanceof ConfigError)) throw err;
    io.stderr(`gk-jobs: ${err.message}\n`);
    return EXIT.failed;
  }

  const spoolPath = resolve(
    ('spool' in command ? command.spool : undefined) ??
      config.INGEST_SPOOL_PATH ??
      join('.data', 'spool', `ingest-${config.PORT}.spool`),
  );
  const json = (value: unknown, text: string) =>
    io.stdout(`${command.json ? JSON.stringify(value, null, 2) : text}\n`);
  // The dead-letter file only: no Redis needed.
  try {
    if (command.kind === 'spool-list') {
      const list = await listDeadLetters(deadLetterPath(spoolPath));
      json(list, formatDeadLetters(list));
      return EXIT.ok;
    }
    if (command.kind === 'spool-drop') {
      const report = await dropDeadLetters(deadLetterPath(spoolPath), command.target);
      json(report, formatDrop(report));
      return problemsOf(report, io);
    }
  } catch (err) {
    io.stderr(`gk-jobs: ${(err as Error).message}\n`);
    return EXIT.failed;
  }

  const target = describeTarget(config.REDIS_URL, config.REDIS_CLUSTER_NODES);
  const bridge = openBridgeQueues(
    { url: config.REDIS_URL, clusterNodes: config.REDIS_CLUSTER_NODES, prefix: config.QUEUE_PREFIX },
    'producer',
    'jobs-cli',
  );
  const { connection } = bridge;
  connection.on('error', () => {
    // Reported once below; ioredis would otherwise print every reconnect attempt.
  });
  try {
    try {
      await waitForRedis(connection, options.connectTimeoutMs ?? 5_000);
    } catch (err) {
      io.stderr(`gk-jobs: Redis unreachable at ${target}: ${(err as Error).message}\n`);
      return EXIT.failed;
    }
    // The worker's key, got the way the worker gets it, and only when needed: an address is held
    // only once a worker ran, so the key is in Redis by then (the CLI never makes one up first).
    const pseudonyms = new PseudonymKey(connection, bridge.prefix, config.LOG_EMAIL_HASH_KEY);
    const pseudonymKey = () => pseudonyms.get();
    const emailState = new EmailState(connection, {
      prefix: `${bridge.prefix}:state`,
      leaseMs: 0,
      pseudonymKey,
    });
    return await execute(
      command,
      {
        queues: bridge.queues,
        emailState,
        pseudonymKey,
        spoolPath,
        stuckAfterDays: config.STUCK_AFTER_DAYS,
      },
      io,
    );
  } catch (err) {
    io.stderr(`gk-jobs: ${(err as Error).message}\n`);
    return EXIT.failed;
  } finally {
    await bridge.close();
  }
}
