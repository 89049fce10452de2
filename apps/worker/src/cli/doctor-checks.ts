import { readdir, stat } from 'node:fs/promises';
import { join } from 'node:path';
import { redactEmails } from '@gk/domain';
import { createGladlyWebhooksClient, GladlyError, type GladlyWebhook } from '@gk/gladly';
import {
  findSegmentsByName,
  isSuppressionDefinition,
  type KlaviyoAccountOptions,
  type KlaviyoScope,
  type KlaviyoSegment,
  listMetricNames,
  type ProbeOutcome,
  probeKlaviyoScope,
} from '@gk/klaviyo';
import { deadLetterPath, type RedisConnection } from '@gk/queue';
import type { Queue } from 'bullmq';
import type { WorkerConfig } from '../config.js';
import { describeWebhook } from './gladly-run.js';

/** ✓ works, ✗ broken (non-zero exit), ! unusual or not checkable (exit unaffected). */
export type CheckStatus = 'ok' | 'fail' | 'warn';

export interface CheckResult {
  status: CheckStatus;
  name: string;
  summary: string;
  /** What to do; always given for a ✗. */
  fix?: string;
}

/** The ingest settings the doctor reads (its spool). */
export interface DoctorIngestView {
  spoolPath: string | null;
}

export interface DoctorContext {
  env: NodeJS.ProcessEnv;
  /** null when the configuration does not parse (configError says why). */
  worker: WorkerConfig | null;
  ingest: DoctorIngestView | null;
  configErrors: string[];
  /** NODE_ENV=production (the sandbox route included). */
  production: boolean;
  /** BRIDGE_SANDBOX=true */
  sandbox: boolean;
  /** Variables whose value (from the variable or its `<NAME>_FILE`) is a development default. */
  devCredentialsInUse: string[];
  segmentName: string;
  /** null: Redis unreachable (redisError says why). */
  redis(): Promise<RedisConnection | null>;
  redisError(): string | undefined;
  /** The deliveries queue, opened read-only; null when Redis is unreachable. */
  deliveries(): Promise<Queue | null>;
  now(): number;
  timeoutMs: number;
}

/** One check: a name and a function. Checks run in list order; each returns one or more lines. */
export interface DoctorCheck {
  name: string;
  run(ctx: DoctorContext): Promise<CheckResult | CheckResult[]>;
}

const ok = (name: string, summary: string): CheckResult => ({ status: 'ok', name, summary });
const warn = (name: string, summary: string, fix?: string): CheckResult => ({
  status: 'warn',
  name,
  summary,
  ...(fix ? { fix } : {}),
});
const fail = (name: string, summary: string, fix: string): CheckResult => ({
  status: 'fail',
  name,
  summary,
  fix,
});

const configCheck: DoctorCheck = {
  name: 'configuration',
  async run(ctx) {
    if (ctx.configErrors.length > 0) {
      return fail(
        'configuration',
        `does not parse:\n${ctx.configErrors.join('\n')}`,
        'set the variables named above in the environment or .env (see .env.example)',
      );
    }
    return ok('configuration', 'worker and ingest settings parse');
  },
};

/**
 * The configuration itself refuses development credentials and short secrets with
 * NODE_ENV=production outside the sandbox route (runtime's checkDevCredentials); this line says
 * which, apart from the other configuration problems, or which dev defaults a local run uses.
 */
const secretsCheck: DoctorCheck = {
  name: 'secrets',
  async run(ctx) {
    const refused = ctx.configErrors.filter((line) =>
      /development default|shorter than \d+ characters/.test(line),
    );
    if (refused.length > 0) {
      const names = [...new Set(refused.map((line) => /^\w+: (\w+):/.exec(line)?.[1] ?? line))];
      return fail(
        'secrets',
        `development or placeholder credentials with NODE_ENV=production: ${names.join(', ')}`,
        'set real, long random values for these variables (BRIDGE_SANDBOX=true only for the sandbox)',
      );
    }
    if (ctx.configErrors.length > 0) return warn('secrets', 'not checked: configuration invalid');
    if (ctx.production && !ctx.sandbox)
      return ok('secrets', 'production: no development default or short secret');
    if (ctx.devCredentialsInUse.length === 0) return ok('secrets', 'no development defaults in use');
    return ok(
      'secrets',
      `development defaults in use (${ctx.devCredentialsInUse.join(', ')}): fine ${ctx.sandbox ? 'in the sandbox' : 'outside production'}`,
    );
  },
};

