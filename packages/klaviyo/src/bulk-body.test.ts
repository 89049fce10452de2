import { describe, expect, it } from 'vitest';
import {
  BULK_ENVELOPE_BYTES,
  BULK_MAX_EVENTS,
  BulkBodyError,
  buildBulkCreateEventsBody,
  bulkEventBytes,
  validateEventInput,
} from './bulk-body.js';
import { buildCreateEventBody, type KlaviyoEventInput } from './event-body.js';

const started: KlaviyoEventInput = {
  email: 'Rosa.Alvarez@example.com',
  metricName: 'started conversation in Gladly',
  propertyName: 'In Gladly Conversation',
  value: true,
  uniqueId: 'evt-1',
  time: '2026-11-20T14:03:27.512Z',
  backfill: false,
};
const closed: KlaviyoEventInput = {
  ...started,
  metricName: 'closed conversation in Gladly',
  value: false,
  uniqueId: 'evt-2',
  time: '2026-11-20T15:00:00.000Z',
};

interface Entry {
  type: string;
  attributes: {
    profile: { data: { type: string; attributes: { email: string; properties?: Record<string, unknown> } } };
    events: { data: Array<{ type: string; attributes: Record<string, unknown> }> };
  };
}

function entriesOf(body: unknown): Entry[] {
  const job = body as { data: { type: string; attributes: { 'events-bulk-create': { data: Entry[] } } } };
  expect(job.data.type).toBe('event-bulk-create-job');
  return job.data.attributes['events-bulk-create'].data;
}

describe('buildBulkCreateEventsBody', () => {
  it('groups events per profile (case-insensitively), in input order, with the JSON:API types', () => {
    const other = { ...started, email: 'sam@example.com', uniqueId: 'evt-3' };
    const entries = entriesOf(
      buildBulkCreateEventsBody([started, other, { ...closed, email: ' ROSA.alvarez@example.com' }]),
    );
    expect(entries).toHaveLength(2);
    expect(entries.map((e) => e.type)).toEqual(['event-bulk-create', 'event-bulk-create']);
    const [rosa, sam] = entries;
    expect(rosa?.attributes.profile.data).toEqual({
      type: 'profile',
      attributes: { email: 'Rosa.Alvarez@example.com', properties: { 'In Gladly Conversation': false } },
    });
    expect(rosa?.attributes.events.data.map((e) => e.attributes.unique_id)).toEqual(['evt-1', 'evt-2']);
    expect(sam?.attributes.events.data.map((e) => e.attributes.unique_id)).toEqual(['evt-3']);
  });

  it('builds each event exactly as Create Event does, minus the profile', () => {
    const input = { ...started, conversationId: 'conv-1' };
    const single = (buildCreateEventBody(input) as { data: { attributes: Record<string, unknown> } }).data
      .attributes;
    const { profile: _profile, ...expected } = single;
    const [entry] = entriesOf(buildBulkCreateEventsBody([input]));
    expect(entry?.attributes.events.data).toEqual([{ type: 'event', attributes: expected }]);
    expect(JSON.stringify(entry)).toContain('"unique_id":"evt-1"');
    expect(entry?.attributes.events.data[0]?.attributes.properties).toEqual({
      'In Gladly Conversation': true,
      'Gladly Conversation ID': 'conv-1',
    });
  });

  it('takes profile properties from the last live event; a later backfill never flips them', () => {
    const staleStart = { ...started, uniqueId: 'evt-0', backfill: true };
    const [entry] = entriesOf(buildBulkCreateEventsBody([started, closed, staleStart]));
    expect(entry?.attributes.profile.data.attributes.properties).toEqual({ 'In Gladly Conversation': false });
    const backfills = entry?.attributes.events.data.map((e) => e.attributes.backfill);
    expect(backfills).toEqual([undefined, undefined, true]);
  });

  it('sends no profile properties when every event of the profile is backfill', () => {
    const [entry] = entriesOf(
      buildBulkCreateEventsBody([
        { ...started, backfill: true },
        { ...closed, backfill: true },
      ]),
    );
    expect(entry?.attributes.profile.data.attributes).toEqual({ email: 'Rosa.Alvarez@example.com' });
  });

  it('refuses a unique_id repeated for one profile and metric, naming no email', () => {
    const repeat = { ...started, email: 'ROSA.ALVAREZ@example.com', time: '2026-11-20T16:00:00Z' };
    expect(() => buildBulkCreateEventsBody([started, closed, repeat])).toThrow(BulkBodyError);
    try {
      buildBulkCreateEventsBody([started, repeat]);
    } catch (err) {
      expect(String(err)).not.toMatch(/@/);
    }
    // The same id for another metric or another profile is another event.
    const body = buildBulkCreateEventsBody([
      started,
      { ...closed, uniqueId: started.uniqueId },
      { ...started, email: 'sam@example.com' },
    ]);
    expect(entriesOf(body)).toHaveLength(2);
  });

  it(`takes ${BULK_MAX_EVENTS} events, refuses one more`, () => {
    const many = Array.from({ length: BULK_MAX_EVENTS + 1 }, (_, i) => ({ ...started, uniqueId: `e${i}` }));
    expect(
      entriesOf(buildBulkCreateEventsBody(many.slice(0, BULK_MAX_EVENTS)))[0]?.attributes.events.data,
    ).toHaveLength(BULK_MAX_EVENTS);
    expect(() => buildBulkCreateEventsBody(many)).toThrow(BulkBodyError);
  });
});

