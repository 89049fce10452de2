// What `npm start` and `npm run demo` share: the dev-only defaults, .env loading and the URLs of a
// locally running stack. Plain ESM so neither script needs a build of its own.
import { existsSync } from 'node:fs';
import { dirname, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';

export const ROOT = resolve(dirname(fileURLToPath(import.meta.url)), '..');

/**
 * Dev-only credentials, used only when nothing is configured. They are printed on every start
 * and protect nothing real: the launcher binds to 127.0.0.1 unless HOST says otherwise.
 */
export const DEV = {
  webhookUser: 'gladly',
  webhookPassword: 'dev-webhook-password',
  adminUser: 'admin',
  adminPassword: 'dev-admin-password',
  // Must match the sandbox's own defaults (apps/sandbox/src/config.ts); the launcher passes them anyway.
  sandboxGladlyUser: 'sandbox-api-user@example.com',
  sandboxGladlyToken: 'dev-gladly-token',
  sandboxKlaviyoKey: 'pk_dev_sandbox_key',
  ingestPort: 3000,
  workerPort: 3001,
  sandboxPort: 4010,
};

/** Set and not blank (the services treat a blank variable as unset, so the scripts do too). */
export function configured(env, name) {
  const value = env[name];
  return typeof value === 'string' && value.trim() !== '';
}

export function value(env, name, fallback) {
  return configured(env, name) ? env[name].trim() : fallback;
}

/**
 * Loads `.env` (or START_ENV_FILE) into process.env; variables already in the environment win.
 * Returns the file loaded, or null.
 */
export function loadDotEnv(env = process.env) {
  const file = resolve(ROOT, value(env, 'START_ENV_FILE', '.env'));
  if (!existsSync(file)) return null;
  process.loadEnvFile(file);
  return file;
}

/** Where a browser or a script on this machine reaches a service listening on `host`. */
export function localHost(env) {
  const host = value(env, 'HOST', '127.0.0.1');
  if (host === '0.0.0.0' || host === '::' || host === '[::]') return '127.0.0.1';
  return host.includes(':') && !host.startsWith('[') ? `[${host}]` : host;
}

export function stackUrls(env) {
  const host = localHost(env);
  const ingest = `http://${host}:${value(env, 'PORT', String(DEV.ingestPort))}`;
  const worker = `http://${host}:${value(env, 'WORKER_PORT', String(DEV.workerPort))}`;
  const sandbox = `http://${host}:${value(env, 'SANDBOX_PORT', String(DEV.sandboxPort))}`;
  return {
    ingest,
    worker,
    sandbox,
    webhook: `${ingest}/webhooks/gladly`,
    dashboard: `${ingest}/admin/queues`,
  };
}

/** The first entry of a secret list as the ingest reads it: a JSON array, or one value verbatim. */
function firstOfList(raw) {
  if (!raw.trimStart().startsWith('[')) return raw;
  try {
    const list = JSON.parse(raw);
    return Array.isArray(list) && typeof list[0] === 'string' ? list[0] : raw;
  } catch {
    return raw;
  }
}

/** The first configured webhook credential, as Gladly would send it; the dev pair when none is. */
export function webhookCredential(env) {
  if (configured(env, 'WEBHOOK_BASIC_AUTH')) {
    const pair = firstOfList(env.WEBHOOK_BASIC_AUTH);
    const user = pair.slice(0, pair.indexOf(':'));
    return { kind: 'basic', user, headers: { authorization: basic(pair) }, source: 'WEBHOOK_BASIC_AUTH' };
  }
  if (configured(env, 'WEBHOOK_TOKENS')) {
    const header = value(env, 'WEBHOOK_TOKEN_HEADER', 'X-Gladly-Token');
    const token = firstOfList(env.WEBHOOK_TOKENS);
    return { kind: 'token', header, headers: { [header.toLowerCase()]: token }, source: 'WEBHOOK_TOKENS' };
  }
  const pair = `${DEV.webhookUser}:${DEV.webhookPassword}`;
  return { kind: 'basic', user: DEV.webhookUser, headers: { authorization: basic(pair) }, source: 'dev' };
}

/** ADMIN_USERNAME/ADMIN_PASSWORD when configured, else the dev pair. */
export function adminCredential(env) {
  if (configured(env, 'ADMIN_USERNAME') || configured(env, 'ADMIN_PASSWORD')) {
    return { user: env.ADMIN_USERNAME ?? '', password: env.ADMIN_PASSWORD ?? '', source: 'ADMIN_USERNAME' };
  }
  return { user: DEV.adminUser, password: DEV.adminPassword, source: 'dev' };
}

export function basic(pair) {
  return `Basic ${Buffer.from(pair).toString('base64')}`;
}

/** Colours only on a terminal, and never when NO_COLOR is set. */
export function painter(stream) {
  const on =
    Boolean(stream.isTTY) &&
    !configured(process.env, 'NO_COLOR') &&
    value(process.env, 'TERM', '') !== 'dumb';
  const wrap = (code) => (text) => (on ? `\x1b[${code}m${text}\x1b[0m` : String(text));
  return {
    enabled: on,
    bold: wrap('1'),
    dim: wrap('2'),
    red: wrap('31'),
    green: wrap('32'),
    yellow: wrap('33'),
    blue: wrap('34'),
    magenta: wrap('35'),
    cyan: wrap('36'),
    gray: wrap('90'),
  };
}
