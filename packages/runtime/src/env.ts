import { readFileSync } from 'node:fs';
import { z } from 'zod';

/** A configuration problem: the message names every offending variable. */
export class ConfigError extends Error {
  override name = 'ConfigError';
}

/**
 * Parses `env` with a zod object schema whose keys are env var names; throws a ConfigError
 * naming each bad variable (never its value: it may be a secret).
 */
export function parseEnv<S extends z.ZodType>(
  schema: S,
  env: NodeJS.ProcessEnv = process.env,
  options: { secrets?: readonly string[] } = {},
): z.infer<S> {
  const result = schema.safeParse(options.secrets ? readSecretFiles(env, options.secrets) : env);
  if (result.success) return result.data;
  const lines = result.error.issues.map((issue) => {
    const name = issue.path.length > 0 ? issue.path.join('.') : '(configuration)';
    return `  ${name}: ${issue.message}`;
  });
  throw new ConfigError(`Invalid configuration:\n${lines.join('\n')}`);
}

/**
 * Every secret variable can come from a file instead (`<NAME>_FILE`: Docker and Kubernetes
 * secrets mount them as files). One trailing newline is stripped (editors and `echo` add one);
 * anything else is taken as written. Setting both is refused: which one wins would be a guess.
 */
export function readSecretFiles(env: NodeJS.ProcessEnv, names: readonly string[]): NodeJS.ProcessEnv {
  const out: NodeJS.ProcessEnv = { ...env };
  const problems: string[] = [];
  for (const name of names) {
    const file = env[`${name}_FILE`];
    if (file === undefined || file === '') continue;
    if (env[name] !== undefined && env[name] !== '') {
      problems.push(`  ${name}_FILE: set together with ${name}; set one of them`);
      continue;
    }
    try {
      out[name] = readFileSync(file, 'utf8').replace(/\r?\n$/, '');
    } catch (err) {
      const code = (err as NodeJS.ErrnoException).code ?? 'error';
      problems.push(`  ${name}_FILE: cannot read the file it names (${code})`);
    }
  }
  if (problems.length > 0) throw new ConfigError(`Invalid configuration:\n${problems.join('\n')}`);
  return out;
}

/** Helpers for env var schemas: an empty string counts as unset. */
const blankToUndefined = (v: unknown) => (typeof v === 'string' && v.trim() === '' ? undefined : v);

export const envString = () => z.preprocess(blankToUndefined, z.string().trim().min(1).optional());

export const envStringWithDefault = (def: string) =>
  z.preprocess(blankToUndefined, z.string().trim().min(1).default(def));

export const envInt = (def: number, min: number, max: number) =>
  z.preprocess(
    blankToUndefined,
    z.coerce
      .number({ message: 'must be a number' })
      .int('must be an integer')
      .min(min, `must be at least ${min}`)
      .max(max, `must be at most ${max}`)
      .default(def),
  );

export const envBool = (def: boolean) =>
  z.preprocess(
    blankToUndefined,
    z
      .enum(['true', 'false', '1', '0', 'yes', 'no'], { message: 'must be true or false' })
      .default(def ? 'true' : 'false')
      .transform((v) => v === 'true' || v === '1' || v === 'yes'),
  );

const httpUrl = () =>
  z.url({ protocol: /^https?$/, message: 'must be an http(s) URL' }).transform((v) => v.replace(/\/+$/, ''));

export const envUrl = () => z.preprocess(blankToUndefined, httpUrl().optional());

export const envUrlWithDefault = (def: string) => z.preprocess(blankToUndefined, httpUrl().default(def));

export const envList = () =>
  z.preprocess(
    blankToUndefined,
    z
      .string()
      .optional()
      .transform((v) =>
        (v ?? '')
          .split(',')
          .map((s) => s.trim())
          .filter((s) => s.length > 0),
      ),
  );

/** A required value (trimmed): the message says what it is, e.g. "a Gladly API token". */
export const required = (what: string) =>
  z.preprocess(
    blankToUndefined,
    z
      .string({ message: `is required (${what})` })
      .trim()
      .min(1),
  );

/** A secret, taken verbatim (spaces may be part of it); only an empty value counts as unset. */
export const envSecret = () => z.preprocess((v) => (v === '' ? undefined : v), z.string().optional());

/** A required secret, verbatim. */
export const requiredSecret = (what: string) =>
  z.preprocess((v) => (v === '' ? undefined : v), z.string({ message: `is required (${what})` }));

/**
 * A list of secrets that cannot be confused with a secret: a JSON array of strings
 * (`["a,b", " c"]`), each taken verbatim; any other value is one secret, verbatim, whatever
 * commas, colons or spaces it holds.
 */