describe('bulkEventBytes', () => {
  it('sums (with the envelope) to at least the body size, and close to it for one event per profile', () => {
    const inputs = Array.from({ length: 50 }, (_, i) => ({
      ...(i % 2 ? closed : started),
      email: `p${i % 7}-é@example.com`,
      uniqueId: `u-${i}`,
      conversationId: `c"${i}`,
    }));
    const size = (list: KlaviyoEventInput[]) =>
      Buffer.byteLength(JSON.stringify(buildBulkCreateEventsBody(list)));
    const estimate = (list: KlaviyoEventInput[]) =>
      BULK_ENVELOPE_BYTES + list.reduce((sum, input) => sum + bulkEventBytes(input), 0);
    expect(estimate(inputs)).toBeGreaterThanOrEqual(size(inputs));
    const distinct = inputs.map((input, i) => ({ ...input, email: `only-${i}@example.com` }));
    expect(estimate(distinct) - size(distinct)).toBeLessThanOrEqual(1);
    expect(size([])).toBe(BULK_ENVELOPE_BYTES);
  });
});

describe('validateEventInput', () => {
  const now = Date.parse('2026-11-20T16:00:00Z');
  it.each([
    ['a live event', started, null],
    ['an offset time', { ...started, time: '2026-11-20T14:03:27+02:00' }, null],
    ['an address without a domain', { ...started, email: 'rosa@example' }, 'email is not an address'],
    ['an address with a space', { ...started, email: ' rosa@example.com' }, 'email is not an address'],
    [
      'an address over 254 characters',
      { ...started, email: `${'a'.repeat(250)}@example.com` },
      'email longer than 254 characters',
    ],
    ['an empty metric', { ...started, metricName: '  ' }, 'metric name is empty'],
    [
      'a metric of 128 characters',
      { ...started, metricName: 'm'.repeat(128) },
      'metric name longer than 127 characters',
    ],
    ['an empty unique_id', { ...started, uniqueId: '' }, 'unique_id is empty'],
    [
      'a unique_id over 100 KB',
      { ...started, uniqueId: 'u'.repeat(102_401) },
      'unique_id longer than 100 KB',
    ],
    ['an empty property name', { ...started, propertyName: '' }, 'profile property name is empty'],
    [
      'a time without offset',
      { ...started, time: '2026-11-20T14:03:27' },
      'time is not an ISO-8601 date-time with an offset',
    ],
    [
      'a day that does not exist',
      { ...started, time: '2026-02-30T10:00:00Z' },
      'time is not an ISO-8601 date-time with an offset',
    ],
    ['a time before 1991', { ...started, time: '1990-06-01T00:00:00Z' }, 'time is before 1991'],
    [
      'a time over a year ahead',
      { ...started, time: '2027-12-01T00:00:00Z' },
      'time is more than a year in the future',
    ],
  ] as const)('%s → %s', (_what, input, reason) => {
    expect(validateEventInput(input, now)).toBe(reason);
  });
});
