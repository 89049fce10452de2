import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { ConfigError } from '@gk/runtime';
import { describe, expect, it } from 'vitest';
import { loadWorkerConfig } from './config.js';

const minimal = {
  GLADLY_API_URL: 'https://acme.gladly.com/',
  GLADLY_API_USER: 'api@acme.com',
  GLADLY_API_TOKEN: 'gladly-secret-token',
  KLAVIYO_API_KEY: 'pk_secret_key',
};

describe('loadWorkerConfig', () => {
  it('applies the documented defaults', () => {
    const c = loadWorkerConfig(minimal);
    expect(c.redis).toEqual({ url: 'redis://127.0.0.1:6379', clusterNodes: [], prefix: 'gk' });
    expect(c.gladly).toMatchObject({ baseUrl: 'https://acme.gladly.com', ratePerSecond: 5 });
    expect(c.klaviyo).toMatchObject({
      baseUrl: 'https://a.klaviyo.com',
      ratePerSecond: 50,
      metricStarted: 'started conversation in Gladly',
      metricClosed: 'closed conversation in Gladly',
      profileProperty: 'In Gladly Conversation',
      segmentName: 'In a Gladly conversation',
      includeConversationId: false,
    });
    expect(c.klaviyo.revision >= '2026-07-15').toBe(true);
    expect(c.concurrency).toBe(20);
    expect(c.port).toBe(3001);
  });

  it('reads the self-healing settings: watchdog off without GLADLY_WEBHOOK_URL, 0 turns each off', () => {
    expect(loadWorkerConfig(minimal).selfHealing).toEqual({
      webhookUrl: undefined,
      watchSeconds: 60,
      reconcileIntervalSeconds: 300,
      reconcileLagSeconds: 30,
    });
    const set = loadWorkerConfig({
      ...minimal,
      GLADLY_WEBHOOK_URL: 'https://bridge.acme.com/webhooks/gladly',
      GLADLY_WEBHOOK_WATCH_SECONDS: '0',
      RECONCILE_INTERVAL_SECONDS: '0',
      RECONCILE_LAG_SECONDS: '15',
    });
    expect(set.selfHealing).toEqual({
      webhookUrl: 'https://bridge.acme.com/webhooks/gladly',
      watchSeconds: 0,
      reconcileIntervalSeconds: 0,
      reconcileLagSeconds: 15,
    });
    expect(() => loadWorkerConfig({ ...minimal, GLADLY_WEBHOOK_URL: 'not a url' })).toThrow(
      /GLADLY_WEBHOOK_URL/,
    );
    expect(() => loadWorkerConfig({ ...minimal, RECONCILE_INTERVAL_SECONDS: '-1' })).toThrow(
      /RECONCILE_INTERVAL_SECONDS/,
    );
  });

  it('reads the delivery mode and the bulk settings, and refuses what would not work', () => {
    expect(loadWorkerConfig(minimal).klaviyo).toMatchObject({
      deliveryMode: 'auto',
      bulkMinBacklog: 100,
      bulkRatePerMinute: 150,
    });
    const set = loadWorkerConfig({
      ...minimal,
      KLAVIYO_DELIVERY_MODE: ' Bulk ',
      KLAVIYO_BULK_MIN_BACKLOG: '0',
      KLAVIYO_BULK_RATE_LIMIT_PER_MINUTE: '75',
    });
    expect(set.klaviyo).toMatchObject({ deliveryMode: 'bulk', bulkMinBacklog: 0, bulkRatePerMinute: 75 });
    expect(() => loadWorkerConfig({ ...minimal, KLAVIYO_DELIVERY_MODE: 'batch' })).toThrow(
      /KLAVIYO_DELIVERY_MODE.*auto, single or bulk/,
    );
    expect(() => loadWorkerConfig({ ...minimal, KLAVIYO_BULK_RATE_LIMIT_PER_MINUTE: '0' })).toThrow(
      /KLAVIYO_BULK_RATE_LIMIT_PER_MINUTE/,
    );
    // Bulk Create Events exists from revision 2024-05-15 on; single mode works with older ones.
    expect(() => loadWorkerConfig({ ...minimal, KLAVIYO_REVISION: '2024-02-15' })).toThrow(
      /KLAVIYO_REVISION.*2024-05-15.*KLAVIYO_DELIVERY_MODE=single/,
    );
    expect(
      loadWorkerConfig({ ...minimal, KLAVIYO_REVISION: '2024-02-15', KLAVIYO_DELIVERY_MODE: 'single' })
        .klaviyo.deliveryMode,
    ).toBe('single');
  });

  it('reads the Klaviyo breaker settings (on by default) and refuses values out of range', () => {
    expect(loadWorkerConfig(minimal).klaviyo.breaker).toEqual({
      enabled: true,
      rule: { windowMs: 10_000, minAnswers: 10, failurePercent: 50 },
      probeMaxMs: 2_000,
    });
    const set = loadWorkerConfig({
      ...minimal,
      KLAVIYO_BREAKER_ENABLED: 'false',
      KLAVIYO_BREAKER_WINDOW_SECONDS: '30',
      KLAVIYO_BREAKER_MIN_ANSWERS: '5',
      KLAVIYO_BREAKER_FAILURE_PERCENT: '80',
      KLAVIYO_BREAKER_PROBE_MAX_SECONDS: '60',
    });
    expect(set.klaviyo.breaker).toEqual({
      enabled: false,
      rule: { windowMs: 30_000, minAnswers: 5, failurePercent: 80 },
      probeMaxMs: 60_000,
    });
    // The window holds at most 20 answers: more would never open it.
    expect(() => loadWorkerConfig({ ...minimal, KLAVIYO_BREAKER_MIN_ANSWERS: '21' })).toThrow(
      /KLAVIYO_BREAKER_MIN_ANSWERS/,
    );
    expect(() => loadWorkerConfig({ ...minimal, KLAVIYO_BREAKER_FAILURE_PERCENT: '100' })).toThrow(
      /KLAVIYO_BREAKER_FAILURE_PERCENT/,
    );
    expect(() => loadWorkerConfig({ ...minimal, KLAVIYO_BREAKER_ENABLED: 'maybe' })).toThrow(
      /KLAVIYO_BREAKER_ENABLED/,
    );
  });

  it('reads the customer cache TTL and the profile options (0 turns the cache off)', () => {
    const defaults = loadWorkerConfig(minimal);
    expect(defaults.gladly.customerCacheTtlSeconds).toBe(3600);
    expect(defaults.klaviyo).toMatchObject({ createProfiles: true, profileCacheTtlSeconds: 600 });
    const set = loadWorkerConfig({
      ...minimal,
      GLADLY_CUSTOMER_CACHE_TTL_SECONDS: '0',
      KLAVIYO_CREATE_PROFILES: 'false',
      KLAVIYO_PROFILE_CACHE_TTL_SECONDS: '30',
    });
    expect(set.gladly.customerCacheTtlSeconds).toBe(0);
    expect(set.klaviyo).toMatchObject({ createProfiles: false, profileCacheTtlSeconds: 30 });
    expect(() => loadWorkerConfig({ ...minimal, GLADLY_CUSTOMER_CACHE_TTL_SECONDS: '-1' })).toThrow(
      /GLADLY_CUSTOMER_CACHE_TTL_SECONDS/,
    );
    expect(() => loadWorkerConfig({ ...minimal, KLAVIYO_CREATE_PROFILES: 'maybe' })).toThrow(
      /KLAVIYO_CREATE_PROFILES/,
    );
  });

  it('names every missing or bad variable, without echoing secrets', () => {
    let error: unknown;
    try {
      loadWorkerConfig({
        GLADLY_API_TOKEN: 'gladly-secret-token',
        WORKER_CONCURRENCY: '0',
        KLAVIYO_RATE_LIMIT_PER_SECOND: 'fast',
        REDIS_CLUSTER_NODES: 'a:1,b',
      });
    } catch (err) {
      error = err;
    }
    expect(error).toBeInstanceOf(ConfigError);
    const message = (error as Error).message;
    for (const name of [
      'GLADLY_API_URL',
      'GLADLY_API_USER',
      'KLAVIYO_API_KEY',
      'WORKER_CONCURRENCY',
      'KLAVIYO_RATE_LIMIT_PER_SECOND',
      'REDIS_CLUSTER_NODES',
    ]) {
      expect(message).toContain(name);
    }
    expect(message).not.toContain('gladly-secret-token');
  });

  it('reads cluster nodes and booleans', () => {
    const c = loadWorkerConfig({
      ...minimal,
      REDIS_CLUSTER_NODES: '127.0.0.1:7000, 127.0.0.1:7001',
      KLAVIYO_INCLUDE_CONVERSATION_ID: 'true',
    });
    expect(c.redis.clusterNodes).toEqual(['127.0.0.1:7000', '127.0.0.1:7001']);
    expect(c.klaviyo.includeConversationId).toBe(true);
  });

  it('reads UPSTREAM_MAX_PAUSE_SECONDS (default 300) and refuses 0', () => {
    expect(loadWorkerConfig(minimal).upstreamMaxPauseMs).toBe(300_000);
    expect(loadWorkerConfig({ ...minimal, UPSTREAM_MAX_PAUSE_SECONDS: '60' }).upstreamMaxPauseMs).toBe(
      60_000,
    );
    expect(() => loadWorkerConfig({ ...minimal, UPSTREAM_MAX_PAUSE_SECONDS: '0' })).toThrow(
      /UPSTREAM_MAX_PAUSE_SECONDS/,
    );
  });

  it('refuses a revision that is not dated', () => {
    expect(() => loadWorkerConfig({ ...minimal, KLAVIYO_REVISION: 'latest' })).toThrow(/KLAVIYO_REVISION/);
  });

  it('reads secrets from <NAME>_FILE and applies the dev-credentials rule in production', () => {
    const dir = mkdtempSync(join(tmpdir(), 'gk-worker-config-'));
    try {
      const keyFile = join(dir, 'klaviyo');
      writeFileSync(keyFile, 'pk_from_a_file_0123456789\n');
      const { KLAVIYO_API_KEY: _unused, ...rest } = minimal;
      expect(loadWorkerConfig({ ...rest, KLAVIYO_API_KEY_FILE: keyFile }).klaviyo.apiKey).toBe(
        'pk_from_a_file_0123456789',
      );
      const prod = { ...minimal, NODE_ENV: 'production', KLAVIYO_API_KEY: 'pk_dev_sandbox_key' };
      let message = '';
      try {
        loadWorkerConfig(prod);
      } catch (err) {
        expect(err).toBeInstanceOf(ConfigError);
        message = (err as Error).message;
      }
      expect(message).toMatch(/KLAVIYO_API_KEY: is a development default/);
      expect(message).not.toContain('pk_dev_sandbox_key');
      expect(loadWorkerConfig({ ...prod, BRIDGE_SANDBOX: 'true' }).sandbox).toBe(true);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });
});
