import { join, resolve } from 'node:path';
import { envBool, envInt, envList, envString, parseEnv, redisEnvShape } from '@gk/runtime';
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
}

const blankToUndefined = (v: unknown) => (typeof v === 'string' && v.trim() === '' ? undefined : v);

/** A secret is taken verbatim (no trimming: spaces may be part of a password). */
const envSecret = () => z.preprocess(blankToUndefined, z.string().optional());

/** `user:password,user:password`: several pairs so a password can be rotated without downtime. */
const envBasicPairs = () =>
  envList().transform((entries, ctx) => {
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
    NODE_ENV: envString(),
    PORT: envInt(3000, 1, 65535),
    HOST: envString().transform((v) => v ?? '0.0.0.0'),
    WEBHOOK_BASIC_AUTH: envBasicPairs(),
    WEBHOOK_TOKEN_HEADER: envString()
      .transform((v) => v ?? 'X-Gladly-Token')
      .pipe(z.string().regex(HEADER_NAME, 'must be an HTTP header name')),
    WEBHOOK_TOKENS: envList(),
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
          }
        : null,
      opsPort: env.OPS_PORT === 0 ? null : env.OPS_PORT,
    }),
  );

/** Reads the ingest's settings once at start; throws a ConfigError naming every bad variable. */
export function loadConfig(env: NodeJS.ProcessEnv = process.env): IngestConfig {
  return parseEnv(IngestEnv, env);
}
