import { resolve } from 'node:path';
import { ConfigError } from '@gk/runtime';
import { describe, expect, it } from 'vitest';
import { loadConfig } from './config.js';

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
      spool: { path: resolve('.data/spool/ingest-3000.spool'), maxEntries: 100_000 },
      opsPort: null,
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
      loadConfig({ ...base, INGEST_SPOOL_PATH: '/var/lib/gk/spool.log', INGEST_SPOOL_MAX: '500' }).spool,
    ).toEqual({ path: '/var/lib/gk/spool.log', maxEntries: 500 });
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
      WEBHOOK_BASIC_AUTH: 'gladly:old-pass, gladly:new:pass:with:colons',
      WEBHOOK_TOKEN_HEADER: 'X-Webhook-Secret',
      WEBHOOK_TOKENS: 'a,b',
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
    expect(configError({ WEBHOOK_BASIC_AUTH: ' ', WEBHOOK_TOKENS: ',' })).toContain('no webhook credentials');
  });

  it('allows no credentials when auth is disabled, but never in production', () => {
    expect(loadConfig({ WEBHOOK_AUTH_DISABLED: 'true' }).webhookAuth.disabled).toBe(true);
    expect(
      configError({ WEBHOOK_AUTH_DISABLED: 'true', NODE_ENV: 'production', WEBHOOK_TOKENS: 't' }),
    ).toMatch(/WEBHOOK_AUTH_DISABLED: .*production/);
  });

  it('names a pair without a colon, and never prints the value', () => {
    const message = configError({ WEBHOOK_BASIC_AUTH: 'gladly:fine,secretwithoutcolon,:nouser,nopass:' });
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
});
