import { buildEventProperties, type KlaviyoEventInput } from './event-body.js';

/** Bulk Create Events accepts up to 1,000 events per request (OpenAPI `bulk_create_events`). */
export const BULK_MAX_EVENTS = 1_000;
/** "The maximum allowed payload size is 5MB" (same operation). */
export const BULK_MAX_BYTES = 5 * 1024 * 1024;

/** Klaviyo: a metric name "must be less than 128 characters". */
const METRIC_NAME_MAX = 127;
/** Klaviyo: "a single string cannot exceed 100KB". */
const STRING_MAX_BYTES = 100 * 1024;
/** RFC 5321: a path (address) is at most 254 octets. */
const EMAIL_MAX = 254;
/** The shape Klaviyo (and the stand-in) accept: something@domain.tld, no spaces. */
const EMAIL = /^[^\s@]+@[^\s@]+\.[^\s@]+$/;
/** RFC 3339 date-time (OpenAPI `format: date-time`): seconds required, offset with a colon. */
const DATE_TIME = /^(\d{4}-\d{2}-\d{2})T\d{2}:\d{2}:\d{2}(\.\d{1,9})?(Z|[+-]\d{2}:\d{2})$/i;
/** Klaviyo: "The time must be after the year 1990 and can only be up to 1 year in the future." */
const EARLIEST_TIME = Date.UTC(1991, 0, 1);
const LATEST_AHEAD_MS = 365 * 24 * 3600 * 1000;

/** A batch Klaviyo would refuse whole (400): nothing of it may be sent. */
export class BulkBodyError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'BulkBodyError';
  }
}

/**
 * The JSON:API body of `POST /api/event-bulk-create-jobs`: one `event-bulk-create` entry per
 * profile (email compared trimmed and case-insensitively, as Klaviyo identifies profiles), its
 * events in input order. The profile's properties are those of its last live input; a profile
 * whose events are all backfill gets none, so a stale transition never flips it. Throws
 * {@link BulkBodyError} for more than {@link BULK_MAX_EVENTS} inputs, or for a repeated
 * (profile, metric, unique_id): Klaviyo would then fail the whole request and record nothing.
 */
export function buildBulkCreateEventsBody(inputs: readonly KlaviyoEventInput[]): unknown {
  if (inputs.length > BULK_MAX_EVENTS) {
    throw new BulkBodyError(`${inputs.length} events: Bulk Create Events takes at most ${BULK_MAX_EVENTS}`);
  }
  const profiles = new Map<string, KlaviyoEventInput[]>();
  const seen = new Set<string>();
  for (const input of inputs) {
    const profile = profileKey(input.email);
    const key = JSON.stringify([profile, input.metricName, input.uniqueId]);
    // No email in the message: it ends up in logs.
    if (seen.has(key)) {
      throw new BulkBodyError(
        `unique_id ${input.uniqueId} repeated for one profile and metric ${input.metricName}`,
      );
    }
    seen.add(key);
    const group = profiles.get(profile);
    if (group) group.push(input);
    else profiles.set(profile, [input]);
  }
  return buildEnvelope([...profiles.values()].map(buildProfileEntry));
}

/** Bytes of the body around the entries (a body with none). */
export const BULK_ENVELOPE_BYTES = Buffer.byteLength(JSON.stringify(buildEnvelope([])));

/**
 * At most the bytes this input adds to a bulk body: the entry it would get alone in its
 * profile, plus a comma. Grouping shares a profile's entry between its events, so the sum over a
 * batch plus {@link BULK_ENVELOPE_BYTES} is never below the body's real size.
 */
export function bulkEventBytes(input: KlaviyoEventInput): number {
  return Buffer.byteLength(JSON.stringify(buildProfileEntry([input]))) + 1;
}

/**
 * Why Klaviyo would refuse this event, or null. Checked before batching: an event Klaviyo
 * rejects after a bulk 202 is never reported back, and one invalid event in a request fails all
 * of it. Rules from the OpenAPI description of Bulk Create Events and Create Event.
 */
export function validateEventInput(input: KlaviyoEventInput, now: number = Date.now()): string | null {
  if (input.email.length > EMAIL_MAX) return `email longer than ${EMAIL_MAX} characters`;
  if (!EMAIL.test(input.email)) return 'email is not an address';
  if (input.metricName.trim() === '') return 'metric name is empty';
  if (input.metricName.length > METRIC_NAME_MAX) {
    return `metric name longer than ${METRIC_NAME_MAX} characters`;
  }
  if (input.propertyName.trim() === '') return 'profile property name is empty';
  if (input.uniqueId === '') return 'unique_id is empty';
  for (const [what, text] of [
    ['unique_id', input.uniqueId],
    ['profile property name', input.propertyName],
    ['conversation id', input.conversationId ?? ''],
  ] as const) {
    if (Buffer.byteLength(text) > STRING_MAX_BYTES) return `${what} longer than 100 KB`;
  }
  const match = DATE_TIME.exec(input.time);
  const at = Date.parse(input.time);
  if (!match || Number.isNaN(at) || !isCalendarDate(match[1] ?? '')) {
    return 'time is not an ISO-8601 date-time with an offset';
  }
  if (at < EARLIEST_TIME) return 'time is before 1991';
  if (at > now + LATEST_AHEAD_MS) return 'time is more than a year in the future';
  return null;
}

function buildEnvelope(entries: unknown[]): unknown {
  return {
    data: {
      type: 'event-bulk-create-job',
      attributes: { 'events-bulk-create': { data: entries } },
    },
  };
}

/** One profile and its events; `group` is non-empty and shares one profile. */
function buildProfileEntry(group: readonly KlaviyoEventInput[]): unknown {
  const first = group[0] as KlaviyoEventInput;
  const live = group.findLast((input) => !input.backfill);
  const profileAttributes: Record<string, unknown> = { email: first.email };
  if (live) profileAttributes.properties = { [live.propertyName]: live.value };
  return {
    type: 'event-bulk-create',
    attributes: {
      profile: { data: { type: 'profile', attributes: profileAttributes } },
      events: { data: group.map(buildEventEntry) },
    },
  };
}

function buildEventEntry(input: KlaviyoEventInput): unknown {
  return {
    type: 'event',
    attributes: {
      properties: buildEventProperties(input),
      time: input.time,
      unique_id: input.uniqueId,
      ...(input.backfill ? { backfill: true } : {}),
      metric: { data: { type: 'metric', attributes: { name: input.metricName } } },
    },
  };
}

function profileKey(email: string): string {
  return email.trim().toLowerCase();
}

/** `2026-02-30` parses in some engines; a real calendar day reads back unchanged. */
function isCalendarDate(date: string): boolean {
  const at = Date.parse(`${date}T00:00:00Z`);
  return !Number.isNaN(at) && new Date(at).toISOString().slice(0, 10) === date;
}
