#!/usr/bin/env node
// `npm start`: the whole bridge on this machine. Builds, finds or starts Redis, starts the ingest
// and the worker (and the sandbox when no real Gladly or Klaviyo is configured), prints where
// everything is, and stops it all on Ctrl-C. Configuration: the environment, then `.env`.
import { spawn, spawnSync } from 'node:child_process';
import { mkdirSync } from 'node:fs';
import { createConnection, createServer } from 'node:net';
import { relative, resolve } from 'node:path';
import { createInterface } from 'node:readline';
import {
  adminCredential,
  configured,
  DEV,
  loadDotEnv,
  painter,
  ROOT,
  stackUrls,
  value,
  webhookCredential,
} from './dev-stack.mjs';

const paint = painter(process.stdout);
const NAMES = {
  start: paint.bold,
  redis: paint.red,
  ingest: paint.cyan,
  worker: paint.magenta,
  sandbox: paint.green,
};
const TAG_WIDTH = 7;
const APP_STOP_DEADLINE_MS = 30_000;
const READY_TIMEOUT_MS = 60_000;

const tag = (name) => (NAMES[name] ?? paint.bold)(`${name.padEnd(TAG_WIDTH)} │`);
const say = (line = '') => process.stdout.write(`${tag('start')} ${line}\n`);
const fail = (message) => {
  process.stderr.write(`${tag('start')} ${paint.red('error:')} ${message}\n`);
  process.exit(1);
};

/** name → { child, exited: Promise<{code, signal}> } */
const children = new Map();
let stopping = false;

async function main() {
  const envFile = loadDotEnv();
  const env = process.env;
  if (envFile) say(`loaded ${envFile.startsWith(`${ROOT}/`) ? relative(ROOT, envFile) : envFile}`);

  if (env.SKIP_BUILD !== '1') {
    say('building (npx turbo run build)…');
    const build = spawnSync('npx', ['turbo', 'run', 'build', '--output-logs=errors-only'], {
      cwd: ROOT,
      stdio: 'inherit',
      env: { ...env, TURBO_TELEMETRY_DISABLED: '1' },
    });
    if (build.status !== 0) fail('the build failed (see above)');
  }

  const sandboxMode = !configured(env, 'KLAVIYO_API_KEY') && !configured(env, 'GLADLY_API_URL');
  const host = value(env, 'HOST', '127.0.0.1');
  const ports = {
    ingest: Number(value(env, 'PORT', String(DEV.ingestPort))),
    worker: Number(value(env, 'WORKER_PORT', String(DEV.workerPort))),
    ...(sandboxMode ? { sandbox: Number(value(env, 'SANDBOX_PORT', String(DEV.sandboxPort))) } : {}),
  };
  const portVars = { ingest: 'PORT', worker: 'WORKER_PORT', sandbox: 'SANDBOX_PORT' };
  for (const [name, port] of Object.entries(ports)) {
    if (!Number.isInteger(port) || port < 1 || port > 65_535) fail(`${portVars[name]} must be a port number`);
    if (!(await portFree(port, host))) {
      fail(
        `port ${port} (${name}) is already in use on ${host}: stop what holds it, or set ${portVars[name]}=…`,
      );
    }
  }

  const redis = await ensureRedis(env);
  if (stopping) return;

  const childEnv = {
    ...env,
    HOST: host,
    REDIS_URL: redis.url ?? env.REDIS_URL ?? '',
    PORT: String(ports.ingest),
    WORKER_PORT: String(ports.worker),
  };
  const webhook = webhookCredential(env);
  const authDisabled = /^(true|1|yes)$/i.test(value(env, 'WEBHOOK_AUTH_DISABLED', 'false'));
  if (webhook.source === 'dev' && !authDisabled) {
    childEnv.WEBHOOK_BASIC_AUTH = `${DEV.webhookUser}:${DEV.webhookPassword}`;
  }
  const admin = adminCredential(env);
  if (admin.source === 'dev') {
    childEnv.ADMIN_USERNAME = DEV.adminUser;
    childEnv.ADMIN_PASSWORD = DEV.adminPassword;
  }
  const urls = stackUrls(childEnv);

  let sandbox = null;
  if (sandboxMode) {
    sandbox = {
      url: `http://${host === '0.0.0.0' || host === '::' ? '127.0.0.1' : host}:${ports.sandbox}`,
      user: value(env, 'SANDBOX_GLADLY_USER', DEV.sandboxGladlyUser),
      token: value(env, 'SANDBOX_GLADLY_TOKEN', DEV.sandboxGladlyToken),
      key: value(env, 'SANDBOX_KLAVIYO_API_KEY', DEV.sandboxKlaviyoKey),
    };
    Object.assign(childEnv, {
      SANDBOX_PORT: String(ports.sandbox),
      SANDBOX_HOST: host,
      SANDBOX_GLADLY_USER: sandbox.user,
      SANDBOX_GLADLY_TOKEN: sandbox.token,
      SANDBOX_KLAVIYO_API_KEY: sandbox.key,
      GLADLY_API_URL: sandbox.url,
      GLADLY_API_USER: sandbox.user,
      GLADLY_API_TOKEN: sandbox.token,
      KLAVIYO_API_URL: sandbox.url,
      KLAVIYO_API_KEY: sandbox.key,
      // The sandbox route: its published dev credentials are accepted even with NODE_ENV=production.
      BRIDGE_SANDBOX: 'true',
    });
    say('no KLAVIYO_API_KEY and no GLADLY_API_URL configured: running against the sandbox');
    startChild('sandbox', process.execPath, ['apps/sandbox/dist/main.js'], childEnv);
  } else {
    say(
      `running against ${env.GLADLY_API_URL ?? '(GLADLY_API_URL not set)'} and ${value(env, 'KLAVIYO_API_URL', 'https://a.klaviyo.com')}`,
    );
  }
  startChild('ingest', process.execPath, ['apps/ingest/dist/main.js'], childEnv);
  startChild('worker', process.execPath, ['apps/worker/dist/main.js'], childEnv);

  const probes = [
    ['ingest', `${urls.ingest}/readyz`],
    ['worker', `${urls.worker}/readyz`],
    ...(sandbox ? [['sandbox', `${sandbox.url}/healthz`]] : []),
  ];
  const notReady = await waitReady(probes);
  if (stopping) return;
  printBanner({ env, urls, sandbox, redis, webhook, admin, notReady, host });
}