const redisReachableCheck: DoctorCheck = {
  name: 'redis',
  async run(ctx) {
    const redis = await ctx.redis();
    if (!redis) {
      return fail(
        'redis',
        `unreachable: ${ctx.redisError() ?? 'no answer'}`,
        'start Redis or fix REDIS_URL / REDIS_CLUSTER_NODES (npm start runs its own when none answers)',
      );
    }
    return ok('redis', 'reachable');
  },
};

async function masters(redis: RedisConnection) {
  return 'nodes' in redis ? redis.nodes('master') : [redis];
}

async function configValue(node: RedisConnection, key: string): Promise<string | undefined> {
  const answer = (await node.config('GET', key)) as string[];
  return answer[1];
}

/** Runs `read` for each master; a refused CONFIG (managed Redis) becomes a ! line. */
function redisConfigCheck(
  name: string,
  judge: (values: (string | undefined)[]) => CheckResult,
  key: string,
): DoctorCheck {
  return {
    name,
    async run(ctx) {
      const redis = await ctx.redis();
      if (!redis) return warn(name, 'not checked: Redis unreachable');
      try {
        const values = await Promise.all((await masters(redis)).map((n) => configValue(n, key)));
        return judge(values);
      } catch (err) {
        return warn(
          name,
          `could not read ${key} (${(err as Error).message}): check it in your Redis provider's settings`,
        );
      }
    },
  };
}

const aofCheck = redisConfigCheck(
  'redis persistence',
  (values) =>
    values.every((v) => v === 'yes')
      ? ok('redis persistence', 'AOF on (appendonly yes)')
      : fail(
          'redis persistence',
          'AOF is off (appendonly no): jobs Redis acknowledged are lost when it restarts',
          'run Redis with --appendonly yes --appendfsync everysec (or CONFIG SET appendonly yes, then CONFIG REWRITE); docker-compose and npm start do',
        ),
  'appendonly',
);

const evictionCheck = redisConfigCheck(
  'redis eviction',
  (values) =>
    values.every((v) => v === 'noeviction')
      ? ok('redis eviction', 'maxmemory-policy noeviction')
      : fail(
          'redis eviction',
          `maxmemory-policy is ${values.find((v) => v !== 'noeviction') ?? '?'}: Redis may evict queued jobs`,
          'set maxmemory-policy noeviction (CONFIG SET maxmemory-policy noeviction, then CONFIG REWRITE)',
        ),
  'maxmemory-policy',
);

/** Fields of `INFO memory`. */
export function parseInfo(info: string): Record<string, string> {
  const fields: Record<string, string> = {};
  for (const line of info.split(/\r?\n/)) {
    const colon = line.indexOf(':');
    if (colon > 0 && !line.startsWith('#')) fields[line.slice(0, colon)] = line.slice(colon + 1).trim();
  }
  return fields;
}

const MB = 1024 * 1024;

/** Memory headroom (pure): over 90 % of the limit ✗, over 75 % !. */
export function judgeMemory(usedBytes: number, maxmemory: number, systemBytes: number): CheckResult {
  const name = 'redis memory';
  const limit = maxmemory > 0 ? maxmemory : systemBytes;
  const what = maxmemory > 0 ? 'maxmemory' : 'system memory (no maxmemory set)';
  if (!(limit > 0)) return warn(name, `used ${(usedBytes / MB).toFixed(1)} MB; no limit known`);
  const share = usedBytes / limit;
  const text = `used ${(usedBytes / MB).toFixed(1)} MB of ${(limit / MB).toFixed(1)} MB ${what} (${Math.round(share * 100)} %)`;
  if (share > 0.9) {
    return fail(
      name,
      `${text}: with noeviction, Redis refuses new jobs when full`,
      'raise maxmemory (or give Redis more memory), and look for a backlog: npm run jobs -- counts',
    );
  }
  if (share > 0.75) return warn(name, `${text}: little headroom`, 'raise maxmemory before it fills');
  return ok(name, text);
}

