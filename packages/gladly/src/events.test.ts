import { describe, expect, it } from 'vitest';
import { buildEventsUrl, classifyEventsFailure } from './events.js';

describe('buildEventsUrl', () => {
  it('asks for the window and each entity type, as Gladly documents', () => {
    const url = buildEventsUrl('https://acme.gladly.com/', {
      startAt: new Date('2026-11-20T14:00:00+01:00'),
      entities: ['CONVERSATION', 'CUSTOMER'],
    });
    expect(url).toBe(
      'https://acme.gladly.com/api/v1/events?startAt=2026-11-20T13%3A00%3A00.000Z&entities=CONVERSATION&entities=CUSTOMER',
    );
    const parsed = new URL(url);
    expect(parsed.searchParams.get('startAt')).toBe('2026-11-20T13:00:00.000Z');
    expect(parsed.searchParams.getAll('entities')).toEqual(['CONVERSATION', 'CUSTOMER']);
  });

  it('sends endAt only when given', () => {
    const url = buildEventsUrl('https://acme.gladly.com', {
      startAt: new Date('2026-11-20T13:00:00Z'),
      endAt: new Date('2026-11-20T14:00:00Z'),
      entities: ['CONVERSATION'],
    });
    expect(new URL(url).searchParams.get('endAt')).toBe('2026-11-20T14:00:00.000Z');
  });
});

describe('classifyEventsFailure', () => {
  const headers = (h: Record<string, string> = {}) => new Headers(h);
  it('400 → protocol, with Gladly’s detail', () => {
    const body = {
      errors: [{ attr: 'startAt', code: 'invalid', detail: 'must be within the last 24 hours' }],
    };
    expect(classifyEventsFailure(400, headers(), body)).toEqual({
      kind: 'protocol',
      reason: 'Gladly answered 400: startAt must be within the last 24 hours',
    });
  });
  it('429 → rate_limited with Retry-After; 401/403 → auth; 5xx → server', () => {
    expect(classifyEventsFailure(429, headers({ 'retry-after': '2' }), undefined)).toMatchObject({
      kind: 'rate_limited',
      retryAfter: '2',
    });
    expect(classifyEventsFailure(401, headers(), undefined).kind).toBe('auth');
    expect(classifyEventsFailure(403, headers(), undefined).kind).toBe('auth');
    expect(classifyEventsFailure(503, headers(), { errors: [{ code: 'unavailable' }] })).toEqual({
      kind: 'server',
      reason: 'Gladly server error (503): unavailable',
    });
  });
});