/** Finds Redis at REDIS_URL, or starts a local redis-server with AOF when none answers on loopback. */
async function ensureRedis(env) {
  if (configured(env, 'REDIS_CLUSTER_NODES')) {
    say(`using the Redis Cluster at ${env.REDIS_CLUSTER_NODES}`);
    return { url: null, started: false, shown: `cluster ${env.REDIS_CLUSTER_NODES}` };
  }
  const url = value(env, 'REDIS_URL', 'redis://127.0.0.1:6379');
  let parsed;
  try {
    parsed = new URL(url);
  } catch {
    fail('REDIS_URL is not a URL (expected redis://host:port)');
  }
  const port = Number(parsed.port || 6379);
  const hostname = parsed.hostname.replace(/^\[|\]$/g, '');
  const shown = redactUrl(parsed);
  if (await redisAnswers(hostname, port)) {
    say(`using the Redis at ${shown}`);
    return { url, started: false, shown };
  }
  const loopback = ['127.0.0.1', 'localhost', '::1'].includes(hostname);
  if (!loopback)
    fail(`nothing answers at REDIS_URL (${shown}); start that Redis, or unset REDIS_URL to run one here`);

  const version = spawnSync('redis-server', ['--version'], { encoding: 'utf8' });
  if (version.error || version.status !== 0) {
    fail(
      [
        `no Redis answers at ${shown} and there is no redis-server to start one.`,
        '  Install Redis, then run npm start again:',
        '    Debian/Ubuntu:  sudo apt-get install redis-server',
        '    macOS:          brew install redis',
        '  or point REDIS_URL (in .env) at a Redis you already run.',
      ].join('\n'),
    );
  }
  const listenPort = (await portFree(port, '127.0.0.1')) ? port : await freePort();
  const dir = resolve(ROOT, value(env, 'START_DATA_DIR', '.data'), 'redis');
  mkdirSync(dir, { recursive: true });
  // AOF, fsync every second, never evict: the queues are the bridge's durable outbox (see DESIGN.md).
  const args = [
    '--port',
    String(listenPort),
    '--bind',
    '127.0.0.1',
    '--dir',
    dir,
    '--appendonly',
    'yes',
    '--appendfsync',
    'everysec',
    '--maxmemory-policy',
    'noeviction',
    '--save',
    '',
  ];
  startChild('redis', 'redis-server', args, process.env);
  const started = await waitFor(() => redisAnswers('127.0.0.1', listenPort), 10_000);
  if (!started) await stopAll(1, 'redis-server did not start (see its output above)');
  const localUrl = `redis://127.0.0.1:${listenPort}`;
  say(`started redis-server on ${localUrl} (AOF in ${relative(ROOT, dir) || dir})`);
  return { url: localUrl, started: true, shown: localUrl, dir };
}

