import { readFileSync } from 'node:fs';
import { describe, expect, it } from 'vitest';
import { checkRevision, validateBulkCreateEvents, validateCreateEvent } from './klaviyo-validation.js';

type Sample = {
  data: { type: string; attributes: Record<string, unknown> & { profile: { data: { attributes: object } } } };
};
const sample = (): Sample =>
  JSON.parse(readFileSync(new URL('../../../fixtures/klaviyo/create-event.json', import.meta.url), 'utf8'));

describe('validateCreateEvent', () => {
  it('accepts the documented sample and extracts the event', () => {
    expect(validateCreateEvent(sample(), '2026-07-15')).toEqual({
      ok: true,
      event: {
        uniqueId: 'e7Qk2mLxT1aVb0cD9fGh3w',
        metricName: 'started conversation in Gladly',
        email: 'Rosa.Alvarez@example.com',
        time: '2026-11-20T14:03:27.512Z',
        properties: { 'In Gladly Conversation': true },
        profileProperties: { 'In Gladly Conversation': true },
        backfill: false,
      },
    });
  });

  it.each([
    ['unique_id', '/data/attributes/unique_id'],
    ['time', '/data/attributes/time'],
    ['properties', '/data/attributes/properties'],
    ['metric', '/data/attributes/metric'],
  ])('a missing %s is named by its pointer', (field, pointer) => {
    const body = sample();
    delete body.data.attributes[field];
    const result = validateCreateEvent(body, '2026-07-15');
    expect(result.ok).toBe(false);
    if (!result.ok) {
      expect(result.errors[0]).toMatchObject({ status: 400, code: 'invalid', source: { pointer } });
      expect(result.errors[0]?.detail).toContain(field);
    }
  });

  it('refuses a camelCase uniqueId (the SDK mistake) as an unknown field', () => {
    const body = sample();
    body.data.attributes.uniqueId = body.data.attributes.unique_id;
    const result = validateCreateEvent(body, '2026-07-15');
    expect(!result.ok && result.errors[0]?.source.pointer).toBe('/data/attributes/uniqueId');
  });

  it('refuses a non-ISO time, a wrong type and a bad email', () => {
    const body = sample();
    body.data.attributes.time = 'yesterday';
    body.data.type = 'events';
    body.data.attributes.profile.data.attributes = { email: 'not-an-email' };
    const result = validateCreateEvent(body, '2026-07-15');
    expect(result.ok).toBe(false);
    if (!result.ok) {
      expect(result.errors.map((e) => e.source.pointer).sort()).toEqual([
        '/data/attributes/profile/data/attributes/email',
        '/data/attributes/time',
        '/data/type',
      ]);
    }
  });

  it('refuses a body that is not an object at all, pointing at the root', () => {
    const result = validateCreateEvent([], '2026-07-15');
    expect(!result.ok && result.errors[0]?.source.pointer).toBe('/');
  });

  it('accepts backfill from revision 2026-07-15 on, refuses it before', () => {
    const body = sample();
    body.data.attributes.backfill = true;
    const accepted = validateCreateEvent(body, '2026-07-15');
    expect(accepted.ok && accepted.event.backfill).toBe(true);
    const refused = validateCreateEvent(body, '2025-10-15');
    expect(!refused.ok && refused.errors[0]?.source.pointer).toBe('/data/attributes/backfill');
  });
});

const bulkEvent = (uniqueId: string | undefined, extra: Record<string, unknown> = {}) => ({
  type: 'event',
  attributes: {
    properties: { 'In Gladly Conversation': true },
    time: '2026-11-20T14:03:27.512Z',
    ...(uniqueId === undefined ? {} : { unique_id: uniqueId }),
    metric: { data: { type: 'metric', attributes: { name: 'started conversation in Gladly' } } },
    ...extra,
  },
});
const bulkBody = (entries: Array<{ email: string; events: unknown[]; backfill?: boolean }>) => ({
  data: {
    type: 'event-bulk-create-job',
    attributes: {
      'events-bulk-create': {
        data: entries.map((e) => ({
          type: 'event-bulk-create',
          attributes: {
            ...(e.backfill === undefined ? {} : { backfill: e.backfill }),
            profile: {
              data: {
                type: 'profile',
                attributes: { email: e.email, properties: { 'In Gladly Conversation': true } },
              },
            },
            events: { data: e.events },
          },
        })),
      },
    },
  },
});

