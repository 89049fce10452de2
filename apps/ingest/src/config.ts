import { join, resolve } from 'node:path';
import {
  checkDevCredentials,
  envBool,
  envInt,
  envSecret,
  envSecretList,
  envString,
  parseEnv,
  REDIS_SECRETS,
  redisEnvShape,
} from '@gk/runtime';
import { z } from 'zod';
import type { BasicCredential, WebhookAuthConfig } from './auth.js';

export interface AdminConfig {
  username: string;
  password: string;
  /** Bull Board's read-only mode: jobs can be looked at, not retried, removed or promoted. */
  readOnly: boolean;
}

/** The local spool for webhooks Redis does not store (see spool.ts). */
export interface SpoolConfig {
  path: string;
  maxEntries: number;
  /** Not ready when Redis answers but the relay made no progress this long while entries wait. */
  stallSeconds?: number;
}

export interface IngestConfig {
  nodeEnv: string | undefined;
  port: number;
  host: string;
  logLevel: string;
  redis: { url: string; clusterNodes: string[] };
  queuePrefix: string;
  webhookAuth: WebhookAuthConfig;
  /** null: the dashboard is off. */
  admin: AdminConfig | null;
  /** null: no spool (INGEST_SPOOL_ENABLED=false); a webhook Redis does not store is answered 503. */
  spool: SpoolConfig | null;
  /** null: `/healthz`, `/readyz` and `/metrics` are on PORT; else only on this internal port. */
  opsPort: number | null;
  /** BRIDGE_SANDBOX=true: the sandbox route (dev credentials allowed); /readyz says so. */
  sandbox: boolean;
  /** Things worth a warning at start (never holding a value). */
  warnings: string[];
}

/** Variables that hold secrets: each can also be read from `<NAME>_FILE`. */
export const INGEST_SECRETS = [...REDIS_SECRETS, 'WEBHOOK_BASIC_AUTH', 'WEBHOOK_TOKENS', 'ADMIN_PASSWORD'];

/**
 * `user:password` (the user ends at the first `:`; the password is everything after it, verbatim),
 * or several as a JSON array (`["gladly:old", "gladly:new"]`) so a password can be rotated
 * without downtime. No comma-separated form: a password may hold commas.
 */
const envBasicPairs = () =>
  envSecretList().transform((entries, ctx) => {
    const pairs: BasicCredential[] = [];
    entries.forEach((entry, i) => {
      const colon = entry.indexOf(':');
      // The message says which entry and why, never the entry itself: it holds a password.
      if (colon <= 0 || colon === entry.length - 1) {
        ctx.addIssue({
          code: 'custom',
          message: `entry ${i + 1} is not user:password (a non-empty user, ':' and a non-empty password)`,
        });
        return;
      }
      pairs.push({ username: entry.slice(0, colon), password: entry.slice(colon + 1) });
    });
    return pairs;
  });

