import { readFileSync } from 'node:fs';
import { describe, expect, it } from 'vitest';
import { checkRevision, validateCreateEvent } from './klaviyo-validation.js';

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
