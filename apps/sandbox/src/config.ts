import { envInt, envList, envLogLevel, envString, envStringWithDefault, parseEnv } from '@gk/runtime';
import { z } from 'zod';

/**
 * Dev-only credentials the sandbox accepts unless told otherwise. They protect nothing real:
 * the sandbox only ever holds made-up demo customers. `npm start` and docker-compose point the
 * worker at the sandbox with these same values.
 */
export const SANDBOX_DEFAULTS = {
  port: 4010,
  gladlyUser: 'sandbox-api-user@example.com',
  gladlyToken: 'dev-gladly-token',
  klaviyoApiKey: 'pk_dev_sandbox_key',
  /** Gladly's documented limit: 10 GET requests per second per organisation. */
  gladlyRatePerSecond: 10,
} as const;

const blankToUndefined = (v: unknown) => (typeof v === 'string' && v.trim() === '' ? undefined : v);

/** A probability between 0 and 1 ("0.1" = one request in ten). */
const envRate = () =>
  z.preprocess(
    blankToUndefined,
    z.coerce
      .number({ message: 'must be a number between 0 and 1' })
      .min(0, 'must be between 0 and 1')
      .max(1, 'must be between 0 and 1')
      .default(0),
  );

export const SandboxEnv = z.object({
  SANDBOX_PORT: envInt(SANDBOX_DEFAULTS.port, 0, 65_535),
  /** Loopback by default: the sandbox has no auth on its own pages. Compose sets 0.0.0.0. */
  SANDBOX_HOST: envStringWithDefault('127.0.0.1'),
  SANDBOX_GLADLY_USER: envStringWithDefault(SANDBOX_DEFAULTS.gladlyUser),
  SANDBOX_GLADLY_TOKEN: envStringWithDefault(SANDBOX_DEFAULTS.gladlyToken),
  SANDBOX_KLAVIYO_API_KEY: envStringWithDefault(SANDBOX_DEFAULTS.klaviyoApiKey),
  /** 0 turns the limit off. */
  SANDBOX_GLADLY_RATE_LIMIT_PER_SECOND: envInt(SANDBOX_DEFAULTS.gladlyRatePerSecond, 0, 100_000),
  /** 0 (default) turns the limit off; over it the sandbox answers 429 with Retry-After as Klaviyo does. */
  SANDBOX_KLAVIYO_RATE_LIMIT_PER_SECOND: envInt(0, 0, 100_000),
  /** Share of Klaviyo POSTs answered 503 (fault injection); default 0. */
  SANDBOX_KLAVIYO_FAILURE_RATE: envRate(),
  /** Share of Gladly lookups answered 503 (fault injection); default 0. */
  SANDBOX_GLADLY_FAILURE_RATE: envRate(),
  /**
   * Scopes of the sandbox's Klaviyo key, comma-separated (e.g. `events:write`): a request needing
   * another answers 403 as Klaviyo does. Blank (default) = a full-access key.
   */
  SANDBOX_KLAVIYO_SCOPES: envList(),
  /** Oldest Klaviyo `revision` the sandbox accepts (older → 400); blank = any. */
  SANDBOX_KLAVIYO_REVISION_MIN: envString().pipe(
    z
      .string()
      .regex(/^\d{4}-\d{2}-\d{2}$/, 'must be a date such as 2026-07-15')
      .optional(),
  ),
  LOG_LEVEL: envLogLevel(),
});

export interface SandboxConfig {
  port: number;
  host: string;
  gladly: { user: string; token: string; ratePerSecond: number; failureRate: number };
  klaviyo: {
    apiKey: string;
    ratePerSecond: number;
    failureRate: number;
    /** null = full access. */
    scopes: string[] | null;
    revisionMin: string | undefined;
  };
  logLevel: string;
}

/** Reads the sandbox's settings once at start; throws a ConfigError naming every bad variable. */
export function loadSandboxConfig(env: NodeJS.ProcessEnv = process.env): SandboxConfig {
  const e = parseEnv(SandboxEnv, env);
  return {
    port: e.SANDBOX_PORT,
    host: e.SANDBOX_HOST,
    gladly: {
      user: e.SANDBOX_GLADLY_USER,
      token: e.SANDBOX_GLADLY_TOKEN,
      ratePerSecond: e.SANDBOX_GLADLY_RATE_LIMIT_PER_SECOND,
      failureRate: e.SANDBOX_GLADLY_FAILURE_RATE,
    },
    klaviyo: {
      apiKey: e.SANDBOX_KLAVIYO_API_KEY,
      ratePerSecond: e.SANDBOX_KLAVIYO_RATE_LIMIT_PER_SECOND,
      failureRate: e.SANDBOX_KLAVIYO_FAILURE_RATE,
      scopes: e.SANDBOX_KLAVIYO_SCOPES.length > 0 ? e.SANDBOX_KLAVIYO_SCOPES : null,
      revisionMin: e.SANDBOX_KLAVIYO_REVISION_MIN,
    },
    logLevel: e.LOG_LEVEL,
  };
}
