import { DEFAULT_KLAVIYO_REVISION } from '@gk/klaviyo';
import {
  checkDevCredentials,
  envBool,
  envInt,
  envSecret,
  envStringWithDefault,
  envUrl,
  envUrlWithDefault,
  parseEnv,
  REDIS_SECRETS,
  redisEnvShape,
  required,
  requiredSecret,
} from '@gk/runtime';
import { z } from 'zod';

/** Variables that hold secrets: each can also be read from `<NAME>_FILE`. */
export const WORKER_SECRETS = [...REDIS_SECRETS, 'GLADLY_API_TOKEN', 'KLAVIYO_API_KEY', 'LOG_EMAIL_HASH_KEY'];

/** The fields without the cross-field rules: CLIs pick the few they read. */
export const WorkerEnvShape = z.object({
  ...redisEnvShape,
  GLADLY_API_URL: z.preprocess(
    (v) => (typeof v === 'string' && v.trim() === '' ? undefined : v),
    z
      .url({ protocol: /^https?$/, message: 'is required: an http(s) URL such as https://acme.gladly.com' })
      .transform((v) => v.replace(/\/+$/, '')),
  ),
  GLADLY_API_USER: required("the Gladly API user's email"),
  GLADLY_API_TOKEN: requiredSecret('a Gladly API token'),
  GLADLY_RATE_LIMIT_PER_SECOND: envInt(5, 0, 10_000),
  /** How long a customer's emails are cached (0 = off); Gladly's customer webhooks drop entries sooner. */
  GLADLY_CUSTOMER_CACHE_TTL_SECONDS: envInt(3600, 0, 7 * 24 * 3600),
  KLAVIYO_API_URL: envUrlWithDefault('https://a.klaviyo.com'),
  KLAVIYO_API_KEY: requiredSecret('a Klaviyo private API key with events:write'),
  KLAVIYO_REVISION: z.preprocess(
    (v) => (typeof v === 'string' && v.trim() === '' ? undefined : v),
    z
      .string()
      .regex(/^\d{4}-\d{2}-\d{2}(\.[a-z]+)?$/, 'must be a dated revision such as 2026-07-15')
      .default(DEFAULT_KLAVIYO_REVISION),
  ),
  KLAVIYO_RATE_LIMIT_PER_SECOND: envInt(50, 0, 10_000),
  KLAVIYO_METRIC_STARTED: envStringWithDefault('started conversation in Gladly'),
  KLAVIYO_METRIC_CLOSED: envStringWithDefault('closed conversation in Gladly'),
  KLAVIYO_PROFILE_PROPERTY: envStringWithDefault('In Gladly Conversation'),
  /** The suppression segment `npm run klaviyo -- segment ensure` creates and the doctor looks for. */
  KLAVIYO_SEGMENT_NAME: envStringWithDefault('In a Gladly conversation'),
  KLAVIYO_INCLUDE_CONVERSATION_ID: envBool(false),
  /** false: send only to emails Klaviyo already has a profile for (the key then needs profiles:read). */
  KLAVIYO_CREATE_PROFILES: envBool(true),
  /** How long "Klaviyo has a profile for this email" is cached (absent: at most 60 s); 0 = ask every time. */
  KLAVIYO_PROFILE_CACHE_TTL_SECONDS: envInt(600, 0, 24 * 3600),
  /** `single`: one Create Event per delivery; `bulk`: Bulk Create Events; `auto`: bulk while a backlog waits. */
  KLAVIYO_DELIVERY_MODE: z.preprocess(
    (v) => (typeof v === 'string' ? v.trim().toLowerCase() || undefined : v),
    z.enum(['auto', 'single', 'bulk'], { message: 'must be auto, single or bulk' }).default('auto'),
  ),
  /** In `auto`, bulk requests while more deliveries than this wait. */
  KLAVIYO_BULK_MIN_BACKLOG: envInt(100, 0, 1_000_000),
  /** Global limit on Bulk Create Events requests (Klaviyo: 150/min steady, 10/s burst). */
  KLAVIYO_BULK_RATE_LIMIT_PER_MINUTE: envInt(150, 1, 100_000),
  /** The Klaviyo outage breaker (state/breaker.ts): opens on mostly 5xx/timeouts, probes, releases the backlog at once. */
  KLAVIYO_BREAKER_ENABLED: envBool(true),
  /** How far back a process's window of Klaviyo answers reaches. */
  KLAVIYO_BREAKER_WINDOW_SECONDS: envInt(10, 1, 3600),
  /** Fewer answers than this in the window (of at most 20) never open the breaker. */
  KLAVIYO_BREAKER_MIN_ANSWERS: envInt(10, 1, 20),
  /** More failures than this percentage of the window opens the breaker. */
  KLAVIYO_BREAKER_FAILURE_PERCENT: envInt(50, 1, 99),
  /** The largest gap between probes while open (probes start 1 s apart and double). */
  KLAVIYO_BREAKER_PROBE_MAX_SECONDS: envInt(2, 1, 600),
  WORKER_CONCURRENCY: envInt(20, 1, 1_000),
  WORKER_PORT: envInt(3001, 0, 65_535),
  /** How long a job's lock lives; a killed worker's jobs are retried after about this long. */
  WORKER_LOCK_DURATION_MS: envInt(30_000, 1_000, 600_000),
  /** Cap on a pause from an upstream's Retry-After (a proxy's `86400` must not stop a queue for a day). */
  UPSTREAM_MAX_PAUSE_SECONDS: envInt(300, 1, 24 * 3600),
  HOST: envStringWithDefault('0.0.0.0'),
  /** Keyed hash for emails in logs; set it to keep hashes stable and private across deploys. */
  LOG_EMAIL_HASH_KEY: envSecret(),
  /** The public URL of POST /webhooks/gladly as Gladly calls it; unset: the watchdog is off. */
  GLADLY_WEBHOOK_URL: envUrl(),
  /** Webhook watchdog interval; 0 = off. */
  GLADLY_WEBHOOK_WATCH_SECONDS: envInt(60, 0, 24 * 3600),
  /** An address held "in conversation" longer than this is stuck (gk_profiles_stuck, `profiles stuck`). */
  STUCK_AFTER_DAYS: envInt(14, 0, 3650),
  /** Events API reconciliation interval; 0 = off. */
  RECONCILE_INTERVAL_SECONDS: envInt(300, 0, 6 * 3600),
  /** How far behind now each reconciliation stops (Gladly's Events API is up to 15 s behind). */
  RECONCILE_LAG_SECONDS: envInt(30, 0, 3600),
});

