import { readFileSync } from 'node:fs';
import { describe, expect, it } from 'vitest';
import { buildProfileLookupUrl, classifyProfileLookup } from './profiles.js';

const fixture = (name: string): unknown =>
  JSON.parse(readFileSync(new URL(`../../../fixtures/klaviyo/${name}`, import.meta.url), 'utf8'));

const answer = (status: number, body?: unknown, headers: Record<string, string> = {}) => ({
  status,
  headers: new Headers(headers),
  body,
});

describe('buildProfileLookupUrl', () => {
  it('filters Get Profiles on the email, asking for one profile and its email only', () => {
    const url = new URL(buildProfileLookupUrl('https://a.klaviyo.com/', 'Rosa.Alvarez+vip@example.com'));
    expect(url.origin + url.pathname).toBe('https://a.klaviyo.com/api/profiles');
    expect(url.searchParams.get('filter')).toBe('equals(email,"Rosa.Alvarez+vip@example.com")');
    expect(url.searchParams.get('fields[profile]')).toBe('email');
    expect(url.searchParams.get('page[size]')).toBe('1');
    // `+` and `@` travel encoded, so the filter reaches Klaviyo as written.
    expect(url.search).toContain('Rosa.Alvarez%2Bvip%40example.com');
  });

  it('escapes a quote or backslash inside the quoted value', () => {
    const url = new URL(buildProfileLookupUrl('https://a.klaviyo.com', 'we"ird\\name@example.com'));
    expect(url.searchParams.get('filter')).toBe('equals(email,"we\\"ird\\\\name@example.com")');
  });
});

describe('classifyProfileLookup', () => {
  it('200 with a profile → exists; with an empty list → absent', () => {
    expect(classifyProfileLookup(answer(200, fixture('get-profiles.json')))).toEqual({
      kind: 'exists',
      status: 200,
    });
    expect(classifyProfileLookup(answer(200, { data: [], links: {} }))).toEqual({
      kind: 'absent',
      status: 200,
    });
  });

  it('200 without a data list is not an answer to trust: retryable, never "absent"', () => {
    expect(classifyProfileLookup(answer(200, undefined)).kind).toBe('retryable');
    expect(classifyProfileLookup(answer(200, { data: {} })).kind).toBe('retryable');
    expect(classifyProfileLookup(answer(204)).kind).toBe('retryable');
  });

  it('other answers as for Create Event: 429 pause, 401/403 key, 5xx retry, 400 permanent', () => {
    expect(classifyProfileLookup(answer(429, undefined, { 'retry-after': '3' }))).toEqual({
      kind: 'rate_limited',
      status: 429,
      retryAfter: '3',
    });
    expect(classifyProfileLookup(answer(403)).kind).toBe('auth');
    expect(classifyProfileLookup(answer(503)).kind).toBe('retryable');
    expect(
      classifyProfileLookup(
        answer(400, { errors: [{ code: 'invalid', detail: 'bad filter', source: { parameter: 'filter' } }] }),
      ),
    ).toMatchObject({ kind: 'permanent', status: 400, code: 'invalid', detail: 'bad filter' });
  });
});
