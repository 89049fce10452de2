/** Gladly's Events API keeps the last 24 hours: a backfill cannot reach further back. */
export const MAX_BACKFILL_MS = 24 * 3600 * 1000;

export const BACKFILL_USAGE = `Usage: npm run backfill -- --since <time> [--dry-run] [--json]
       gk-backfill --since <time> [--dry-run] [--json]

Reads Gladly's Events API (GET {GLADLY_API_URL}/api/v1/events?startAt=…&entities=CONVERSATION)
from <time> until now and stores every CONVERSATION/CREATED, REOPENED and CLOSED event as the
webhook would have: same job ids, so events already received are counted as already present and
never sent twice. Other event types are skipped (counted by type).

  --since <time>  an ISO 8601 time with a zone (2026-11-20T14:00:00Z), or a duration back from
                  now: 90s, 30m, 2h, 1h30m. At most 24 h (Gladly keeps no more).
  --dry-run       read and count, store nothing (shows what would be enqueued)
  --json          print the summary as JSON (progress still goes to stderr)
  -h, --help      this text

Environment: GLADLY_API_URL, GLADLY_API_USER, GLADLY_API_TOKEN (as for the worker), REDIS_URL or
REDIS_CLUSTER_NODES, QUEUE_PREFIX. Exit status: 0 done, 1 failed (Gladly, Redis, configuration),
2 usage mistake. Running it again is safe.`;

export type BackfillCommand = { kind: 'help' } | { kind: 'run'; since: Date; dryRun: boolean; json: boolean };

/** A mistake in how the command was called: printed with the usage text, exit status 2. */
export class UsageError extends Error {
  override name = 'UsageError';
}

const DURATION = /^(?:(\d+)h)?(?:(\d+)m)?(?:(\d+)s)?$/;
const ISO_WITH_ZONE = /^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}(:\d{2}(\.\d+)?)?(Z|[+-]\d{2}:\d{2})$/i;

/** `2h`, `30m`, `1h30m`, `90s`, or an ISO time with a zone → the start instant; at most 24 h back. */
export function parseSince(value: string, now: Date): Date {
  const text = value.trim();
  let since: Date;
  const duration = DURATION.exec(text);
  if (text !== '' && duration) {
    const [, h = '0', m = '0', s = '0'] = duration;
    since = new Date(now.getTime() - ((Number(h) * 60 + Number(m)) * 60 + Number(s)) * 1000);
  } else if (ISO_WITH_ZONE.test(text) && Number.isFinite(Date.parse(text))) {
    since = new Date(text);
  } else if (/^\d{4}-\d{2}-\d{2}T/.test(text)) {
    throw new UsageError(`--since ${text}: give the time zone too (2026-11-20T14:00:00Z or +01:00)`);
  } else {
    throw new UsageError(
      `--since must be an ISO 8601 time with a zone or a duration such as 2h or 30m (got "${text}")`,
    );
  }
  const back = now.getTime() - since.getTime();
  if (back < 0) throw new UsageError(`--since ${text} is in the future`);
  if (back > MAX_BACKFILL_MS) {
    throw new UsageError(
      `--since ${text} reaches back ${describeDuration(back)}: Gladly's Events API only keeps the last 24 hours`,
    );
  }
  return since;
}

export function describeDuration(ms: number): string {
  const minutes = Math.round(ms / 60_000);
  const h = Math.floor(minutes / 60);
  const m = minutes % 60;
  return h > 0 ? `${h} h ${m} min` : `${m} min`;
}

/** Turns `process.argv.slice(2)` into a command; throws UsageError on anything it cannot use. */
export function parseBackfillArgs(argv: readonly string[], now: Date): BackfillCommand {
  let since: string | undefined;
  let dryRun = false;
  let json = false;
  for (let i = 0; i < argv.length; i += 1) {
    const arg = argv[i] as string;
    if (arg === '-h' || arg === '--help') return { kind: 'help' };
    if (arg === '--dry-run') dryRun = true;
    else if (arg === '--json') json = true;
    else if (arg === '--since') {
      since = argv[i + 1];
      if (since === undefined || since.startsWith('--'))
        throw new UsageError('--since needs a value, e.g. --since 2h');
      i += 1;
    } else if (arg.startsWith('--since=')) since = arg.slice('--since='.length);
    else throw new UsageError(`unknown argument "${arg}"`);
  }
  if (since === undefined) throw new UsageError('--since is required (how far back to read, at most 24 h)');
  return { kind: 'run', since: parseSince(since, now), dryRun, json };
}