export const envSecretList = () =>
  z.preprocess(
    (v) => (v === '' ? undefined : v),
    z
      .string()
      .optional()
      .transform((v, ctx): string[] => {
        if (v === undefined) return [];
        if (!v.trimStart().startsWith('[')) return [v];
        let parsed: unknown;
        try {
          parsed = JSON.parse(v);
        } catch {
          // The message never quotes the value: it holds secrets.
          ctx.addIssue({ code: 'custom', message: 'starts with "[" but is not a JSON array of strings' });
          return z.NEVER;
        }
        if (!Array.isArray(parsed) || !parsed.every((e) => typeof e === 'string' && e.length > 0)) {
          ctx.addIssue({ code: 'custom', message: 'must be a JSON array of non-empty strings' });
          return z.NEVER;
        }
        return parsed as string[];
      }),
  );

/**
 * Values `npm start`, the sandbox and docker-compose's sandbox route use. Outside the sandbox a
 * production service refuses them: they are published in this repository.
 */
export const DEV_CREDENTIALS: readonly string[] = [
  'dev-webhook-password',
  'dev-admin-password',
  'dev-gladly-token',
  'pk_dev_sandbox_key',
];

/** Shorter than this, a production secret is taken for a placeholder. */
export const MIN_SECRET_LENGTH = 16;

/**
 * The one rule for development credentials: with NODE_ENV=production and not BRIDGE_SANDBOX=true,
 * each secret must be at least MIN_SECRET_LENGTH characters and none of DEV_CREDENTIALS. Adds an
 * issue naming the variable (never the value) for each that breaks it.
 */
export function checkDevCredentials(
  env: { NODE_ENV?: string | undefined; BRIDGE_SANDBOX: boolean },
  secrets: Record<string, readonly string[] | string | undefined>,
  ctx: z.RefinementCtx,
): void {
  if (env.NODE_ENV !== 'production' || env.BRIDGE_SANDBOX) return;
  for (const [name, value] of Object.entries(secrets)) {
    const values = value === undefined ? [] : typeof value === 'string' ? [value] : value;
    for (const v of values) {
      const why = DEV_CREDENTIALS.includes(v)
        ? 'is a development default'
        : v.length < MIN_SECRET_LENGTH
          ? `is shorter than ${MIN_SECRET_LENGTH} characters`
          : null;
      if (why) {
        ctx.addIssue({
          code: 'custom',
          path: [name],
          message: `${why}: refused with NODE_ENV=production (set BRIDGE_SANDBOX=true only for the sandbox)`,
        });
        break;
      }
    }
  }
}

export const envLogLevel = () =>
  z.preprocess(
    blankToUndefined,
    z.enum(['fatal', 'error', 'warn', 'info', 'debug', 'trace', 'silent']).default('info'),
  );

/** The Redis settings every process shares: REDIS_URL, REDIS_CLUSTER_NODES, QUEUE_PREFIX. */
export const redisEnvShape = {
  REDIS_URL: z.preprocess(
    blankToUndefined,
    z
      .string()
      .regex(/^rediss?:\/\//, 'must start with redis:// or rediss://')
      .default('redis://127.0.0.1:6379'),
  ),
  REDIS_CLUSTER_NODES: z.preprocess(
    blankToUndefined,
    z
      .string()
      .optional()
      .transform((v) =>
        (v ?? '')
          .split(',')
          .map((s) => s.trim())
          .filter((s) => s.length > 0),
      )
      .pipe(z.array(z.string().regex(/^[^\s:]+:\d{1,5}$/, 'each node must be host:port'))),
  ),
  QUEUE_PREFIX: z.preprocess(
    blankToUndefined,
    z
      .string()
      .regex(/^[A-Za-z0-9_{}-]{1,32}$/, 'must be 1-32 letters, digits, _, -, { or }')
      .default('gk'),
  ),
  LOG_LEVEL: envLogLevel(),
  NODE_ENV: envString(),
  /** The sandbox route (`npm start` without real keys, compose's sandbox profile): dev credentials allowed. */
  BRIDGE_SANDBOX: envBool(false),
};

/** REDIS_URL can carry a password: it is a secret too (REDIS_URL_FILE). */
export const REDIS_SECRETS = ['REDIS_URL'] as const;

/**
 * For a service's main: loads its config, or prints the ConfigError (which names every bad
 * variable, never a value) to stderr and exits 1. Other errors propagate.
 */
export function loadConfigOrExit<T>(service: string, load: () => T): T {
  try {
    return load();
  } catch (err) {
    if (err instanceof ConfigError) {
      process.stderr.write(`${service}: ${err.message}\n`);
      process.exit(1);
    }
    throw err;
  }
}