const memoryCheck: DoctorCheck = {
  name: 'redis memory',
  async run(ctx) {
    const redis = await ctx.redis();
    if (!redis) return warn('redis memory', 'not checked: Redis unreachable');
    const results = await Promise.all(
      (await masters(redis)).map(async (node) => {
        const info = parseInfo(await node.info('memory'));
        return judgeMemory(
          Number(info.used_memory ?? 0),
          Number(info.maxmemory ?? 0),
          Number(info.total_system_memory ?? 0),
        );
      }),
    );
    return (
      results.find((r) => r.status === 'fail') ??
      results.find((r) => r.status === 'warn') ??
      results[0] ??
      ok('redis memory', 'no masters')
    );
  },
};

const queueCheck: DoctorCheck = {
  name: 'deliveries queue',
  async run(ctx) {
    const q = await ctx.deliveries();
    if (!q) return warn('deliveries queue', 'not checked: Redis unreachable');
    if (await q.isPaused()) {
      return fail(
        'deliveries queue',
        'paused: nothing reaches Klaviyo',
        'resume it in the dashboard (/admin/queues) once the reason it was paused is fixed',
      );
    }
    const counts = await q.getJobCounts('waiting', 'active', 'delayed', 'failed');
    const summary = `running (waiting ${counts.waiting ?? 0}, active ${counts.active ?? 0}, delayed ${counts.delayed ?? 0})`;
    const holdMs = await q.getRateLimitTtl();
    if (holdMs > 1_000) {
      return warn(
        'deliveries queue',
        `held for another ${Math.ceil(holdMs / 1000)} s by a Klaviyo 429 or a rejected key; ${summary}`,
        "the worker's /readyz says which",
      );
    }
    return ok('deliveries queue', summary);
  },
};

/** A permanent Klaviyo refusal of one event (the processor's UnrecoverableError): `klaviyo 400: …`. */
export function isPermanent4xx(reason: string): boolean {
  const status = /^klaviyo (\d{3}):/.exec(reason)?.[1];
  if (!status) return false;
  return status.startsWith('4') && !['401', '403', '408', '429'].includes(status);
}

const FAILED_PAGE = 200;
const HOUR_MS = 3600_000;

const failedCheck: DoctorCheck = {
  name: 'failed deliveries',
  async run(ctx) {
    const deliveries = await ctx.deliveries();
    if (!deliveries) return warn('failed deliveries', 'not checked: Redis unreachable');
    const since = ctx.now() - HOUR_MS;
    let permanent = 0;
    const other: string[] = [];
    // Newest first: stop at the first page that reaches older than an hour.
    for (let start = 0; ; start += FAILED_PAGE) {
      const jobs = await deliveries.getFailed(start, start + FAILED_PAGE - 1);
      const recent = jobs.filter((j) => (j.finishedOn ?? 0) >= since);
      for (const job of recent) {
        if (isPermanent4xx(job.failedReason ?? '')) permanent += 1;
        else other.push(redactEmails(job.failedReason ?? '(no reason)'));
      }
      if (jobs.length < FAILED_PAGE || recent.length < jobs.length) break;
    }
    if (other.length > 0) {
      return fail(
        'failed deliveries',
        `${other.length} failed in the last hour for a reason other than a permanent 4xx, e.g. "${other[0]?.slice(0, 200)}"`,
        'fix the cause, then retry: npm run jobs -- failed, then npm run jobs -- retry --all',
      );
    }
    return ok(
      'failed deliveries',
      permanent > 0
        ? `none in the last hour except ${permanent} permanent 4xx (Klaviyo refused those events; npm run jobs -- failed)`
        : 'none in the last hour',
    );
  },
};

