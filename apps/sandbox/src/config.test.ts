import { ConfigError } from '@gk/runtime';
import { describe, expect, it } from 'vitest';
import { loadSandboxConfig, SANDBOX_DEFAULTS } from './config.js';

describe('loadSandboxConfig', () => {
  it('runs with nothing set: dev credentials, port 4010, loopback, Gladly’s 10/s limit', () => {
    expect(loadSandboxConfig({})).toEqual({
      port: 4010,
      host: '127.0.0.1',
      gladly: {
        user: SANDBOX_DEFAULTS.gladlyUser,
        token: SANDBOX_DEFAULTS.gladlyToken,
        ratePerSecond: 10,
        failureRate: 0,
      },
      klaviyo: {
        apiKey: SANDBOX_DEFAULTS.klaviyoApiKey,
        ratePerSecond: 0,
        failureRate: 0,
        scopes: null,
        revisionMin: undefined,
      },
      logLevel: 'info',
    });
  });

  it('takes every knob from the environment, blank meaning default', () => {
    const config = loadSandboxConfig({
      SANDBOX_PORT: '5000',
      SANDBOX_HOST: '0.0.0.0',
      SANDBOX_GLADLY_USER: 'me@acme.test',
      SANDBOX_GLADLY_TOKEN: 't',
      SANDBOX_KLAVIYO_API_KEY: 'pk_x',
      SANDBOX_GLADLY_RATE_LIMIT_PER_SECOND: '0',
      SANDBOX_KLAVIYO_RATE_LIMIT_PER_SECOND: '20',
      SANDBOX_KLAVIYO_FAILURE_RATE: '0.25',
      SANDBOX_GLADLY_FAILURE_RATE: ' ',
      SANDBOX_KLAVIYO_SCOPES: 'events:write, metrics:read',
      SANDBOX_KLAVIYO_REVISION_MIN: '2027-01-15',
    });
    expect(config).toMatchObject({
      port: 5000,
      host: '0.0.0.0',
      gladly: { user: 'me@acme.test', token: 't', ratePerSecond: 0, failureRate: 0 },
      klaviyo: {
        apiKey: 'pk_x',
        ratePerSecond: 20,
        failureRate: 0.25,
        scopes: ['events:write', 'metrics:read'],
        revisionMin: '2027-01-15',
      },
    });
  });

  it('names every bad variable and never echoes a value', () => {
    try {
      loadSandboxConfig({ SANDBOX_PORT: '70000', SANDBOX_GLADLY_FAILURE_RATE: 'often' });
      expect.unreachable();
    } catch (err) {
      expect(err).toBeInstanceOf(ConfigError);
      expect((err as Error).message).toContain('SANDBOX_PORT');
      expect((err as Error).message).toContain('SANDBOX_GLADLY_FAILURE_RATE');
      expect((err as Error).message).not.toContain('often');
    }
  });
});
