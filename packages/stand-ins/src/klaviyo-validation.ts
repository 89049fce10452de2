import { randomUUID } from 'node:crypto';
import { z } from 'zod';

/** Klaviyo's error object (JSON:API). */
export interface KlaviyoErrorObject {
  id: string;
  status: number;
  code: string;
  title: string;
  detail: string;
  source: { pointer?: string; header?: string; parameter?: string };
  meta: Record<string, never>;
}

/** The first revision whose Create Event accepts `backfill`. */
export const BACKFILL_MIN_REVISION = '2026-07-15';

export function klaviyoError(
  status: number,
  code: string,
  title: string,
  detail: string,
  source: KlaviyoErrorObject['source'] = {},
): KlaviyoErrorObject {
  return { id: randomUUID(), status, code, title, detail, source, meta: {} };
}

const invalid = (detail: string, source: KlaviyoErrorObject['source']) =>
  klaviyoError(400, 'invalid', 'Invalid input.', detail, source);

/**
 * `revision: YYYY-MM-DD` (optionally with a suffix such as `.pre`); required by every Klaviyo
 * call. Returns the date part, or the error to answer.
 */
export function checkRevision(
  header: string | undefined,
  revisionMin?: string,
): { ok: true; date: string } | { ok: false; error: KlaviyoErrorObject } {
  const source = { header: 'revision' };
  if (!header) return { ok: false, error: invalid('The `revision` header is required.', source) };
  const match = /^(\d{4}-\d{2}-\d{2})(\.[a-z]+)?$/.exec(header.trim());
  const date = match?.[1];
  if (!date || Number.isNaN(Date.parse(`${date}T00:00:00Z`))) {
    return { ok: false, error: invalid(`Invalid revision '${header}': expected YYYY-MM-DD.`, source) };
  }
  if (revisionMin && date < revisionMin) {
    return {
      ok: false,
      error: invalid(`Revision ${date} is not supported (oldest: ${revisionMin}).`, source),
    };
  }
  return { ok: true, date };
}

const EMAIL = /^[^\s@]+@[^\s@]+\.[^\s@]+$/;
const PropertyMap = z.record(z.string(), z.unknown());

const ProfileAttributes = z.looseObject({
  email: z.string().regex(EMAIL, 'Invalid email address.'),
  properties: PropertyMap.optional(),
});

/** Unknown event attributes are refused, as Klaviyo's JSON:API does, so a typo cannot pass. */
const EventAttributes = z.strictObject({
  properties: PropertyMap,
  time: z.iso.datetime({ offset: true }),
  unique_id: z.string().min(1),
  value: z.number().optional(),
  value_currency: z.string().optional(),
  backfill: z.boolean().optional(),
  metric: z.object({
    data: z.object({ type: z.literal('metric'), attributes: z.looseObject({ name: z.string().min(1) }) }),
  }),
  profile: z.object({
    data: z.object({ type: z.literal('profile'), attributes: ProfileAttributes }),
  }),
});

const CreateEventRequest = z.object({
  data: z.object({ type: z.literal('event'), attributes: EventAttributes }),
});
type CreateEventRequest = z.infer<typeof CreateEventRequest>;

export interface ParsedEvent {
  uniqueId: string;
  metricName: string;
  email: string;
  time: string;
  properties: Record<string, unknown>;
  profileProperties?: Record<string, unknown>;
  backfill: boolean;
}

/**
 * Validates a Create Event body against the JSON:API shape Klaviyo documents. Errors name the
 * offending member with a JSON pointer (`/data/attributes/unique_id`), like Klaviyo's 400s.
 */
export function validateCreateEvent(
  body: unknown,
  revisionDate: string,
): { ok: true; event: ParsedEvent } | { ok: false; errors: KlaviyoErrorObject[] } {
  const parsed = CreateEventRequest.safeParse(body);
  if (!parsed.success) {
    return { ok: false, errors: parsed.error.issues.slice(0, 10).map(issueToError) };
  }
  const attributes: CreateEventRequest['data']['attributes'] = parsed.data.data.attributes;
  if (attributes.backfill !== undefined && revisionDate < BACKFILL_MIN_REVISION) {
    return {
      ok: false,
      errors: [
        invalid(`'backfill' is not a valid field for the resource 'event' in revision ${revisionDate}.`, {
          pointer: '/data/attributes/backfill',
        }),
      ],
    };
  }
  const profile = attributes.profile.data.attributes;
  return {
    ok: true,
    event: {
      uniqueId: attributes.unique_id,
      metricName: attributes.metric.data.attributes.name,
      email: profile.email,
      time: attributes.time,
      properties: attributes.properties,
      ...(profile.properties !== undefined ? { profileProperties: profile.properties } : {}),
      backfill: attributes.backfill === true,
    },
  };
}

/** Bulk Create Events exists from this revision on. */
export const BULK_MIN_REVISION = '2024-05-15';
/** "Accepts up to 1,000 events per request." */
export const BULK_MAX_EVENTS = 1_000;
/** "The maximum allowed payload size is 5MB." */
export const BULK_MAX_BYTES = 5 * 1024 * 1024;

/** A bulk event: `profile` lives on its entry; `time` and `unique_id` may be left out. */
const BulkEventAttributes = z.strictObject({
  properties: PropertyMap,
  time: z.iso.datetime({ offset: true }).nullish(),
  unique_id: z.string().min(1).nullish(),
  value: z.number().nullish(),
  value_currency: z.string().nullish(),
  backfill: z.boolean().nullish(),
  metric: z.object({
    data: z.object({
      type: z.literal('metric'),
      // "Must be less than 128 characters."
      attributes: z.looseObject({ name: z.string().min(1).max(127) }),
    }),
  }),
});

