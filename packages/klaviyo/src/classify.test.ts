import { readFileSync } from 'node:fs';
import { describe, expect, it } from 'vitest';
import { classifyKlaviyoFailure, classifyKlaviyoResponse } from './classify.js';

const fixture = (name: string): unknown =>
  JSON.parse(readFileSync(new URL(`../../../fixtures/klaviyo/${name}`, import.meta.url), 'utf8'));

const answer = (status: number, body?: unknown, headers: Record<string, string> = {}) => ({
  status,
  headers: new Headers(headers),
  body,
});

describe('classifyKlaviyoResponse', () => {
  it('202 → delivered', () => {
    expect(classifyKlaviyoResponse(answer(202))).toEqual({ kind: 'delivered', status: 202 });
  });

  it('429 → rate_limited with the raw Retry-After (the worker reads and clamps it)', () => {
    expect(classifyKlaviyoResponse(answer(429, fixture('error-429.json'), { 'retry-after': '7' }))).toEqual({
      kind: 'rate_limited',
      status: 429,
      retryAfter: '7',
    });
    expect(classifyKlaviyoResponse(answer(429))).toEqual({
      kind: 'rate_limited',
      status: 429,
      retryAfter: null,
    });
  });

  it.each([500, 502, 503, 504, 408])('%i → retryable', (status) => {
    expect(classifyKlaviyoResponse(answer(status))).toMatchObject({ kind: 'retryable', status });
  });

  it('a 5xx with a Klaviyo error body carries its detail in the reason', () => {
    const body = { errors: [{ code: 'error', detail: 'A server error occurred.' }] };
    expect(classifyKlaviyoResponse(answer(503, body))).toEqual({
      kind: 'retryable',
      status: 503,
      reason: 'Klaviyo 503 error: A server error occurred.',
    });
  });

  it.each([401, 403] as const)('%i → auth', (status) => {
    const body = { errors: [{ code: 'not_authenticated', detail: 'Missing or invalid private key.' }] };
    expect(classifyKlaviyoResponse(answer(status, body))).toEqual({
      kind: 'auth',
      status,
      reason: `Klaviyo ${status} not_authenticated: Missing or invalid private key.`,
    });
  });

  it('400 → permanent with Klaviyo code, detail and pointer', () => {
    expect(classifyKlaviyoResponse(answer(400, fixture('error-400.json')))).toEqual({
      kind: 'permanent',
      status: 400,
      code: 'invalid',
      detail: 'The payload provided in the request is invalid.',
      reason: 'Klaviyo 400 invalid: The payload provided in the request is invalid. (at /data)',
    });
  });

  it.each([404, 409, 413, 415, 422])('%i → permanent even without a body', (status) => {
    expect(classifyKlaviyoResponse(answer(status))).toEqual({
      kind: 'permanent',
      status,
      reason: `Klaviyo ${status}`,
    });
  });

  it.each([301, 307, 100])('%i → retryable (misconfiguration keeps deliveries queued)', (status) => {
    expect(classifyKlaviyoResponse(answer(status))).toMatchObject({ kind: 'retryable', status });
  });
});

describe('classifyKlaviyoFailure', () => {
  it('our timeout → retryable timeout', () => {
    expect(
      classifyKlaviyoFailure(new DOMException('The operation was aborted due to timeout', 'TimeoutError')),
    ).toEqual({ kind: 'retryable', reason: 'timeout' });
  });

  it.each(['ECONNRESET', 'ECONNREFUSED', 'ENOTFOUND', 'UND_ERR_SOCKET'])(
    '%s → retryable network error',
    (code) => {
      const cause = Object.assign(new Error('socket'), { code });
      expect(classifyKlaviyoFailure(new TypeError('fetch failed', { cause }))).toEqual({
        kind: 'retryable',
        reason: `network error (${code})`,
      });
    },
  );

  it('anything else is still retryable', () => {
    expect(classifyKlaviyoFailure('weird')).toEqual({ kind: 'retryable', reason: 'network error (weird)' });
  });
});
