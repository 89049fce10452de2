import { describe, expect, it } from 'vitest';
import { describeRedisError } from './redis-checks.js';

function errnoError(message: string, code: string): Error {
  return Object.assign(new Error(message), { code });
}

describe('describeRedisError', () => {
  it.each([
    [errnoError('connect ECONNREFUSED 10.0.3.7:6379', 'ECONNREFUSED'), 'connection refused'],
    [errnoError('getaddrinfo ENOTFOUND redis-master.internal', 'ENOTFOUND'), 'host not found'],
    [errnoError('getaddrinfo EAI_AGAIN redis', 'EAI_AGAIN'), 'host not found'],
    [errnoError('connect ETIMEDOUT 192.168.7.2:6380', 'ETIMEDOUT'), 'no answer in time'],
    [errnoError('read ECONNRESET', 'ECONNRESET'), 'not connected'],
    [new Error("Stream isn't writeable and enableOfflineQueue options is false"), 'not connected'],
    [new Error('Connection is closed.'), 'not connected'],
    [new Error('WRONGPASS invalid username-password pair or user is disabled.'), 'authentication refused'],
    [new Error('NOAUTH Authentication required.'), 'authentication refused'],
    [new Error('LOADING Redis is loading the dataset in memory'), 'loading its data'],
    [
      new Error("OOM command not allowed when used memory > 'maxmemory'."),
      'out of memory (maxmemory reached)',
    ],
    [new Error("READONLY You can't write against a read only replica."), 'read-only replica'],
    [new Error('None of startup nodes is available'), 'cluster unavailable'],
    [new Error('redis did not acknowledge within 1500 ms'), 'no answer in time'],
  ])('%s → %s', (err, expected) => {
    expect(describeRedisError(err)).toBe(expected);
  });

  it('never passes on unknown text, which may carry an address', () => {
    const said = describeRedisError(new Error('something new about redis.internal:6379'));
    expect(said).toBe('error (details in the logs)');
    expect(describeRedisError('10.1.1.1:6379 went away')).not.toContain('6379');
  });
});