const BulkEntry = z.object({
  type: z.literal('event-bulk-create'),
  attributes: z.strictObject({
    backfill: z.boolean().nullish(),
    profile: z.object({
      data: z.looseObject({ type: z.literal('profile'), attributes: ProfileAttributes }),
    }),
    events: z.object({
      data: z.array(z.object({ type: z.literal('event'), attributes: BulkEventAttributes })),
    }),
  }),
});

const BulkCreateEventsRequest = z.object({
  data: z.object({
    type: z.literal('event-bulk-create-job'),
    attributes: z.object({ 'events-bulk-create': z.object({ data: z.array(BulkEntry) }) }),
  }),
});

const ENTRIES_POINTER = '/data/attributes/events-bulk-create/data';

/**
 * Validates a Bulk Create Events body (JSON:API, as for Create Event) and returns its events in
 * request order, or errors naming the member by pointer. The whole request fails, as Klaviyo's
 * does, for more than {@link BULK_MAX_EVENTS} events or a unique_id repeated for one profile and
 * metric. Left out: `time` = when received, `unique_id` = that time to the second (Klaviyo's
 * defaults).
 */
export function validateBulkCreateEvents(
  body: unknown,
  revisionDate: string,
  now: number = Date.now(),
): { ok: true; events: ParsedEvent[] } | { ok: false; errors: KlaviyoErrorObject[] } {
  // Counted before the schema, so an oversized request is told so rather than about its details.
  const count = countBulkEvents(body);
  if (count > BULK_MAX_EVENTS) {
    return {
      ok: false,
      errors: [
        invalid(`${count} events in one request; at most ${BULK_MAX_EVENTS} are accepted.`, {
          pointer: ENTRIES_POINTER,
        }),
      ],
    };
  }
  const parsed = BulkCreateEventsRequest.safeParse(body);
  if (!parsed.success) {
    return { ok: false, errors: parsed.error.issues.slice(0, 10).map(issueToError) };
  }
  const events: ParsedEvent[] = [];
  const seen = new Set<string>();
  const received = new Date(now).toISOString();
  for (const [i, entry] of parsed.data.data.attributes['events-bulk-create'].data.entries()) {
    const profile = entry.attributes.profile.data.attributes;
    for (const [j, event] of entry.attributes.events.data.entries()) {
      const attributes = event.attributes;
      const pointer = `${ENTRIES_POINTER}/${i}/attributes/events/data/${j}/attributes`;
      const backfill = entry.attributes.backfill === true || attributes.backfill === true;
      const backfillSent = attributes.backfill != null || entry.attributes.backfill != null;
      if (backfillSent && revisionDate < BACKFILL_MIN_REVISION) {
        return {
          ok: false,
          errors: [
            invalid(`'backfill' is not a valid field in revision ${revisionDate}.`, {
              pointer: `${pointer}/backfill`,
            }),
          ],
        };
      }
      const time = attributes.time ?? received;
      const uniqueId = attributes.unique_id ?? String(Math.floor(Date.parse(time) / 1000));
      const metricName = attributes.metric.data.attributes.name;
      const key = JSON.stringify([profile.email.trim().toLowerCase(), metricName, uniqueId]);
      if (seen.has(key)) {
        return {
          ok: false,
          errors: [
            klaviyoError(
              400,
              'duplicate_unique_id',
              'Duplicate unique_id.',
              `unique_id '${uniqueId}' is repeated for the same profile and metric; no events were processed.`,
              { pointer: `${pointer}/unique_id` },
            ),
          ],
        };
      }
      seen.add(key);
      events.push({
        uniqueId,
        metricName,
        email: profile.email,
        time,
        properties: attributes.properties,
        ...(profile.properties != null ? { profileProperties: profile.properties } : {}),
        backfill,
      });
    }
  }
  return { ok: true, events };
}

/** Events in a body that looks like a bulk job (0 when it does not). */
function countBulkEvents(body: unknown): number {
  const entries = (body as { data?: { attributes?: Record<string, { data?: unknown }> } } | null)?.data
    ?.attributes?.['events-bulk-create']?.data;
  if (!Array.isArray(entries)) return 0;
  let count = 0;
  for (const entry of entries) {
    const events = (entry as { attributes?: { events?: { data?: unknown } } } | null)?.attributes?.events
      ?.data;
    if (Array.isArray(events)) count += events.length;
  }
  return count;
}

function issueToError(issue: z.core.$ZodIssue): KlaviyoErrorObject {
  const path = issue.path.map(String);
  if (issue.code === 'unrecognized_keys') {
    const key = issue.keys[0] ?? '';
    const pointer = toPointer([...path, key]);
    return invalid(`'${key}' is not a valid field for the resource '${resourceOf(path)}'.`, { pointer });
  }
  const pointer = toPointer(path);
  const missing = issue.code === 'invalid_type' && /received undefined/.test(issue.message);
  const detail = missing
    ? `'${path[path.length - 1] ?? 'data'}' is a required field.`
    : `Invalid value at ${pointer}: ${issue.message}`;
  return invalid(detail, { pointer });
}

/** RFC 6901: `~` → `~0`, `/` → `~1`. */
function toPointer(path: string[]): string {
  return path.length === 0
    ? '/'
    : `/${path.map((p) => p.replaceAll('~', '~0').replaceAll('/', '~1')).join('/')}`;
}

function resourceOf(path: string[]): string {
  if (path.includes('profile')) return 'profile';
  if (path.includes('metric')) return 'metric';
  // A bulk entry's own attributes (its events' attributes are 'event' ones).
  if (path.includes('events-bulk-create') && !path.includes('events')) return 'event-bulk-create';
  return 'event';
}