/**
 * Each child runs in its own process group, so a Ctrl-C in the terminal (or a signal to this
 * launcher's group) reaches only the launcher: the children then get exactly one SIGTERM each,
 * the apps first and Redis last, once nothing uses it any more. (A second SIGTERM to a service
 * that is already draining would kill it.)
 */
function startChild(name, command, args, env) {
  // A Ctrl-C while starting up: start nothing more (stopAll has already taken stock).
  if (stopping) return null;
  const child = spawn(command, args, { cwd: ROOT, env, stdio: ['ignore', 'pipe', 'pipe'], detached: true });
  const exited = new Promise((resolveExit) => {
    child.once('exit', (code, signal) => resolveExit({ code, signal }));
    child.once('error', (err) => {
      process.stderr.write(`${tag(name)} ${paint.red(`could not start: ${err.message}`)}\n`);
      resolveExit({ code: 1, signal: null });
    });
  });
  for (const stream of [child.stdout, child.stderr]) {
    createInterface({ input: stream, crlfDelay: Number.POSITIVE_INFINITY }).on('line', (line) => {
      process.stdout.write(`${tag(name)} ${formatLine(line)}\n`);
    });
  }
  children.set(name, { child, exited });
  exited.then(({ code, signal }) => {
    if (stopping) return;
    const how = signal ? `was killed by ${signal}` : `exited with code ${code}`;
    void stopAll(1, `${name} ${how}: stopping everything`);
  });
  // Whatever ends this process (an uncaught error included), nothing it started outlives it.
  process.once('exit', () => {
    if (child.exitCode === null && child.signalCode === null) child.kill('SIGTERM');
  });
  return child;
}

/** Pino's JSON lines as `time level message key=value…`; anything else as it came. */
function formatLine(line) {
  if (value(process.env, 'START_RAW_LOGS', '') === '1' || !line.startsWith('{')) return line;
  let record;
  try {
    record = JSON.parse(line);
  } catch {
    return line;
  }
  if (!record || typeof record !== 'object' || typeof record.msg !== 'string') return line;
  const {
    level,
    time,
    msg,
    service: _service,
    name: _name,
    pid: _pid,
    hostname: _hostname,
    ...rest
  } = record;
  const clock =
    typeof time === 'string' || typeof time === 'number' ? new Date(time).toTimeString().slice(0, 8) : '';
  const levels = {
    warn: paint.yellow,
    error: paint.red,
    fatal: paint.red,
    debug: paint.gray,
    trace: paint.gray,
  };
  const label = String(level ?? 'info').padEnd(5);
  const extras = Object.entries(rest)
    .map(([k, v]) => `${k}=${typeof v === 'string' ? v : JSON.stringify(v)}`)
    .join(' ');
  return `${paint.gray(clock)} ${(levels[level] ?? paint.blue)(label)} ${msg}${extras ? ` ${paint.gray(extras)}` : ''}`;
}

async function waitReady(probes) {
  const pending = new Map(probes);
  const reasons = new Map();
  const deadline = Date.now() + READY_TIMEOUT_MS;
  while (pending.size > 0 && Date.now() < deadline && !stopping) {
    for (const [name, url] of pending) {
      try {
        const res = await fetch(url, { signal: AbortSignal.timeout(2_000) });
        if (res.ok) pending.delete(name);
        else reasons.set(name, ((await res.json().catch(() => ({}))).reasons ?? []).join('; '));
      } catch {
        reasons.set(name, 'not answering yet');
      }
    }
    if (pending.size > 0) await sleep(250);
  }
  return [...pending.keys()].map((name) => ({ name, reason: reasons.get(name) || 'not ready' }));
}

