import { EVENTS_WINDOW_MS, GladlyError, streamGladlyEvents } from '@gk/gladly';
import { openBridgeQueues } from '@gk/queue';
import {
  ConfigError,
  envUrl,
  parseEnv,
  REDIS_SECRETS,
  redisEnvShape,
  required,
  requiredSecret,
  waitForRedis,
} from '@gk/runtime';
import { z } from 'zod';
import {
  BACKFILL_USAGE,
  type BackfillCommand,
  describeDuration,
  parseBackfillArgs,
  UsageError,
} from './backfill-args.js';
import { BackfillFailure, type BackfillSummary, backfillEvents } from './backfill-events.js';

export const EXIT = { ok: 0, failed: 1, usage: 2 } as const;

export interface CliIo {
  stdout: (text: string) => void;
  stderr: (text: string) => void;
}

export interface BackfillCliOptions {
  now?: () => Date;
  connectTimeoutMs?: number;
  /** How often a progress line goes to stderr. Default 2 s. */
  progressEveryMs?: number;
}

const BackfillEnv = z.object({
  ...redisEnvShape,
  GLADLY_API_URL: envUrl().pipe(
    z.string({ message: 'is required: an http(s) URL such as https://acme.gladly.com' }),
  ),
  GLADLY_API_USER: required("the Gladly API user's email"),
  GLADLY_API_TOKEN: requiredSecret('a Gladly API token'),
});

const BACKFILL_SECRETS = [...REDIS_SECRETS, 'GLADLY_API_TOKEN'];

/** The whole CLI: parses, connects, reads Gladly's events, stores the transitions, answers an exit status. */
export async function runBackfillCli(
  argv: readonly string[],
  env: NodeJS.ProcessEnv,
  io: CliIo,
  options: BackfillCliOptions = {},
): Promise<number> {
  const now = options.now ?? (() => new Date());
  let command: BackfillCommand;
  try {
    command = parseBackfillArgs(argv, now());
  } catch (err) {
    if (!(err instanceof UsageError)) throw err;
    io.stderr(`gk-backfill: ${err.message}\n\n${BACKFILL_USAGE}\n`);
    return EXIT.usage;
  }
  if (command.kind === 'help') {
    io.stdout(`${BACKFILL_USAGE}\n`);
    return EXIT.ok;
  }

  let config: z.infer<typeof BackfillEnv>;
  try {
    config = parseEnv(BackfillEnv, env, { secrets: BACKFILL_SECRETS });
  } catch (err) {
    if (!(err instanceof ConfigError)) throw err;
    io.stderr(`gk-backfill: ${err.message}\n`);
    return EXIT.failed;
  }

  const until = now();
  // A few milliseconds pass before Gladly sees the request: keep `startAt` inside its window.
  const startAt = new Date(Math.max(command.since.getTime(), until.getTime() - EVENTS_WINDOW_MS + 5_000));
  const bridge = openBridgeQueues(
    { url: config.REDIS_URL, clusterNodes: config.REDIS_CLUSTER_NODES, prefix: config.QUEUE_PREFIX },
    'producer',
    'backfill-cli',
  );
  const { connection, queues } = bridge;
  connection.on('error', () => {
    // Reported once below; ioredis would otherwise print every reconnect attempt.
  });
  const header = {
    since: startAt.toISOString(),
    until: until.toISOString(),
    gladly: config.GLADLY_API_URL,
  };
  try {
    try {
      await waitForRedis(connection, options.connectTimeoutMs ?? 5_000);
    } catch (err) {
      io.stderr(`gk-backfill: Redis unreachable: ${(err as Error).message}\n`);
      return EXIT.failed;
    }
    io.stderr(
      `gk-backfill: reading ${config.GLADLY_API_URL}/api/v1/events from ${header.since} (${describeDuration(until.getTime() - startAt.getTime())} back)${command.dryRun ? ', dry run: nothing will be stored' : ''}\n`,
    );
    const progressEveryMs = options.progressEveryMs ?? 2_000;
    let lastProgress = Date.now();
    const lines = streamGladlyEvents(
      { baseUrl: config.GLADLY_API_URL, user: config.GLADLY_API_USER, token: config.GLADLY_API_TOKEN },
      { startAt, entities: ['CONVERSATION'] },
    );
    const summary = await backfillEvents(lines, {
      queues,
      dryRun: command.dryRun,
      now,
      onProgress: (s) => {
        if (Date.now() - lastProgress < progressEveryMs) return;
        lastProgress = Date.now();
        io.stderr(`gk-backfill: ${progressLine(s)}\n`);
      },
    });
    io.stdout(
      `${command.json ? JSON.stringify({ ...header, ...summary }, null, 2) : formatSummary(summary)}\n`,
    );
    return EXIT.ok;
  } catch (err) {
    const cause = err instanceof BackfillFailure ? err.cause : err;
    const where = cause instanceof GladlyError ? 'Gladly' : 'Redis';
    io.stderr(`gk-backfill: ${where}: ${(cause as Error).message}\n`);
    if (err instanceof BackfillFailure) {
      io.stderr(`gk-backfill: stopped part way; done so far (kept): ${progressLine(err.summary)}\n`);
      io.stderr('gk-backfill: run it again: what is stored already is counted as already present\n');
    }
    return EXIT.failed;
  } finally {
    await bridge.close();
  }
}

function progressLine(s: Readonly<BackfillSummary>): string {
  const stored = s.dryRun ? `${s.missing} to enqueue` : `${s.enqueued} enqueued`;
  return `read ${s.read}, transitions ${s.transitions}: ${stored}, ${s.alreadyPresent} already present; ${s.invalid} invalid`;
}

/** The human summary: what was read, what was stored, what was skipped and why. */
export function formatSummary(s: BackfillSummary): string {
  const lines = [
    `Read ${s.read} event${s.read === 1 ? '' : 's'} from Gladly: ${s.transitions} conversation transition${s.transitions === 1 ? '' : 's'}.`,
    s.dryRun
      ? `  would enqueue:    ${s.missing}   (dry run: nothing stored)`
      : `  enqueued:         ${s.enqueued}`,
    `  already present:  ${s.alreadyPresent}   (received by webhook or an earlier backfill)`,
  ];
  const skipped = Object.entries(s.skippedByType).sort(([a], [b]) => a.localeCompare(b));
  const skippedTotal = skipped.reduce((n, [, c]) => n + c, 0);
  lines.push(
    `  skipped:          ${skippedTotal}${skippedTotal ? '   (types the bridge does not use)' : ''}`,
  );
  for (const [type, count] of skipped) lines.push(`    ${type}: ${count}`);
  lines.push(`  invalid lines:    ${s.invalid}`);
  for (const { line, reason } of s.invalidLines) lines.push(`    line ${line}: ${reason}`);
  if (s.invalid > s.invalidLines.length) lines.push(`    … and ${s.invalid - s.invalidLines.length} more`);
  return lines.join('\n');
}
