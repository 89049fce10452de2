import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { ConfigError } from '@gk/runtime';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createWebhookAuthenticator } from './auth.js';
import { loadConfig } from './config.js';

const basic = (user: string, password: string) => ({
  authorization: `Basic ${Buffer.from(`${user}:${password}`, 'utf8').toString('base64')}`,
});

function configError(env: NodeJS.ProcessEnv): string {
  try {
    loadConfig(env);
  } catch (err) {
    expect(err).toBeInstanceOf(ConfigError);
    return (err as Error).message;
  }
  throw new Error('expected a ConfigError');
}

describe('loadConfig', () => {
  it('applies the documented defaults and gives a camelCase result', () => {
    const config = loadConfig({ WEBHOOK_TOKENS: 'tok-1' });
    expect(config).toEqual({
      nodeEnv: undefined,
      port: 3000,
      host: '0.0.0.0',
      logLevel: 'info',
      redis: { url: 'redis://127.0.0.1:6379', clusterNodes: [] },
      queuePrefix: 'gk',
      webhookAuth: { disabled: false, basic: [], tokenHeader: 'X-Gladly-Token', tokens: ['tok-1'] },
      admin: null,
      spool: { path: resolve('.data/spool/ingest-3000.spool'), maxEntries: 100_000, stallSeconds: 300 },
      opsPort: null,
      sandbox: false,
      warnings: [],
    });
  });

  it('reads OPS_PORT, the internal port for probes and metrics, which must differ from PORT', () => {
    const base = { WEBHOOK_TOKENS: 'tok-1' };
    expect(loadConfig({ ...base, OPS_PORT: '9090' }).opsPort).toBe(9090);
    expect(loadConfig({ ...base, OPS_PORT: '' }).opsPort).toBeNull();
    expect(configError({ ...base, OPS_PORT: '3000' })).toMatch(/OPS_PORT: must differ from PORT/);
    expect(configError({ ...base, OPS_PORT: 'metrics' })).toMatch(/OPS_PORT/);
  });

  it('reads the spool settings: a file per port by default, a path, a bound, or off', () => {
    const base = { WEBHOOK_TOKENS: 'tok-1' };
    expect(loadConfig({ ...base, PORT: '8080' }).spool?.path).toBe(resolve('.data/spool/ingest-8080.spool'));
    expect(
      loadConfig({
        ...base,
        INGEST_SPOOL_PATH: '/var/lib/gk/spool.log',
        INGEST_SPOOL_MAX: '500',
        INGEST_SPOOL_STALL_SECONDS: '60',
      }).spool,
    ).toEqual({ path: '/var/lib/gk/spool.log', maxEntries: 500, stallSeconds: 60 });
    expect(configError({ ...base, INGEST_SPOOL_STALL_SECONDS: '1' })).toMatch(
      /INGEST_SPOOL_STALL_SECONDS: must be at least 5/,
    );
    expect(loadConfig({ ...base, INGEST_SPOOL_ENABLED: 'false' }).spool).toBeNull();
    expect(configError({ ...base, INGEST_SPOOL_MAX: '0' })).toMatch(/INGEST_SPOOL_MAX: must be at least 1/);
    expect(configError({ ...base, INGEST_SPOOL_ENABLED: 'maybe' })).toMatch(/INGEST_SPOOL_ENABLED/);
  });

  it('reads every variable', () => {
    const config = loadConfig({
      REDIS_URL: 'redis://redis:6379/2',
      REDIS_CLUSTER_NODES: 'r1:7000, r2:7001',
      QUEUE_PREFIX: 'bridge',
      PORT: '8080',
      HOST: '127.0.0.1',
      LOG_LEVEL: 'debug',
      WEBHOOK_BASIC_AUTH: '["gladly:old-pass", "gladly:new:pass:with:colons"]',
      WEBHOOK_TOKEN_HEADER: 'X-Webhook-Secret',
      WEBHOOK_TOKENS: '["a", "b"]',
      ADMIN_USERNAME: 'ops',
      ADMIN_PASSWORD: 'dash-pass',
      ADMIN_READ_ONLY: 'true',
    });
    expect(config.redis).toEqual({ url: 'redis://redis:6379/2', clusterNodes: ['r1:7000', 'r2:7001'] });
    expect(config.queuePrefix).toBe('bridge');
    expect(config.port).toBe(8080);
    expect(config.host).toBe('127.0.0.1');
    expect(config.logLevel).toBe('debug');
    expect(config.webhookAuth).toEqual({
      disabled: false,
      basic: [
        { username: 'gladly', password: 'old-pass' },
        { username: 'gladly', password: 'new:pass:with:colons' },
      ],
      tokenHeader: 'X-Webhook-Secret',
      tokens: ['a', 'b'],
    });
    expect(config.admin).toEqual({ username: 'ops', password: 'dash-pass', readOnly: true });
  });

  it('refuses to start without webhook credentials, naming both variables', () => {
    const message = configError({});
    expect(message).toContain('WEBHOOK_BASIC_AUTH');
    expect(message).toContain('WEBHOOK_TOKENS');
    expect(configError({ WEBHOOK_BASIC_AUTH: '', WEBHOOK_TOKENS: '' })).toContain('no webhook credentials');
    expect(configError({ WEBHOOK_TOKENS: '[]' })).toContain('no webhook credentials');
  });

  it('allows no credentials when auth is disabled, but never in production', () => {
    expect(loadConfig({ WEBHOOK_AUTH_DISABLED: 'true' }).webhookAuth.disabled).toBe(true);
    expect(
      configError({ WEBHOOK_AUTH_DISABLED: 'true', NODE_ENV: 'production', WEBHOOK_TOKENS: 't' }),
    ).toMatch(/WEBHOOK_AUTH_DISABLED: .*production/);
  });

  it('names a pair without a colon, and never prints the value', () => {
    const message = configError({
      WEBHOOK_BASIC_AUTH: '["gladly:fine", "secretwithoutcolon", ":nouser", "nopass:"]',
    });
    expect(message).toContain('WEBHOOK_BASIC_AUTH: entry 2 is not user:password');
    expect(message).toContain('entry 3');
    expect(message).toContain('entry 4');
    expect(message).not.toContain('secretwithoutcolon');
    expect(message).not.toContain('fine');
    expect(message).not.toContain('nopass');
  });

  it('needs ADMIN_USERNAME and ADMIN_PASSWORD together; the dashboard is off without both', () => {
    expect(configError({ WEBHOOK_TOKENS: 't', ADMIN_USERNAME: 'ops' })).toContain('ADMIN_PASSWORD');
    expect(configError({ WEBHOOK_TOKENS: 't', ADMIN_PASSWORD: 'pw' })).toContain('ADMIN_USERNAME');
    expect(loadConfig({ WEBHOOK_TOKENS: 't', ADMIN_USERNAME: '', ADMIN_PASSWORD: '' }).admin).toBeNull();
  });

  it('keeps a password verbatim', () => {
    const config = loadConfig({ WEBHOOK_TOKENS: 't', ADMIN_USERNAME: 'ops', ADMIN_PASSWORD: ' p w ' });
    expect(config.admin?.password).toBe(' p w ');
  });

  it.each([
    ['PORT', 'abc'],
    ['PORT', '70000'],
    ['WEBHOOK_AUTH_DISABLED', 'maybe'],
    ['ADMIN_READ_ONLY', 'sometimes'],
    ['WEBHOOK_TOKEN_HEADER', 'X Bad Header'],
    ['REDIS_URL', 'http://redis'],
    ['ADMIN_USERNAME', 'o:ps'],
  ])('a bad %s stops with its name', (name, value) => {
    const message = configError({
      WEBHOOK_TOKENS: 't',
      ADMIN_PASSWORD: 'pw',
      ADMIN_USERNAME: 'ops',
      [name]: value,
    });
    expect(message).toContain(`${name}:`);
  });

  it('accepts a password with ",", ":" and a leading space exactly and only as written', () => {
    const password = ' pa,ss:wo rd';
    const config = loadConfig({ WEBHOOK_BASIC_AUTH: `gladly:${password}` });
    expect(config.webhookAuth.basic).toEqual([{ username: 'gladly', password }]);
    const authenticate = createWebhookAuthenticator(config.webhookAuth);
    expect(authenticate(basic('gladly', password))).toBe(true);
    for (const wrong of ['pa,ss:wo rd', ' pa', 'ss:wo rd', ` ${password}`, `${password} `, ' pa,ss:wo']) {
      expect(authenticate(basic('gladly', wrong))).toBe(false);
    }
    expect(authenticate(basic('ss', 'wo rd'))).toBe(false);
  });

  it('takes several pairs or tokens as a JSON array, each verbatim', () => {
    const config = loadConfig({
      WEBHOOK_BASIC_AUTH: '["gladly: old,pass:1", "gladly:new-pass"]',
      WEBHOOK_TOKENS: '[" tok,en:1 ", "tok2"]',
    });
    expect(config.webhookAuth.basic).toEqual([
      { username: 'gladly', password: ' old,pass:1' },
      { username: 'gladly', password: 'new-pass' },
    ]);
    expect(config.webhookAuth.tokens).toEqual([' tok,en:1 ', 'tok2']);
    const authenticate = createWebhookAuthenticator(config.webhookAuth);
    expect(authenticate({ 'x-gladly-token': ' tok,en:1 ' })).toBe(true);
    expect(authenticate({ 'x-gladly-token': 'tok,en:1' })).toBe(false);
    expect(authenticate({ 'x-gladly-token': ' tok' })).toBe(false);
  });

  it('takes one token verbatim, commas and spaces included', () => {
    const config = loadConfig({ WEBHOOK_TOKENS: ' a,b ' });
    expect(config.webhookAuth.tokens).toEqual([' a,b ']);
  });

  it('refuses a list it cannot read without quoting it', () => {
    const message = configError({ WEBHOOK_TOKENS: '["tok-secret-1", 7]' });
    expect(message).toContain('WEBHOOK_TOKENS: must be a JSON array of non-empty strings');
    expect(message).not.toContain('tok-secret-1');
    expect(configError({ WEBHOOK_TOKENS: '[tok-secret-2' })).not.toContain('tok-secret-2');
  });

  it('warns (without the value) when one pair looks like the old comma-separated list', () => {
    expect(loadConfig({ WEBHOOK_BASIC_AUTH: 'gladly:old-pw,gladly:new-pw' }).warnings.join()).toMatch(
      /JSON array/,
    );
    expect(loadConfig({ WEBHOOK_BASIC_AUTH: 'gladly:old-pw,gladly:new-pw' }).warnings.join()).not.toContain(
      'old-pw',
    );
    expect(loadConfig({ WEBHOOK_BASIC_AUTH: 'gladly: pa,ss:word' }).warnings).toEqual([]);
  });
});