const spoolCheck: DoctorCheck = {
  name: 'ingest spool',
  async run(ctx) {
    const name = 'ingest spool';
    if (!ctx.ingest) return warn(name, 'not checked: configuration invalid');
    const path = ctx.ingest.spoolPath;
    if (path === null) return ok(name, 'off (INGEST_SPOOL_ENABLED=false)');
    const spool = await readSize(path);
    const dead = await readSize(deadLetterPath(path));
    if (typeof spool === 'string') return warn(name, `cannot read ${path}: ${spool}`);
    if (typeof dead === 'number' && dead > 0) {
      return fail(
        name,
        `dead-lettered entries in ${deadLetterPath(path)} (${dead} bytes): webhooks Redis refused for good`,
        'npm run jobs -- spool list, fix the cause, then npm run jobs -- spool requeue --all (on the ingest host)',
      );
    }
    if (spool === null) return ok(name, `no spool at ${path} (empty, or the ingest runs on another host)`);
    if (spool === 0) return ok(name, `empty (${path})`);
    return fail(
      name,
      `${spool} bytes waiting in ${path}: webhooks Redis did not store are not relayed yet`,
      "make Redis reachable for the ingest; its relay empties the spool (see the ingest's /readyz and gk_spool_depth)",
    );
  },
};

/** Bytes at a path (a file, or a directory's files but lock files); null when absent; an error text. Read-only. */
async function readSize(path: string): Promise<number | null | string> {
  try {
    return await spoolBytes(path);
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return null;
    return (err as Error).message;
  }
}

/** Bytes in the spool: a file, or the files of a directory (lock files aside). Read-only. */
async function spoolBytes(path: string): Promise<number> {
  const info = await stat(path);
  if (!info.isDirectory()) return info.size;
  let total = 0;
  for (const entry of await readdir(path, { withFileTypes: true })) {
    if (entry.isFile() && !entry.name.endsWith('.lock')) total += (await stat(join(path, entry.name))).size;
  }
  return total;
}

// --- Gladly ---

interface GladlyProbe {
  status?: number;
  error?: string;
  headers?: Headers;
}

const gladlyProbes = new WeakMap<DoctorContext, Promise<GladlyProbe>>();

/**
 * One GET of a customer profile that does not exist: 404 means the credentials were accepted,
 * and the answer carries Gladly's `Ratelimit-*` headers. Reads nothing real, changes nothing.
 */
function probeGladly(ctx: DoctorContext): Promise<GladlyProbe> {
  let probe = gladlyProbes.get(ctx);
  if (!probe) {
    probe = (async () => {
      const g = ctx.worker?.gladly;
      if (!g) return { error: 'configuration invalid' };
      try {
        const response = await fetch(`${g.baseUrl}/api/v1/customer-profiles/gk-doctor-probe`, {
          headers: {
            authorization: `Basic ${Buffer.from(`${g.user}:${g.token}`).toString('base64')}`,
            accept: 'application/json',
          },
          redirect: 'manual',
          signal: AbortSignal.timeout(ctx.timeoutMs),
        });
        await response.arrayBuffer();
        return { status: response.status, headers: response.headers };
      } catch (err) {
        return { error: (err as Error).name === 'TimeoutError' ? 'timeout' : describeCause(err) };
      }
    })();
    gladlyProbes.set(ctx, probe);
  }
  return probe;
}

function describeCause(err: unknown): string {
  const cause = (err as { cause?: { code?: unknown } }).cause;
  return typeof cause?.code === 'string' ? cause.code : (err as Error).message;
}

