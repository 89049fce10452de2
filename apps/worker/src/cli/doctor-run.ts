import { loadConfig as loadIngestConfig } from '@gk/ingest/config';
import { openBridgeConnection, QueueName, type RedisConnection } from '@gk/queue';
import {
  ConfigError,
  DEV_CREDENTIALS,
  parseEnv,
  REDIS_SECRETS,
  redisEnvShape,
  waitForRedis,
} from '@gk/runtime';
import { Queue } from 'bullmq';
import { z } from 'zod';
import { loadWorkerConfig, type WorkerConfig, WorkerEnvShape } from '../config.js';
import {
  type CheckResult,
  type DoctorCheck,
  type DoctorContext,
  type DoctorIngestView,
  runChecks,
} from './doctor-checks.js';
import type { CliIo } from './run.js';

export const DOCTOR_USAGE = `Usage: npm run doctor [-- --json]

Checks the whole chain: configuration, Redis durability, the queues and the spool, Gladly and
Klaviyo credentials, Klaviyo key scopes, revision, segment and metrics. Changes nothing.
One line per check: ✓ fine, ✗ broken (with what to do), ! worth a look.
Exit status: 0 no ✗, 1 at least one ✗, 2 usage mistake.`;

const SYMBOL: Record<CheckResult['status'], string> = { ok: '✓', fail: '✗', warn: '!' };

export function formatResults(results: readonly CheckResult[]): string {
  const lines: string[] = [];
  for (const r of results) {
    const [first = '', ...rest] = r.summary.split('\n');
    lines.push(`${SYMBOL[r.status]} ${r.name}: ${first}`);
    for (const line of rest) lines.push(`    ${line}`);
    if (r.fix && r.status !== 'ok') lines.push(`    fix: ${r.fix}`);
  }
  const failed = results.filter((r) => r.status === 'fail').length;
  const warned = results.filter((r) => r.status === 'warn').length;
  lines.push('');
  lines.push(
    failed === 0
      ? `all good${warned > 0 ? ` (${warned} to look at)` : ''}`
      : `${failed} problem${failed === 1 ? '' : 's'} to fix${warned > 0 ? `, ${warned} to look at` : ''}`,
  );
  return `${lines.join('\n')}\n`;
}

const SegmentNameEnv = WorkerEnvShape.pick({ KLAVIYO_SEGMENT_NAME: true });

/** `gk-doctor [--json]`: runs every check; 1 when any is ✗. */
export async function runDoctorCli(
  argv: readonly string[],
  env: NodeJS.ProcessEnv,
  io: CliIo,
  options: { timeoutMs?: number; checks?: readonly DoctorCheck[]; now?: () => number } = {},
): Promise<number> {
  const json = argv.includes('--json');
  const unknown = argv.filter((a) => a !== '--json');
  if (unknown.includes('--help') || unknown.includes('-h')) {
    io.stdout(`${DOCTOR_USAGE}\n`);
    return 0;
  }
  if (unknown.length > 0) {
    io.stderr(`gk-doctor: unknown argument ${unknown[0]}\n\n${DOCTOR_USAGE}\n`);
    return 2;
  }
  const timeoutMs = options.timeoutMs ?? 5_000;

  const configErrors: string[] = [];
  let worker: WorkerConfig | null = null;
  let ingest: DoctorIngestView | null = null;
  const devCredentialsInUse: string[] = [];
  const isDev = (values: readonly (string | undefined)[]) =>
    values.some((v) => v !== undefined && DEV_CREDENTIALS.includes(v));
  const collect = (service: string, err: unknown) => {
    if (!(err instanceof ConfigError)) throw err;
    // ConfigError names variables, never values.
    for (const line of err.message.split('\n').slice(1)) configErrors.push(`${service}: ${line.trim()}`);
  };
  try {
    worker = loadWorkerConfig(env);
    if (isDev([worker.gladly.token])) devCredentialsInUse.push('GLADLY_API_TOKEN');
    if (isDev([worker.klaviyo.apiKey])) devCredentialsInUse.push('KLAVIYO_API_KEY');
  } catch (err) {
    collect('worker', err);
  }
  try {
    const c = loadIngestConfig(env);
    ingest = { spoolPath: c.spool?.path ?? null };
    if (isDev(c.webhookAuth.basic.map((p) => p.password))) devCredentialsInUse.push('WEBHOOK_BASIC_AUTH');
    if (isDev(c.webhookAuth.tokens)) devCredentialsInUse.push('WEBHOOK_TOKENS');
    if (isDev([c.admin?.password])) devCredentialsInUse.push('ADMIN_PASSWORD');
  } catch (err) {
    collect('ingest', err);
  }
  const segmentName = parseEnv(SegmentNameEnv, env).KLAVIYO_SEGMENT_NAME;

  // Redis: from the worker's settings, or the shared ones when the worker's do not parse.
  let redisTarget: { url: string; clusterNodes: string[]; prefix: string } | null = worker?.redis ?? null;
  if (!redisTarget) {
    try {
      const e = parseEnv(z.object(redisEnvShape), env, { secrets: REDIS_SECRETS });
      redisTarget = { url: e.REDIS_URL, clusterNodes: e.REDIS_CLUSTER_NODES, prefix: e.QUEUE_PREFIX };
    } catch {
      redisTarget = null;
    }
  }
  let connection: RedisConnection | undefined;
  let prefix = '';
  let redisReady: Promise<RedisConnection | null> | undefined;
  let redisError: string | undefined;
  let deliveries: Queue | undefined;

  const ctx: DoctorContext = {
    env,
    worker,
    ingest,
    configErrors,
    production: env.NODE_ENV === 'production',
    sandbox: worker?.sandbox ?? /^(true|1|yes)$/i.test(env.BRIDGE_SANDBOX ?? ''),
    devCredentialsInUse,
    segmentName,
    timeoutMs,
    now: options.now ?? Date.now,
    redisError: () => redisError,
    redis() {
      if (!redisReady) {
        redisReady = (async () => {
          if (!redisTarget) {
            redisError = 'REDIS_URL / REDIS_CLUSTER_NODES invalid';
            return null;
          }
          const bridge = openBridgeConnection(redisTarget, 'producer', 'doctor');
          connection = bridge.connection;
          prefix = bridge.prefix;
          connection.on('error', () => {
            // Reported once, as a check line.
          });
          try {
            await waitForRedis(connection, timeoutMs);
            return connection;
          } catch (err) {
            redisError = (err as Error).message;
            return null;
          }
        })();
      }
      return redisReady;
    },
    async deliveries() {
      if (deliveries) return deliveries;
      const redis = await ctx.redis();
      if (!redis || !redisTarget) return null;
      // Only reads: skipMetasUpdate keeps BullMQ from writing the queue's meta key on open.
      deliveries = new Queue(QueueName.deliveries, {
        connection: redis,
        prefix,
        skipMetasUpdate: true,
      });
      return deliveries;
    },
  };

  try {
    const results = await runChecks(ctx, options.checks);
    const failed = results.some((r) => r.status === 'fail');
    if (json) io.stdout(`${JSON.stringify({ ok: !failed, checks: results }, null, 2)}\n`);
    else io.stdout(formatResults(results));
    return failed ? 1 : 0;
  } finally {
    if (deliveries) await deliveries.close();
    if (connection) await connection.quit().catch(() => connection?.disconnect());
  }
}