function printBanner({ env, urls, sandbox, redis, webhook, admin, notReady, host }) {
  const { bold, dim, green, yellow } = paint;
  const row = (label, text) => `  ${bold(label.padEnd(11))} ${text}`;
  const webhookAuth =
    webhook.source === 'dev'
      ? /^(true|1|yes)$/i.test(value(env, 'WEBHOOK_AUTH_DISABLED', 'false'))
        ? yellow('authentication DISABLED (WEBHOOK_AUTH_DISABLED)')
        : `HTTP Basic  ${bold(DEV.webhookUser)} / ${bold(DEV.webhookPassword)}  ${dim('(dev only: set WEBHOOK_BASIC_AUTH)')}`
      : webhook.kind === 'basic'
        ? `HTTP Basic  ${bold(webhook.user)} / ${dim('(password from WEBHOOK_BASIC_AUTH)')}`
        : `header ${bold(webhook.header)}: ${dim('(token from WEBHOOK_TOKENS)')}`;
  const adminAuth =
    admin.source === 'dev'
      ? `${bold(DEV.adminUser)} / ${bold(DEV.adminPassword)}  ${dim('(dev only: set ADMIN_USERNAME/ADMIN_PASSWORD)')}`
      : `${bold(admin.user)} / ${dim('(password from ADMIN_PASSWORD)')}`;
  const line = dim('─'.repeat(78));
  const lines = [
    '',
    line,
    `  ${green(bold('Gladly → Klaviyo bridge is running'))}  ${dim('·')}  ${sandbox ? 'sandbox (BRIDGE_SANDBOX=true: no real Gladly or Klaviyo configured, dev credentials accepted)' : 'connected to real Gladly and Klaviyo'}`,
    '',
    row('Webhook', `POST ${urls.webhook}`),
    row('', webhookAuth),
    row(
      'Dashboard',
      `${urls.dashboard}${configured(env, 'ADMIN_READ_ONLY') && /^(true|1|yes)$/i.test(env.ADMIN_READ_ONLY) ? dim('  (read-only)') : ''}`,
    ),
    row('', adminAuth),
  ];
  if (sandbox) {
    lines.push(
      row(
        'Sandbox',
        `${sandbox.url}/  ${dim('(live page; also the worker’s GLADLY_API_URL and KLAVIYO_API_URL)')}`,
      ),
      row('', `Gladly API ${bold(sandbox.user)} / ${bold(sandbox.token)}, Klaviyo key ${bold(sandbox.key)}`),
    );
  } else {
    lines.push(
      row(
        'Gladly',
        `${env.GLADLY_API_URL ?? '(GLADLY_API_URL not set)'} ${dim(`as ${env.GLADLY_API_USER ?? '(GLADLY_API_USER not set)'}`)}`,
      ),
      row(
        'Klaviyo',
        `${value(env, 'KLAVIYO_API_URL', 'https://a.klaviyo.com')} ${dim(`key ${maskSecret(env.KLAVIYO_API_KEY)}`)}`,
      ),
    );
  }
  lines.push(
    row('Metrics', `${urls.ingest}/metrics   ${urls.worker}/metrics`),
    row('Health', `${urls.ingest}/readyz   ${urls.worker}/readyz`),
    row(
      'Redis',
      `${redis.shown}${redis.started ? dim(`  (started here; AOF in ${relative(ROOT, redis.dir)})`) : ''}`,
    ),
  );
  if (host === '127.0.0.1' && !configured(env, 'HOST')) {
    lines.push(
      row('', dim('listening on 127.0.0.1 only; set HOST=0.0.0.0 to accept webhooks from elsewhere')),
    );
  }
  for (const { name, reason } of notReady) lines.push(row('Not ready', yellow(`${name}: ${reason}`)));
  lines.push(
    '',
    `  ${sandbox ? `Next: ${bold('npm run demo')} in another shell, then open the sandbox page.   ` : ''}Stop: ${bold('Ctrl-C')}`,
    line,
    '',
  );
  process.stdout.write(`${lines.join('\n')}\n`);
}

