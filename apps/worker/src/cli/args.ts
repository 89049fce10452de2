import { parseArgs } from 'node:util';
import { QueueName } from '@gk/queue';

export const USAGE = `Usage: npm run jobs -- <command> [options]      (the worker package's bin: gk-jobs)

Look at and retry the bridge's BullMQ jobs in Redis. Emails are always shown masked.

Commands:
  counts                    jobs per queue and state
  failed                    failed jobs, newest first, with their failure reason
  retry <job-id>...         retry these failed jobs (ids as "failed" shows them)
  retry --all               retry every failed job
  retry --reason <regex>    retry the failed jobs whose reason matches
  spool list                the ingest spool's dead-lettered entries (run where the spool volume is)
  spool requeue <id>...     store these dead-lettered entries in their queues (or --all)
  spool drop <id>...        delete these dead-lettered entries (or --all)
  profiles stuck            addresses held "in conversation" longer than STUCK_AFTER_DAYS (default 14),
                            with their open conversations (emails masked; the id names the address)
  profiles stuck --close <id>...
                            send the closing event ("not in conversation") to these addresses; with
                            --close alone on a terminal, asks about each listed address

Options:
  --queue <name>     transitions, deliveries or customer-changes (default: all)
  --reason <regex>   only failed jobs whose reason matches (case-insensitive JavaScript regex)
  --limit <n>        failed: show at most n jobs (default 50)
  --spool <path>     spool: the spool file (default INGEST_SPOOL_PATH, else .data/spool/ingest-<PORT>.spool);
                     its dead-letter file is <path>.dead
  --json             one JSON document on stdout, for scripts
  -h, --help         show this text

Environment (the same as the services): REDIS_URL, REDIS_CLUSTER_NODES, QUEUE_PREFIX;
for spool: INGEST_SPOOL_PATH (and PORT for its default); for profiles: STUCK_AFTER_DAYS.

Exit status: 0 done; 1 Redis or configuration error, or a job to retry was not found or not
failed; 2 usage error.

Examples:
  npm run jobs -- counts
  npm run jobs -- failed --queue deliveries --json
  npm run jobs -- retry --reason "klaviyo 400"
  npm run jobs -- retry d-7Qk2mLxT1aVb0cD9fGh3w-0a1b2c3d4e5f60718293a4b5
  npm run jobs -- spool list
  npm run jobs -- spool requeue 3f9a1c77e2
  npm run jobs -- profiles stuck
  npm run jobs -- profiles stuck --close 5d41402abc4b2a76b9719d91`;

export type QueueSelection = readonly QueueName[];

export type CliCommand =
  | { kind: 'help' }
  | { kind: 'counts'; queues: QueueSelection; json: boolean }
  | { kind: 'failed'; queues: QueueSelection; reason?: RegExp; limit: number; json: boolean }
  | {
      kind: 'retry';
      queues: QueueSelection;
      json: boolean;
      target: { ids: string[] } | { all: true } | { reason: RegExp };
    }
  | { kind: 'spool-list'; spool?: string; json: boolean }
  | { kind: 'spool-requeue'; spool?: string; json: boolean; target: SpoolTarget }
  | { kind: 'spool-drop'; spool?: string; json: boolean; target: SpoolTarget }
  /** `close`: ids named on the command line, or `ask` (each listed address, on a terminal). */
  | { kind: 'profiles-stuck'; json: boolean; close?: { ids: string[] } | { ask: true } };

export type SpoolTarget = { ids: string[] } | { all: true };

/** A mistake in how the command was called: printed with the usage text, exit status 2. */
export class UsageError extends Error {
  override name = 'UsageError';
}

const ALL_QUEUES: QueueSelection = Object.values(QueueName);
const DEFAULT_LIMIT = 50;

function queuesFrom(value: string | undefined): QueueSelection {
  if (value === undefined) return ALL_QUEUES;
  const queue = ALL_QUEUES.find((q) => q === value);
  if (!queue) throw new UsageError(`--queue must be one of ${ALL_QUEUES.join(', ')} (got "${value}")`);
  return [queue];
}

function reasonFrom(value: string | undefined): RegExp | undefined {
  if (value === undefined) return undefined;
  if (value.trim() === '') throw new UsageError('--reason needs a pattern');
  try {
    return new RegExp(value, 'i');
  } catch (err) {
    throw new UsageError(`--reason is not a valid regular expression: ${(err as Error).message}`);
  }
}

function limitFrom(value: string | undefined): number {
  if (value === undefined) return DEFAULT_LIMIT;
  const n = Number(value);
  if (!/^\d+$/.test(value) || !Number.isSafeInteger(n) || n < 1) {
    throw new UsageError(`--limit must be a whole number of at least 1 (got "${value}")`);
  }
  return n;
}