const gladlyCredentialsCheck: DoctorCheck = {
  name: 'gladly credentials',
  async run(ctx) {
    const name = 'gladly credentials';
    if (!ctx.worker) return warn(name, 'not checked: configuration invalid');
    const probe = await probeGladly(ctx);
    if (probe.error) {
      return fail(
        name,
        `no answer from ${ctx.worker.gladly.baseUrl} (${probe.error})`,
        'check GLADLY_API_URL',
      );
    }
    if (probe.status === 401 || probe.status === 403) {
      return fail(
        name,
        `rejected (${probe.status})`,
        'check GLADLY_API_USER (the API user email) and GLADLY_API_TOKEN (Settings → API Tokens in Gladly)',
      );
    }
    if (probe.status === 429) return warn(name, 'not known: Gladly answered 429 (rate limited right now)');
    if (probe.status === 404 || (probe.status !== undefined && probe.status >= 200 && probe.status < 300)) {
      return ok(name, `accepted by ${ctx.worker.gladly.baseUrl}`);
    }
    return fail(
      name,
      `unexpected answer ${probe.status}`,
      'check GLADLY_API_URL (e.g. https://acme.gladly.com)',
    );
  },
};

/** Rate-limit headroom from Gladly's `Ratelimit-*` headers (pure). */
export function judgeGladlyRateLimit(headers: Headers | undefined, configuredPerSecond: number): CheckResult {
  const name = 'gladly rate limit';
  const limit = Number(headers?.get('ratelimit-limit'));
  const remaining = Number(headers?.get('ratelimit-remaining'));
  if (!headers?.has('ratelimit-limit') || !Number.isFinite(limit) || limit <= 0) {
    return warn(name, 'Gladly sent no Ratelimit-* headers: headroom unknown');
  }
  const text = `limit ${limit}, ${Number.isFinite(remaining) ? remaining : '?'} remaining`;
  if (configuredPerSecond > limit) {
    return fail(
      name,
      `${text}, but GLADLY_RATE_LIMIT_PER_SECOND=${configuredPerSecond} is above the limit`,
      `set GLADLY_RATE_LIMIT_PER_SECOND to at most ${limit}, better about half (other integrations share the limit)`,
    );
  }
  if (Number.isFinite(remaining) && remaining < limit * 0.2) {
    return warn(name, `${text}: other integrations use most of the shared limit right now`);
  }
  return ok(name, `${text} (the bridge uses up to ${configuredPerSecond || 'unlimited'}/s)`);
}

const gladlyRateLimitCheck: DoctorCheck = {
  name: 'gladly rate limit',
  async run(ctx) {
    if (!ctx.worker) return warn('gladly rate limit', 'not checked: configuration invalid');
    const probe = await probeGladly(ctx);
    if (probe.error) return warn('gladly rate limit', 'not checked: Gladly unreachable');
    return judgeGladlyRateLimit(probe.headers, ctx.worker.gladly.ratePerSecond);
  },
};

/**
 * The bridge's Gladly webhook, through the webhooks client `npm run gladly` uses (a GET only):
 * registered under GLADLY_WEBHOOK_URL, enabled, and subscribed to the events the bridge reads.
 */
