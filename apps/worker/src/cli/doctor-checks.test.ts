import { describe, expect, it } from 'vitest';
import { isPermanent4xx, judgeGladlyRateLimit, judgeMemory, parseInfo } from './doctor-checks.js';
import { formatResults } from './doctor-run.js';

const MB = 1024 * 1024;

describe('judgeMemory', () => {
  it('✓ with headroom, ! above 75 %, ✗ above 90 % of maxmemory (or system memory)', () => {
    expect(judgeMemory(10 * MB, 100 * MB, 0).status).toBe('ok');
    expect(judgeMemory(80 * MB, 100 * MB, 0).status).toBe('warn');
    expect(judgeMemory(95 * MB, 100 * MB, 0)).toMatchObject({
      status: 'fail',
      fix: expect.stringContaining('maxmemory'),
    });
    expect(judgeMemory(95 * MB, 0, 100 * MB).status).toBe('fail');
    expect(judgeMemory(10 * MB, 0, 0).status).toBe('warn');
  });

  it('reads INFO memory', () => {
    expect(parseInfo('# Memory\r\nused_memory:123\r\nmaxmemory:0\r\n')).toEqual({
      used_memory: '123',
      maxmemory: '0',
    });
  });
});

describe('judgeGladlyRateLimit', () => {
  const headers = (limit: string, remaining: string) =>
    new Headers({ 'ratelimit-limit': limit, 'ratelimit-remaining': remaining, 'ratelimit-reset': '1' });
  it('✓ with headroom, ! when others use most of it, ✗ when the bridge is set above the limit', () => {
    expect(judgeGladlyRateLimit(headers('10', '9'), 5).status).toBe('ok');
    expect(judgeGladlyRateLimit(headers('10', '1'), 5).status).toBe('warn');
    expect(judgeGladlyRateLimit(headers('10', '9'), 20)).toMatchObject({
      status: 'fail',
      fix: expect.stringContaining('GLADLY_RATE_LIMIT_PER_SECOND'),
    });
    expect(judgeGladlyRateLimit(new Headers(), 5).status).toBe('warn');
  });
});

describe('isPermanent4xx', () => {
  it('only a permanent Klaviyo refusal counts; auth, throttling and retries exhausted do not', () => {
    expect(isPermanent4xx('klaviyo 400: Klaviyo 400 invalid: bad email')).toBe(true);
    expect(isPermanent4xx('klaviyo 409: conflict')).toBe(true);
    expect(isPermanent4xx('klaviyo 403: permission')).toBe(false);
    expect(isPermanent4xx('klaviyo: Klaviyo 503 service_unavailable')).toBe(false);
    expect(isPermanent4xx('invalid delivery payload')).toBe(false);
  });
});

describe('formatResults', () => {
  it('one line per check, the fix under each ✗ and !, and a last line', () => {
    const text = formatResults([
      { status: 'ok', name: 'redis', summary: 'reachable' },
      { status: 'fail', name: 'redis persistence', summary: 'AOF is off', fix: 'appendonly yes' },
      { status: 'warn', name: 'gladly webhook', summary: 'not checked', fix: 'look in Gladly' },
    ]);
    expect(text).toBe(
      '✓ redis: reachable\n✗ redis persistence: AOF is off\n    fix: appendonly yes\n! gladly webhook: not checked\n    fix: look in Gladly\n\n1 problem to fix, 1 to look at\n',
    );
  });
});