export const WorkerEnv = WorkerEnvShape.superRefine((env, ctx) =>
  checkDevCredentials(
    env,
    {
      GLADLY_API_TOKEN: env.GLADLY_API_TOKEN,
      KLAVIYO_API_KEY: env.KLAVIYO_API_KEY,
      LOG_EMAIL_HASH_KEY: env.LOG_EMAIL_HASH_KEY,
    },
    ctx,
  ),
).superRefine((env, ctx) => {
  if (env.KLAVIYO_DELIVERY_MODE !== 'single' && env.KLAVIYO_REVISION < BULK_MIN_REVISION) {
    ctx.addIssue({
      code: 'custom',
      path: ['KLAVIYO_REVISION'],
      message: `Bulk Create Events needs revision ${BULK_MIN_REVISION} or later (or KLAVIYO_DELIVERY_MODE=single)`,
    });
  }
});

/** The first Klaviyo revision with Bulk Create Events. */
export const BULK_MIN_REVISION = '2024-05-15';

export interface WorkerConfig {
  redis: { url: string; clusterNodes: string[]; prefix: string };
  logLevel: string;
  /** BRIDGE_SANDBOX=true: the sandbox route (dev credentials allowed); /readyz says so. */
  sandbox: boolean;
  gladly: {
    baseUrl: string;
    user: string;
    token: string;
    ratePerSecond: number;
    customerCacheTtlSeconds: number;
  };
  klaviyo: {
    baseUrl: string;
    apiKey: string;
    revision: string;
    ratePerSecond: number;
    metricStarted: string;
    metricClosed: string;
    profileProperty: string;
    segmentName: string;
    includeConversationId: boolean;
    createProfiles: boolean;
    profileCacheTtlSeconds: number;
    /** KLAVIYO_DELIVERY_MODE. */
    deliveryMode: 'auto' | 'single' | 'bulk';
    /** KLAVIYO_BULK_MIN_BACKLOG. */
    bulkMinBacklog: number;
    /** KLAVIYO_BULK_RATE_LIMIT_PER_MINUTE. */
    bulkRatePerMinute: number;
    breaker: {
      enabled: boolean;
      rule: { windowMs: number; minAnswers: number; failurePercent: number };
      probeMaxMs: number;
    };
  };
  selfHealing: {
    webhookUrl: string | undefined;
    watchSeconds: number;
    reconcileIntervalSeconds: number;
    reconcileLagSeconds: number;
  };
  concurrency: number;
  lockDurationMs: number;
  /** STUCK_AFTER_DAYS. */
  stuckAfterDays: number;
  /** UPSTREAM_MAX_PAUSE_SECONDS in ms. */
  upstreamMaxPauseMs: number;
  port: number;
  host: string;
  /**
   * LOG_EMAIL_HASH_KEY: the key of the email pseudonyms. Unset: a key generated at first start
   * and kept in Redis (see PseudonymKey).
   */
  emailHashKey: string | undefined;
}