/** Turns `process.argv.slice(2)` into a command; throws UsageError on anything it cannot use. */
export function parseCliArgs(argv: readonly string[]): CliCommand {
  let parsed: ReturnType<typeof parse>;
  try {
    parsed = parse(argv);
  } catch (err) {
    // node:util's messages are clear ("Unknown option '--x'"); drop its "To specify…" hints.
    throw new UsageError((err as Error).message.split('. To ')[0] ?? 'invalid arguments');
  }
  const { values, positionals } = parsed;
  if (values.help) return { kind: 'help' };
  const [command, ...rest] = positionals;
  if (command === undefined)
    throw new UsageError('a command is required: counts, failed, retry, spool or profiles');
  if (command === 'spool') return spoolCommand(rest, values);
  if (command === 'profiles') return profilesCommand(rest, values);
  if (values.close) throw new UsageError(`--close does not apply to "${command}"`);
  if (values.spool !== undefined) throw new UsageError(`--spool does not apply to "${command}"`);

  const queues = queuesFrom(values.queue);
  const json = values.json ?? false;
  const reason = reasonFrom(values.reason);
  const refuse = (option: string, allowed: boolean) => {
    if (!allowed) throw new UsageError(`${option} does not apply to "${command}"`);
  };

  switch (command) {
    case 'counts':
      if (rest.length > 0) throw new UsageError(`"counts" takes no arguments (got "${rest.join(' ')}")`);
      refuse('--reason', reason === undefined);
      refuse('--limit', values.limit === undefined);
      refuse('--all', !values.all);
      return { kind: 'counts', queues, json };
    case 'failed':
      if (rest.length > 0) throw new UsageError(`"failed" takes no arguments (got "${rest.join(' ')}")`);
      refuse('--all', !values.all);
      return {
        kind: 'failed',
        queues,
        limit: limitFrom(values.limit),
        json,
        ...(reason ? { reason } : {}),
      };
    case 'retry': {
      refuse('--limit', values.limit === undefined);
      const ways = [rest.length > 0, values.all === true, reason !== undefined].filter(Boolean).length;
      if (ways !== 1) {
        throw new UsageError('retry needs exactly one of: job ids, --all, or --reason <regex>');
      }
      const target = reason ? { reason } : values.all ? ({ all: true } as const) : { ids: rest };
      return { kind: 'retry', queues, json, target };
    }
    default:
      throw new UsageError(`unknown command "${command}": use counts, failed, retry, spool or profiles`);
  }
}

function profilesCommand(rest: readonly string[], values: ReturnType<typeof parse>['values']): CliCommand {
  const [sub, ...ids] = rest;
  for (const option of ['queue', 'reason', 'limit', 'spool'] as const) {
    if (values[option] !== undefined) throw new UsageError(`--${option} does not apply to "profiles"`);
  }
  if (values.all) throw new UsageError('--all does not apply to "profiles": name the ids to close');
  if (sub !== 'stuck') throw new UsageError(`profiles needs stuck (got "${sub ?? ''}")`);
  const json = values.json ?? false;
  if (!values.close) {
    if (ids.length > 0)
      throw new UsageError(`"profiles stuck" takes ids only with --close (got "${ids.join(' ')}")`);
    return { kind: 'profiles-stuck', json };
  }
  if (ids.length === 0 && json) throw new UsageError('profiles stuck --close --json needs the ids to close');
  return { kind: 'profiles-stuck', json, close: ids.length > 0 ? { ids } : { ask: true } };
}

function spoolCommand(rest: readonly string[], values: ReturnType<typeof parse>['values']): CliCommand {
  const [sub, ...ids] = rest;
  if (values.close) throw new UsageError('--close does not apply to "spool"');
  for (const option of ['queue', 'reason', 'limit'] as const) {
    if (values[option] !== undefined) throw new UsageError(`--${option} does not apply to "spool"`);
  }
  const json = values.json ?? false;
  const spool = values.spool;
  if (spool !== undefined && spool.trim() === '') throw new UsageError('--spool needs a path');
  const where = spool === undefined ? {} : { spool };
  switch (sub) {
    case 'list':
      if (ids.length > 0 || values.all) throw new UsageError('"spool list" takes no ids and no --all');
      return { kind: 'spool-list', json, ...where };
    case 'requeue':
    case 'drop': {
      if (ids.length > 0 === (values.all === true)) {
        throw new UsageError(`spool ${sub} needs exactly one of: entry ids, or --all`);
      }
      const target: SpoolTarget = values.all ? { all: true } : { ids };
      return sub === 'requeue'
        ? { kind: 'spool-requeue', json, target, ...where }
        : { kind: 'spool-drop', json, target, ...where };
    }
    default:
      throw new UsageError(`spool needs list, requeue or drop (got "${sub ?? ''}")`);
  }
}

function parse(argv: readonly string[]) {
  return parseArgs({
    args: [...argv],
    allowPositionals: true,
    strict: true,
    options: {
      queue: { type: 'string' },
      reason: { type: 'string' },
      limit: { type: 'string' },
      all: { type: 'boolean' },
      json: { type: 'boolean' },
      spool: { type: 'string' },
      close: { type: 'boolean' },
      help: { type: 'boolean', short: 'h' },
    },
  });
}
