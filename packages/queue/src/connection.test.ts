import { describe, expect, it } from 'vitest';
import { clusterNodeAuth } from './connection.js';

describe('clusterNodeAuth', () => {
  it('takes user, password and TLS from REDIS_URL for every cluster node, never its host', () => {
    expect(clusterNodeAuth('redis://127.0.0.1:6379')).toEqual({});
    expect(clusterNodeAuth('redis://:s3cret@redis:6379')).toEqual({ password: 's3cret' });
    expect(clusterNodeAuth('rediss://bridge:p%40ss%3Aword@cfg.cache.example:6379')).toEqual({
      username: 'bridge',
      password: 'p@ss:word',
      tls: {},
    });
  });

  it('ignores a REDIS_URL it cannot read', () => {
    expect(clusterNodeAuth('not a url')).toEqual({});
  });
});