/** SIGTERM to the apps, wait for them, then stop the Redis started here; exit 0 when all went well. */
async function stopAll(code, reason) {
  if (stopping) return;
  stopping = true;
  say(reason);
  const apps = [...children].filter(([name]) => name !== 'redis');
  const results = await Promise.all(
    apps.map(async ([name, { child, exited }]) => {
      if (child.exitCode === null && child.signalCode === null) child.kill('SIGTERM');
      const timer = setTimeout(() => {
        say(`${name} did not stop within ${APP_STOP_DEADLINE_MS / 1000} s: killing it`);
        child.kill('SIGKILL');
      }, APP_STOP_DEADLINE_MS);
      const result = await exited;
      clearTimeout(timer);
      return { name, ...result };
    }),
  );
  const redis = children.get('redis');
  if (redis) {
    // redis-server shuts down cleanly on SIGTERM: it flushes the AOF first.
    if (redis.child.exitCode === null && redis.child.signalCode === null) redis.child.kill('SIGTERM');
    await redis.exited;
  }
  const failed = results.filter((r) => r.code !== 0);
  for (const f of failed)
    say(`${f.name} ${f.signal ? `ended by ${f.signal}` : `exited with code ${f.code}`}`);
  const exitCode = code ?? (failed.length > 0 ? 1 : 0);
  say(exitCode === 0 ? 'stopped' : 'stopped, with errors');
  process.exit(exitCode);
}

let interrupts = 0;
// SIGHUP: the terminal went away; the children, in their own groups, would not hear of it.
for (const signal of ['SIGINT', 'SIGTERM', 'SIGHUP']) {
  process.on(signal, () => {
    interrupts += 1;
    if (interrupts > 1) {
      say('second signal: killing everything now');
      for (const { child } of children.values()) child.kill('SIGKILL');
      process.exit(1);
    }
    void stopAll(
      undefined,
      signal === 'SIGINT' ? 'Ctrl-C: stopping everything…' : `${signal}: stopping everything…`,
    );
  });
}

function redisAnswers(host, port) {
  return new Promise((resolveAnswer) => {
    const socket = createConnection({ host, port });
    const done = (answer) => {
      socket.destroy();
      resolveAnswer(answer);
    };
    socket.setTimeout(1_000, () => done(false));
    socket.once('error', () => done(false));
    socket.once('connect', () => socket.write('PING\r\n'));
    // Any RESP reply counts (`+PONG`, or `-NOAUTH` from a server that wants a password).
    socket.once('data', (data) => done(data[0] === 0x2b || data[0] === 0x2d));
  });
}

function portFree(port, host) {
  return new Promise((resolveFree) => {
    const server = createServer();
    server.once('error', () => resolveFree(false));
    server.listen(port, host, () => server.close(() => resolveFree(true)));
  });
}

function freePort() {
  return new Promise((resolvePort, reject) => {
    const server = createServer();
    server.once('error', reject);
    server.listen(0, '127.0.0.1', () => {
      const { port } = server.address();
      server.close(() => resolvePort(port));
    });
  });
}

async function waitFor(probe, timeoutMs) {
  const deadline = Date.now() + timeoutMs;
  while (Date.now() < deadline) {
    if (await probe()) return true;
    await sleep(100);
  }
  return false;
}

function sleep(ms) {
  return new Promise((r) => setTimeout(r, ms));
}

function redactUrl(url) {
  const copy = new URL(url.href);
  if (copy.password) copy.password = '***';
  return copy.href.replace(/\/$/, '');
}

function maskSecret(secret) {
  if (!secret) return '(not set)';
  return secret.length > 8 ? `${secret.slice(0, 3)}…${secret.slice(-4)}` : '***';
}

main().catch((err) => {
  process.stderr.write(
    `${tag('start')} ${paint.red('error:')} ${err instanceof Error ? err.stack : String(err)}\n`,
  );
  void stopAll(1, 'stopping after an error');
});