/** RFC 9110 token characters: what a header name may be made of. */
const HEADER_NAME = /^[!#$%&'*+.^_`|~0-9A-Za-z-]+$/;

const IngestEnv = z
  .object({
    ...redisEnvShape,
    PORT: envInt(3000, 1, 65535),
    HOST: envString().transform((v) => v ?? '0.0.0.0'),
    WEBHOOK_BASIC_AUTH: envBasicPairs(),
    WEBHOOK_TOKEN_HEADER: envString()
      .transform((v) => v ?? 'X-Gladly-Token')
      .pipe(z.string().regex(HEADER_NAME, 'must be an HTTP header name')),
    WEBHOOK_TOKENS: envSecretList(),
    WEBHOOK_AUTH_DISABLED: envBool(false),
    ADMIN_USERNAME: envString().pipe(
      z
        .string()
        .regex(/^[^:]*$/, 'must not contain ":" (HTTP Basic cannot carry it)')
        .optional(),
    ),
    ADMIN_PASSWORD: envSecret(),
    ADMIN_READ_ONLY: envBool(false),
    INGEST_SPOOL_ENABLED: envBool(true),
    /** Default: `.data/spool/ingest-<PORT>.spool` under the working directory (one file per listener). */
    INGEST_SPOOL_PATH: envString(),
    INGEST_SPOOL_MAX: envInt(100_000, 1, 10_000_000),
    /** Probes and metrics on their own port, which need not be exposed where Gladly reaches PORT. */
    OPS_PORT: envInt(0, 0, 65535),
    INGEST_SPOOL_STALL_SECONDS: envInt(300, 5, 86_400),
  })
  .superRefine((env, ctx) => {
    if (env.OPS_PORT !== 0 && env.OPS_PORT === env.PORT) {
      ctx.addIssue({ code: 'custom', path: ['OPS_PORT'], message: 'must differ from PORT' });
    }
    if (env.WEBHOOK_AUTH_DISABLED && env.NODE_ENV === 'production') {
      ctx.addIssue({
        code: 'custom',
        path: ['WEBHOOK_AUTH_DISABLED'],
        message: 'is refused when NODE_ENV=production (anyone could post events)',
      });
    }
    // Gladly does not sign webhooks: without credentials anyone who finds the URL could post events.
    if (
      !env.WEBHOOK_AUTH_DISABLED &&
      env.WEBHOOK_BASIC_AUTH.length === 0 &&
      env.WEBHOOK_TOKENS.length === 0
    ) {
      ctx.addIssue({
        code: 'custom',
        path: ['WEBHOOK_BASIC_AUTH'],
        message:
          'no webhook credentials: set WEBHOOK_BASIC_AUTH and/or WEBHOOK_TOKENS (or WEBHOOK_AUTH_DISABLED=true for a local run)',
      });
    }
    if (env.ADMIN_USERNAME !== undefined && env.ADMIN_PASSWORD === undefined) {
      ctx.addIssue({ code: 'custom', path: ['ADMIN_PASSWORD'], message: 'must be set with ADMIN_USERNAME' });
    }
    checkDevCredentials(
      env,
      {
        WEBHOOK_BASIC_AUTH: env.WEBHOOK_BASIC_AUTH.map((p) => p.password),
        WEBHOOK_TOKENS: env.WEBHOOK_TOKENS,
        ADMIN_PASSWORD: env.ADMIN_PASSWORD,
      },
      ctx,
    );
    if (env.ADMIN_PASSWORD !== undefined && env.ADMIN_USERNAME === undefined) {
      ctx.addIssue({ code: 'custom', path: ['ADMIN_USERNAME'], message: 'must be set with ADMIN_PASSWORD' });
    }
  })
  .transform(
    (env): IngestConfig => ({
      nodeEnv: env.NODE_ENV,
      port: env.PORT,
      host: env.HOST,
      logLevel: env.LOG_LEVEL,
      redis: { url: env.REDIS_URL, clusterNodes: env.REDIS_CLUSTER_NODES },
      queuePrefix: env.QUEUE_PREFIX,
      webhookAuth: {
        disabled: env.WEBHOOK_AUTH_DISABLED,
        basic: env.WEBHOOK_BASIC_AUTH,
        tokenHeader: env.WEBHOOK_TOKEN_HEADER,
        tokens: env.WEBHOOK_TOKENS,
      },
      admin:
        env.ADMIN_USERNAME !== undefined && env.ADMIN_PASSWORD !== undefined
          ? { username: env.ADMIN_USERNAME, password: env.ADMIN_PASSWORD, readOnly: env.ADMIN_READ_ONLY }
          : null,
      spool: env.INGEST_SPOOL_ENABLED
        ? {
            path: resolve(env.INGEST_SPOOL_PATH ?? join('.data', 'spool', `ingest-${env.PORT}.spool`)),
            maxEntries: env.INGEST_SPOOL_MAX,
            stallSeconds: env.INGEST_SPOOL_STALL_SECONDS,
          }
        : null,
      opsPort: env.OPS_PORT === 0 ? null : env.OPS_PORT,
      sandbox: env.BRIDGE_SANDBOX,
      warnings: oldListWarning(env.WEBHOOK_BASIC_AUTH),
    }),
  );

/**
 * Before, WEBHOOK_BASIC_AUTH split on commas. A single pair whose password holds `,<same user>:`
 * was most likely written as such a list: say so (it now is one password, so Gladly's requests
 * would be refused), without printing any of it.
 */
function oldListWarning(pairs: readonly BasicCredential[]): string[] {
  const [only, ...rest] = pairs;
  if (!only || rest.length > 0 || !only.password.includes(`,${only.username}:`)) return [];
  return [
    'WEBHOOK_BASIC_AUTH is read as ONE user:password pair whose password contains ",<user>:"; for several pairs (rotation) write a JSON array: ["user:old","user:new"]',
  ];
}

/** Reads the ingest's settings once at start; throws a ConfigError naming every bad variable. */
export function loadConfig(env: NodeJS.ProcessEnv = process.env): IngestConfig {
  return parseEnv(IngestEnv, env, { secrets: INGEST_SECRETS });
}