const gladlyWebhookCheck: DoctorCheck = {
  name: 'gladly webhook',
  async run(ctx) {
    const name = 'gladly webhook';
    if (!ctx.worker) return warn(name, 'not checked: configuration invalid');
    const url = ctx.worker.selfHealing.webhookUrl;
    if (!url) {
      return warn(
        name,
        "GLADLY_WEBHOOK_URL not set: webhook not checked, and the worker's watchdog is off",
        'set GLADLY_WEBHOOK_URL to the public URL of /webhooks/gladly, then npm run gladly -- webhook register',
      );
    }
    const g = ctx.worker.gladly;
    let hook: GladlyWebhook | undefined;
    try {
      hook = await createGladlyWebhooksClient({
        baseUrl: g.baseUrl,
        user: g.user,
        token: g.token,
        timeoutMs: ctx.timeoutMs,
      }).findByUrl(url);
    } catch (err) {
      const auth = err instanceof GladlyError && err.kind === 'auth';
      return fail(
        name,
        `could not list Gladly's webhooks: ${(err as Error).message}`,
        auth
          ? 'check GLADLY_API_USER and GLADLY_API_TOKEN (the API user manages webhooks)'
          : 'check GLADLY_API_URL',
      );
    }
    const report = describeWebhook(url, hook);
    if (!hook) return fail(name, `no webhook has the URL ${url}`, 'npm run gladly -- webhook register');
    if (!hook.enabled) {
      return fail(
        name,
        hook.disabledAtDueToRetryLimit
          ? `disabled by Gladly at ${hook.disabledAtDueToRetryLimit} after its retries failed`
          : 'disabled by hand',
        hook.disabledAtDueToRetryLimit
          ? "make sure Gladly reaches the ingest at GLADLY_WEBHOOK_URL; the worker's watchdog then re-enables it (or npm run gladly -- webhook enable)"
          : 'npm run gladly -- webhook enable',
      );
    }
    const missing = report.missingEvents ?? [];
    if (missing.some((e) => e.startsWith('CONVERSATION/'))) {
      return fail(
        name,
        `enabled, but not subscribed to ${missing.join(', ')}`,
        'npm run gladly -- webhook register',
      );
    }
    if (missing.length > 0) {
      return warn(
        name,
        `enabled; not subscribed to ${missing.join(', ')} (cached customer emails then refresh only after GLADLY_CUSTOMER_CACHE_TTL_SECONDS)`,
        'npm run gladly -- webhook register',
      );
    }
    return ok(name, 'enabled, subscribed to every event the bridge reads');
  },
};

// --- Klaviyo ---

interface KlaviyoFacts {
  probes: Partial<Record<KlaviyoScope, ProbeOutcome>>;
  segments?: KlaviyoSegment[];
  segmentsError?: string;
  metrics?: Set<string>;
  metricsError?: string;
  eventsSent?: number;
}

const klaviyoFacts = new WeakMap<DoctorContext, Promise<KlaviyoFacts>>();

export function klaviyoOptions(worker: WorkerConfig, timeoutMs: number): KlaviyoAccountOptions {
  return {
    baseUrl: worker.klaviyo.baseUrl,
    apiKey: worker.klaviyo.apiKey,
    revision: worker.klaviyo.revision,
    timeoutMs,
  };
}

/**
 * Asks Klaviyo once for everything the Klaviyo lines report. segments:write is probed only while
 * the segment does not exist (afterwards the bridge no longer needs it), so a doctor run spends
 * at most one of Create Segment's 100 requests a day, and only with a body that creates nothing.
 */
function gatherKlaviyo(ctx: DoctorContext): Promise<KlaviyoFacts> {
  let facts = klaviyoFacts.get(ctx);
  if (!facts) {
    facts = (async () => {
      const worker = ctx.worker;
      if (!worker) return { probes: {} };
      const options = klaviyoOptions(worker, ctx.timeoutMs);
      const result: KlaviyoFacts = { probes: {} };
      const reads: KlaviyoScope[] = ['events:write', 'segments:read', 'metrics:read'];
      if (!worker.klaviyo.createProfiles) reads.push('profiles:read');
      for (const scope of reads) result.probes[scope] = await probeKlaviyoScope(options, scope);
      if (result.probes['segments:read']?.kind === 'granted') {
        try {
          result.segments = await findSegmentsByName(options, ctx.segmentName);
        } catch (err) {
          result.segmentsError = (err as Error).message;
        }
        if (result.segments?.length === 0) {
          result.probes['segments:write'] = await probeKlaviyoScope(options, 'segments:write');
        }
      }
      if (result.probes['metrics:read']?.kind === 'granted') {
        try {
          result.metrics = await listMetricNames(options);
        } catch (err) {
          result.metricsError = (err as Error).message;
        }
      }
      const deliveries = await ctx.deliveries();
      if (deliveries) result.eventsSent = (await deliveries.getJobCounts('completed')).completed ?? 0;
      return result;
    })();
    klaviyoFacts.set(ctx, facts);
  }
  return facts;
}

