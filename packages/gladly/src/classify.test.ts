import { readFileSync } from 'node:fs';
import { describe, expect, it } from 'vitest';
import { classifyGladlyResponse } from './classify.js';

const fixture = (name: string): unknown =>
  JSON.parse(readFileSync(new URL(`../../../fixtures/gladly/${name}`, import.meta.url), 'utf8'));

const answer = (status: number, body?: unknown, headers: Record<string, string> = {}) => ({
  status,
  headers: new Headers(headers),
  body,
});

describe('classifyGladlyResponse', () => {
  it('200 → found with the original spellings in Gladly order', () => {
    expect(classifyGladlyResponse(answer(200, fixture('customer-profile.json')))).toEqual({
      kind: 'found',
      emails: ['Rosa.Alvarez@example.com', 'rosa@work.example.org'],
    });
  });

  it('200 without emails → found with none; entries without original fall back to normalized', () => {
    expect(classifyGladlyResponse(answer(200, { id: 'c1' }))).toEqual({ kind: 'found', emails: [] });
    expect(
      classifyGladlyResponse(
        answer(200, { emails: [{ normalized: 'a@b.co' }, { primary: true }, 'x', { original: '' }] }),
      ),
    ).toEqual({ kind: 'found', emails: ['a@b.co'] });
  });

  it('200 with an unreadable body → protocol', () => {
    expect(classifyGladlyResponse(answer(200, undefined)).kind).toBe('protocol');
    expect(classifyGladlyResponse(answer(200, { emails: 'a@b.co' })).kind).toBe('protocol');
  });

  it('301 → moved to errors[0].meta.new', () => {
    expect(classifyGladlyResponse(answer(301, fixture('customer-moved-301.json')))).toEqual({
      kind: 'moved',
      newId: 'cUs7omErIdX0000000001a',
    });
  });

  it('301 without a body → moved to the Location header id (relative or absolute, decoded)', () => {
    expect(
      classifyGladlyResponse(answer(301, undefined, { location: '/api/v1/customer-profiles/new%2Fid' })),
    ).toEqual({ kind: 'moved', newId: 'new/id' });
    expect(
      classifyGladlyResponse(
        answer(301, { errors: [] }, { location: 'https://acme.gladly.com/api/v1/customer-profiles/abc' }),
      ),
    ).toEqual({ kind: 'moved', newId: 'abc' });
  });

  it('301 with neither → protocol', () => {
    expect(classifyGladlyResponse(answer(301, {}, { location: '/elsewhere' })).kind).toBe('protocol');
  });

  it('404 → not_found', () => {
    expect(classifyGladlyResponse(answer(404, fixture('customer-not-found-404.json')))).toEqual({
      kind: 'not_found',
    });
  });

  it('429 → rate_limited with the raw Retry-After (the worker reads and clamps it)', () => {
    expect(classifyGladlyResponse(answer(429, undefined, { 'retry-after': '3' }))).toMatchObject({
      kind: 'rate_limited',
      status: 429,
      retryAfter: '3',
    });
    expect(classifyGladlyResponse(answer(429))).toMatchObject({ kind: 'rate_limited', retryAfter: null });
  });

  it.each([401, 403])('%i → auth', (status) => {
    expect(classifyGladlyResponse(answer(status))).toMatchObject({ kind: 'auth', status });
  });

  it.each([500, 502, 503, 504])('%i → server', (status) => {
    expect(classifyGladlyResponse(answer(status))).toMatchObject({ kind: 'server', status });
  });

  it.each([204, 302, 400, 409, 418])('%i → protocol', (status) => {
    expect(classifyGladlyResponse(answer(status))).toMatchObject({ kind: 'protocol', status });
  });
});