export function loadWorkerConfig(env: NodeJS.ProcessEnv = process.env): WorkerConfig {
  const e = parseEnv(WorkerEnv, env, { secrets: WORKER_SECRETS });
  return {
    redis: { url: e.REDIS_URL, clusterNodes: e.REDIS_CLUSTER_NODES, prefix: e.QUEUE_PREFIX },
    logLevel: e.LOG_LEVEL,
    sandbox: e.BRIDGE_SANDBOX,
    gladly: {
      baseUrl: e.GLADLY_API_URL,
      user: e.GLADLY_API_USER,
      token: e.GLADLY_API_TOKEN,
      ratePerSecond: e.GLADLY_RATE_LIMIT_PER_SECOND,
      customerCacheTtlSeconds: e.GLADLY_CUSTOMER_CACHE_TTL_SECONDS,
    },
    klaviyo: {
      baseUrl: e.KLAVIYO_API_URL,
      apiKey: e.KLAVIYO_API_KEY,
      revision: e.KLAVIYO_REVISION,
      ratePerSecond: e.KLAVIYO_RATE_LIMIT_PER_SECOND,
      metricStarted: e.KLAVIYO_METRIC_STARTED,
      metricClosed: e.KLAVIYO_METRIC_CLOSED,
      profileProperty: e.KLAVIYO_PROFILE_PROPERTY,
      segmentName: e.KLAVIYO_SEGMENT_NAME,
      includeConversationId: e.KLAVIYO_INCLUDE_CONVERSATION_ID,
      createProfiles: e.KLAVIYO_CREATE_PROFILES,
      profileCacheTtlSeconds: e.KLAVIYO_PROFILE_CACHE_TTL_SECONDS,
      deliveryMode: e.KLAVIYO_DELIVERY_MODE,
      bulkMinBacklog: e.KLAVIYO_BULK_MIN_BACKLOG,
      bulkRatePerMinute: e.KLAVIYO_BULK_RATE_LIMIT_PER_MINUTE,
      breaker: {
        enabled: e.KLAVIYO_BREAKER_ENABLED,
        rule: {
          windowMs: e.KLAVIYO_BREAKER_WINDOW_SECONDS * 1000,
          minAnswers: e.KLAVIYO_BREAKER_MIN_ANSWERS,
          failurePercent: e.KLAVIYO_BREAKER_FAILURE_PERCENT,
        },
        probeMaxMs: e.KLAVIYO_BREAKER_PROBE_MAX_SECONDS * 1000,
      },
    },
    selfHealing: {
      webhookUrl: e.GLADLY_WEBHOOK_URL,
      watchSeconds: e.GLADLY_WEBHOOK_WATCH_SECONDS,
      reconcileIntervalSeconds: e.RECONCILE_INTERVAL_SECONDS,
      reconcileLagSeconds: e.RECONCILE_LAG_SECONDS,
    },
    concurrency: e.WORKER_CONCURRENCY,
    lockDurationMs: e.WORKER_LOCK_DURATION_MS,
    stuckAfterDays: e.STUCK_AFTER_DAYS,
    upstreamMaxPauseMs: e.UPSTREAM_MAX_PAUSE_SECONDS * 1000,
    port: e.WORKER_PORT,
    host: e.HOST,
    emailHashKey: e.LOG_EMAIL_HASH_KEY,
  };
}