const klaviyoKeyCheck: DoctorCheck = {
  name: 'klaviyo key',
  async run(ctx) {
    const name = 'klaviyo key';
    if (!ctx.worker) return warn(name, 'not checked: configuration invalid');
    const outcomes = Object.values((await gatherKlaviyo(ctx)).probes);
    if (outcomes.some((o) => o.kind === 'key_rejected')) {
      return fail(
        name,
        `rejected by ${ctx.worker.klaviyo.baseUrl} (401)`,
        'set KLAVIYO_API_KEY to a private API key of the account (Settings → API keys in Klaviyo)',
      );
    }
    const down = outcomes.find((o) => o.kind === 'unavailable');
    if (down && outcomes.every((o) => o.kind === 'unavailable')) {
      return fail(
        name,
        `not checked: ${'detail' in down ? down.detail : 'no answer'}`,
        'check KLAVIYO_API_URL and the network',
      );
    }
    return ok(name, `accepted by ${ctx.worker.klaviyo.baseUrl}`);
  },
};

const klaviyoRevisionCheck: DoctorCheck = {
  name: 'klaviyo revision',
  async run(ctx) {
    const name = 'klaviyo revision';
    if (!ctx.worker) return warn(name, 'not checked: configuration invalid');
    const refused = Object.values((await gatherKlaviyo(ctx)).probes).find(
      (o) => o.kind === 'revision_refused',
    );
    if (refused) {
      return fail(
        name,
        `${ctx.worker.klaviyo.revision} refused: ${'detail' in refused ? refused.detail : ''}`,
        'set KLAVIYO_REVISION to a revision Klaviyo supports (2026-07-15 or later: `backfill` needs it)',
      );
    }
    const answered = Object.values((await gatherKlaviyo(ctx)).probes).some((o) => o.kind === 'granted');
    return answered
      ? ok(name, `${ctx.worker.klaviyo.revision} accepted`)
      : warn(name, `${ctx.worker.klaviyo.revision}: not known (no request got that far)`);
  },
};

const SCOPE_USE: Record<KlaviyoScope, string> = {
  'events:write': 'sending events',
  'profiles:read': 'KLAVIYO_CREATE_PROFILES=false',
  'segments:read': 'finding the segment',
  'segments:write': 'npm run klaviyo -- segment ensure',
  'metrics:read': "checking the bridge's metrics",
};

function scopeCheck(scope: KlaviyoScope): DoctorCheck {
  const name = `klaviyo scope ${scope}`;
  return {
    name,
    async run(ctx) {
      if (!ctx.worker) return warn(name, 'not checked: configuration invalid');
      if (scope === 'profiles:read' && ctx.worker.klaviyo.createProfiles) return [];
      const facts = await gatherKlaviyo(ctx);
      const outcome = facts.probes[scope];
      if (!outcome) {
        if (scope === 'segments:write' && facts.segments && facts.segments.length > 0) {
          return ok(name, 'not needed any more: the segment exists (not probed)');
        }
        return warn(name, 'not checked (segments:read missing or Klaviyo unreachable)');
      }
      switch (outcome.kind) {
        case 'granted':
          return ok(name, `present (${SCOPE_USE[scope]})`);
        case 'missing_scope':
          return fail(
            name,
            `missing: needed for ${SCOPE_USE[scope]}`,
            `edit the private key in Klaviyo (Settings → API keys) and give it ${scope.replace(':write', ' full access').replace(':read', ' read access')}`,
          );
        case 'key_rejected':
          return warn(name, 'not checked: key rejected');
        case 'revision_refused':
          return warn(name, 'not checked: revision refused');
        case 'rate_limited':
          return warn(name, 'not known: Klaviyo answered 429');
        default:
          return warn(name, `not known: ${outcome.detail}`);
      }
    },
  };
}