describe('validateBulkCreateEvents', () => {
  it('returns every event in order, each with its profile, and Klaviyo defaults for time and unique_id', () => {
    const now = Date.parse('2026-11-20T16:00:00.400Z');
    const result = validateBulkCreateEvents(
      bulkBody([
        { email: 'rosa@example.com', events: [bulkEvent('a'), bulkEvent('b', { backfill: true })] },
        { email: 'sam@example.com', events: [bulkEvent(undefined, { time: undefined })], backfill: true },
      ]),
      '2026-07-15',
      now,
    );
    expect(result.ok).toBe(true);
    if (!result.ok) return;
    expect(result.events.map((e) => [e.email, e.uniqueId, e.backfill])).toEqual([
      ['rosa@example.com', 'a', false],
      ['rosa@example.com', 'b', true],
      ['sam@example.com', String(Math.floor(now / 1000)), true],
    ]);
    expect(result.events[2]?.time).toBe('2026-11-20T16:00:00.400Z');
    expect(result.events[0]?.profileProperties).toEqual({ 'In Gladly Conversation': true });
  });

  it('names the pointer of a schema violation, and refuses a profile field on an event', () => {
    const body = bulkBody([{ email: 'rosa@example.com', events: [bulkEvent('a', { profile: {} })] }]);
    const result = validateBulkCreateEvents(body, '2026-07-15');
    expect(!result.ok && result.errors[0]?.source.pointer).toBe(
      '/data/attributes/events-bulk-create/data/0/attributes/events/data/0/attributes/profile',
    );
    const wrongType = validateBulkCreateEvents({ data: { type: 'event', attributes: {} } }, '2026-07-15');
    expect(!wrongType.ok && wrongType.errors.map((e) => e.source.pointer)).toContain('/data/type');
  });

  it('refuses the whole request for a unique_id repeated for one profile (any case) and metric', () => {
    const body = bulkBody([
      { email: 'rosa@example.com', events: [bulkEvent('a')] },
      { email: 'sam@example.com', events: [bulkEvent('a')] },
      { email: 'ROSA@example.com', events: [bulkEvent('a')] },
    ]);
    const result = validateBulkCreateEvents(body, '2026-07-15');
    expect(!result.ok && result.errors[0]).toMatchObject({
      status: 400,
      source: {
        pointer: '/data/attributes/events-bulk-create/data/2/attributes/events/data/0/attributes/unique_id',
      },
    });
  });

  it('refuses more than 1,000 events before looking at them', () => {
    const events = Array.from({ length: 1_001 }, (_, i) => bulkEvent(`e${i}`, { time: 'never' }));
    const result = validateBulkCreateEvents(bulkBody([{ email: 'rosa@example.com', events }]), '2026-07-15');
    expect(!result.ok && result.errors).toEqual([
      expect.objectContaining({ source: { pointer: '/data/attributes/events-bulk-create/data' } }),
    ]);
  });

  it('refuses backfill before revision 2026-07-15', () => {
    const body = bulkBody([{ email: 'rosa@example.com', events: [bulkEvent('a', { backfill: true })] }]);
    expect(validateBulkCreateEvents(body, '2026-07-15').ok).toBe(true);
    expect(validateBulkCreateEvents(body, '2025-10-15').ok).toBe(false);
  });
});

describe('checkRevision', () => {
  it.each(['2026-07-15', '2024-10-15.pre'])('accepts %s', (revision) => {
    expect(checkRevision(revision)).toEqual({ ok: true, date: revision.slice(0, 10) });
  });

  it.each([undefined, '', 'latest', '2026-7-15', '2026-13-45'])('refuses %s', (revision) => {
    const result = checkRevision(revision);
    expect(!result.ok && result.error).toMatchObject({ status: 400, source: { header: 'revision' } });
  });

  it('refuses revisions older than the configured minimum', () => {
    expect(checkRevision('2023-02-22', '2024-01-01').ok).toBe(false);
    expect(checkRevision('2024-01-01', '2024-01-01').ok).toBe(true);
  });
});