describe('secrets from files and the dev-credentials rule', () => {
  let dir: string;
  beforeAll(() => {
    dir = mkdtempSync(join(tmpdir(), 'gk-ingest-config-'));
  });
  afterAll(() => rmSync(dir, { recursive: true, force: true }));

  it('reads every secret from <NAME>_FILE, stripping one trailing newline only', () => {
    const file = (name: string, content: string) => {
      const path = join(dir, name);
      writeFileSync(path, content);
      return path;
    };
    const config = loadConfig({
      WEBHOOK_BASIC_AUTH_FILE: file('basic', 'gladly: pa,ss:word \n'),
      WEBHOOK_TOKENS_FILE: file('tokens', '["t1,x", "t2"]\n'),
      ADMIN_USERNAME: 'ops',
      ADMIN_PASSWORD_FILE: file('admin', 'admin-password\n\n'),
      REDIS_URL_FILE: file('redis', 'redis://:redis-secret@redis:6379\n'),
    });
    expect(config.webhookAuth.basic).toEqual([{ username: 'gladly', password: ' pa,ss:word ' }]);
    expect(config.webhookAuth.tokens).toEqual(['t1,x', 't2']);
    expect(config.admin?.password).toBe('admin-password\n');
    expect(config.redis.url).toBe('redis://:redis-secret@redis:6379');
  });

  it('names the variable when its file cannot be read or both forms are set', () => {
    expect(configError({ WEBHOOK_TOKENS_FILE: join(dir, 'missing') })).toMatch(
      /WEBHOOK_TOKENS_FILE: cannot read the file it names \(ENOENT\)/,
    );
    const path = join(dir, 'both');
    writeFileSync(path, 'tok');
    expect(configError({ WEBHOOK_TOKENS: 'tok', WEBHOOK_TOKENS_FILE: path })).toMatch(
      /WEBHOOK_TOKENS_FILE: set together with WEBHOOK_TOKENS/,
    );
  });

  it('with NODE_ENV=production refuses dev defaults and short secrets, naming the variable only', () => {
    const prod = { NODE_ENV: 'production' };
    const devPair = configError({ ...prod, WEBHOOK_BASIC_AUTH: 'gladly:dev-webhook-password' });
    expect(devPair).toMatch(/WEBHOOK_BASIC_AUTH: is a development default/);
    expect(devPair).not.toContain('dev-webhook-password');
    expect(configError({ ...prod, WEBHOOK_TOKENS: 'short-token' })).toMatch(
      /WEBHOOK_TOKENS: is shorter than 16 characters/,
    );
    expect(
      configError({
        ...prod,
        WEBHOOK_TOKENS: 'a-token-long-enough-1',
        ADMIN_USERNAME: 'admin',
        ADMIN_PASSWORD: 'dev-admin-password',
      }),
    ).toMatch(/ADMIN_PASSWORD: is a development default/);
    // Long enough and not a dev default: fine.
    expect(loadConfig({ ...prod, WEBHOOK_BASIC_AUTH: 'gladly: pa,ss:word-long-enough' }).nodeEnv).toBe(
      'production',
    );
    // Outside production, or on the sandbox route, dev credentials are accepted.
    expect(loadConfig({ WEBHOOK_BASIC_AUTH: 'gladly:dev-webhook-password' }).sandbox).toBe(false);
    const sandbox = loadConfig({
      ...prod,
      BRIDGE_SANDBOX: 'true',
      WEBHOOK_BASIC_AUTH: 'gladly:dev-webhook-password',
    });
    expect(sandbox.sandbox).toBe(true);
  });
});