const klaviyoSegmentCheck: DoctorCheck = {
  name: 'klaviyo segment',
  async run(ctx) {
    const name = 'klaviyo segment';
    if (!ctx.worker) return warn(name, 'not checked: configuration invalid');
    const facts = await gatherKlaviyo(ctx);
    if (facts.segmentsError) return warn(name, `not checked: ${facts.segmentsError}`);
    if (!facts.segments) return warn(name, 'not checked (segments:read missing)');
    const [first] = facts.segments;
    if (!first) {
      return warn(
        name,
        `no segment "${ctx.segmentName}": marketing is not held back unless your flows and campaigns exclude ${ctx.worker.klaviyo.profileProperty} = true some other way`,
        'npm run klaviyo -- segment ensure',
      );
    }
    if (!isSuppressionDefinition(first.definition, ctx.worker.klaviyo.profileProperty)) {
      return fail(
        name,
        `"${ctx.segmentName}" (${first.id}) exists but is not "${ctx.worker.klaviyo.profileProperty} equals true"`,
        'fix its definition in Klaviyo, or set KLAVIYO_SEGMENT_NAME to another name and run npm run klaviyo -- segment ensure',
      );
    }
    const extra = facts.segments.length > 1 ? ` (and ${facts.segments.length - 1} more with that name)` : '';
    return ok(name, `"${ctx.segmentName}" is ${first.id}${extra}`);
  },
};

const klaviyoMetricsCheck: DoctorCheck = {
  name: 'klaviyo metrics',
  async run(ctx) {
    const name = 'klaviyo metrics';
    if (!ctx.worker) return warn(name, 'not checked: configuration invalid');
    const facts = await gatherKlaviyo(ctx);
    if (facts.metricsError) return warn(name, `not checked: ${facts.metricsError}`);
    if (!facts.metrics) return warn(name, 'not checked (metrics:read missing)');
    const wanted = [ctx.worker.klaviyo.metricStarted, ctx.worker.klaviyo.metricClosed];
    const visible = wanted.filter((m) => facts.metrics?.has(m));
    if (visible.length > 0) return ok(name, `visible: ${visible.map((m) => `"${m}"`).join(', ')}`);
    if (!facts.eventsSent) return warn(name, "none of the bridge's metrics yet: no event sent so far");
    return fail(
      name,
      `${facts.eventsSent} events delivered, but Klaviyo lists neither "${wanted[0]}" nor "${wanted[1]}"`,
      'check that KLAVIYO_API_KEY belongs to the account you look at, and KLAVIYO_METRIC_STARTED/CLOSED',
    );
  },
};

/** Every check, in the order printed. Add a check by adding it here. */
export const DOCTOR_CHECKS: readonly DoctorCheck[] = [
  configCheck,
  secretsCheck,
  redisReachableCheck,
  aofCheck,
  evictionCheck,
  memoryCheck,
  queueCheck,
  failedCheck,
  spoolCheck,
  gladlyCredentialsCheck,
  gladlyRateLimitCheck,
  gladlyWebhookCheck,
  klaviyoKeyCheck,
  klaviyoRevisionCheck,
  scopeCheck('events:write'),
  scopeCheck('profiles:read'),
  scopeCheck('segments:read'),
  scopeCheck('segments:write'),
  scopeCheck('metrics:read'),
  klaviyoSegmentCheck,
  klaviyoMetricsCheck,
];

/** Runs the checks in order; a check that throws is a ✗ naming the error. */
export async function runChecks(ctx: DoctorContext, checks: readonly DoctorCheck[] = DOCTOR_CHECKS) {
  const results: CheckResult[] = [];
  for (const check of checks) {
    try {
      const result = await check.run(ctx);
      results.push(...(Array.isArray(result) ? result : [result]));
    } catch (err) {
      results.push(
        fail(
          check.name,
          `the check itself failed: ${redactEmails((err as Error).message)}`,
          'see the message; run again',
        ),
      );
    }
  }
  return results;
}
