import { createHash } from 'node:crypto';
import { EventEmitter } from 'node:events';
import type { IncomingMessage, ServerResponse } from 'node:http';
import { FaultQueue, type InjectedFault } from './faults.js';
import {
  BodyTooLargeError,
  pathOf,
  type RunningServer,
  readBody,
  type StartOptions,
  sendJson,
  startHttpServer,
} from './http-server.js';
import {
  hasScope,
  missingScopeError,
  parseSegmentQuery,
  type SegmentInput,
  validateCreateSegment,
} from './klaviyo-account.js';
import {
  BULK_MAX_BYTES,
  BULK_MIN_REVISION,
  checkRevision,
  type KlaviyoErrorObject,
  klaviyoError,
  type ParsedEvent,
  validateBulkCreateEvents,
  validateCreateEvent,
} from './klaviyo-validation.js';
import { retryAfterSeconds, TokenBucket } from './token-bucket.js';

export interface KlaviyoRecordedEvent {
  uniqueId: string;
  metricName: string;
  /** As sent. */
  email: string;
  time: string;
  properties: Record<string, unknown>;
  profileProperties?: Record<string, unknown>;
  backfill: boolean;
  /** Date.now() when recorded. */
  receivedAt: number;
}

export interface KlaviyoProfileView {
  /** The first spelling seen. */
  email: string;
  properties: Record<string, unknown>;
  events: KlaviyoRecordedEvent[];
}

/** A segment as Create Segment stored it. */
export interface KlaviyoSegmentRecord extends SegmentInput {
  id: string;
  created: string;
}

/** A token bucket: `burst` requests at once, refilled at `perSecond`. */
export interface KlaviyoRateLimit {
  perSecond: number;
  burst: number;
}

/** Create Event's limits at Klaviyo: 350/s burst, 3,500/min steady. */
export const KLAVIYO_EVENTS_RATE_LIMIT: KlaviyoRateLimit = { perSecond: 3_500 / 60, burst: 350 };
/** Bulk Create Events' limits at Klaviyo: 10/s burst, 150/min steady. */
export const KLAVIYO_BULK_RATE_LIMIT: KlaviyoRateLimit = { perSecond: 150 / 60, burst: 10 };

export interface KlaviyoStandIn {
  url: string;
  /** Other keys → 401. */
  setApiKey(key: string): void;
  /**
   * The key's scopes (e.g. `['events:write']`); a request needing another answers 403, as
   * Klaviyo does for a key without it. null (default) = a full-access key.
   */
  setScopes(scopes: readonly string[] | null): void;
  /** Oldest `revision` accepted from now on (400 for older ones); null = any well-formed one. */
  setRevisionMin(revision: string | null): void;
  /** Segments created (kept across reset(), like account settings). */
  readonly segments: readonly KlaviyoSegmentRecord[];
  /** POST /api/segments answered 201. */
  readonly segmentCreates: number;
  /**
   * The next POSTs (Create Event, Bulk Create Events, Create Segment) answer these, in order;
   * then normal again. One queue for all, so an injected outage hits whichever endpoint comes.
   */
  injectFaults(...faults: InjectedFault[]): void;
  /**
   * An outage: while set, every Create Event and Bulk Create Events request answers this status
   * (e.g. 503), after the injected faults; null ends it. reset() ends it too.
   */
  setOutage(status: number | null): void;
  /**
   * Events for these emails are refused with 400 naming the email, as Klaviyo refuses an address
   * it will not take; a bulk request carrying one fails whole (nothing recorded). reset() forgets them.
   */
  refuseEmails(...emails: string[]): void;
  /**
   * Create Event's token bucket (burst defaults to `perSecond`); crossing it → 429 +
   * Retry-After. null removes it. Klaviyo's own: {@link KLAVIYO_EVENTS_RATE_LIMIT}.
   */
  setRateLimit(perSecond: number | null, burst?: number): void;
  /**
   * Bulk Create Events' own token bucket, separate from Create Event's (burst defaults to
   * `perSecond`); default {@link KLAVIYO_BULK_RATE_LIMIT}. null removes it.
   */
  setBulkRateLimit(perSecond: number | null, burst?: number): void;
  /** Added to every answer. */
  setLatency(ms: number): void;
  /** Every POST /api/events received (faults and duplicates included). */
  readonly posts: number;
  /** 202 answers (duplicates included). */
  readonly accepted: number;
  /** The dedupe view: the first event per (email lowercase, metric, unique_id). */
  readonly events: KlaviyoRecordedEvent[];
  /** 202s whose unique_id was already recorded for that profile and metric. */
  readonly duplicates: number;
  /** Date.now() of every POST /api/events. */
  readonly requestTimes: number[];
  /** 429s answered by any endpoint (rate limits and injected). */
  readonly throttled: number;
  /**
   * Every POST /api/event-bulk-create-jobs received (faults included). Its events, once
   * accepted, are in `events` (and `duplicates`) like Create Event's; `posts` and `accepted`
   * count Create Event only.
   */
  readonly bulkPosts: number;
  /** Bulk requests answered 202. */
  readonly bulkAccepted: number;
  /** Bulk requests answered 400 (schema, too many events or bytes, repeated unique_id). */
  readonly bulkRejected: number;
  /** Bulk requests answered 429 (its rate limit and injected). */
  readonly bulkThrottled: number;
  /** Events in the bulk requests answered 202 (duplicates of earlier requests included). */
  readonly bulkEventsAccepted: number;
  /** Date.now() of every bulk POST. */
  readonly bulkRequestTimes: number[];
  /**
   * Emails Get Profiles finds besides those events created (profiles that exist in Klaviyo
   * already). Kept across reset().
   */
  seedProfiles(...emails: string[]): void;
  /** GET /api/profiles requests answered 200. */
  readonly profileLookups: number;
  /** Case-insensitive. */
  profile(email: string): KlaviyoProfileView | undefined;
  profiles(): KlaviyoProfileView[];
  on(event: 'event', listener: (e: KlaviyoRecordedEvent) => void): void;
  off(event: 'event', listener: (e: KlaviyoRecordedEvent) => void): void;
  /** Forgets events, profiles, counters and pending faults; keeps key, rate limits and latency. */
  reset(): void;
  close(): Promise<void>;
}

export interface KlaviyoStandInOptions extends StartOptions {
  /** Default `pk_stand_in`. */
  apiKey?: string;
  /** Oldest `revision` accepted; default: any well-formed revision. */
  revisionMin?: string;
  /** Emails that already have a profile (see seedProfiles). */
  profiles?: string[];
  /** See setScopes; default null (full access). */
  scopes?: readonly string[] | null;
  /** Create Segment's daily limit (Klaviyo: 100/day); over it → 429. */
  segmentCreatesPerDay?: number;
  /** Create Event's bucket (see setRateLimit); default none. */
  rateLimit?: KlaviyoRateLimit | null;
  /** Bulk Create Events' bucket (see setBulkRateLimit); default {@link KLAVIYO_BULK_RATE_LIMIT}. */
  bulkRateLimit?: KlaviyoRateLimit | null;
}

const EVENTS_PATH = '/api/events';
const BULK_PATH = '/api/event-bulk-create-jobs';
const PROFILES_PATH = '/api/profiles';
const SEGMENTS_PATH = '/api/segments';
const METRICS_PATH = '/api/metrics';
/** Get Metrics answers pages of this many (it has no page[size] parameter). */
const METRICS_PAGE = 200;
/** The only Get Profiles filter the bridge sends: `equals(email,"…")`, with `\"` and `\\` escapes. */
const EMAIL_FILTER = /^equals\(email,"((?:[^"\\]|\\.)*)"\)$/;
/** A stand-in extra (not a Klaviyo endpoint): the dedupe view as JSON, no auth. */
const RECORDED_PATH = '/api/events/_recorded';
const JSON_API = 'application/vnd.api+json';
const ACCEPTED_TYPES = new Set([JSON_API, 'application/json']);

/**
 * A stand-in for Klaviyo's `POST /api/events` (and `POST /api/event-bulk-create-jobs`, whose
 * events are recorded as Create Event's would be) that validates requests the way Klaviyo documents
 * them (key, revision, content type, JSON:API body), answers 202 with an empty body, dedupes by
 * unique_id per profile and metric, keeps a profile view, and can throttle or fail on demand.
 * Stand-in extra, not a Klaviyo endpoint: `GET /api/events/_recorded` answers
 * `{ events, profiles, counts, bulkCounts }` (the dedupe view; `counts` are Create Event's) without
 * auth, for demos and outside harnesses.
 */
export async function startKlaviyoStandIn(options: KlaviyoStandInOptions = {}): Promise<KlaviyoStandIn> {
  let apiKey = options.apiKey ?? 'pk_stand_in';
  let scopes: Set<string> | null = options.scopes ? new Set(options.scopes) : null;
  let revisionMin = options.revisionMin;
  const segments: KlaviyoSegmentRecord[] = [];
  let segmentCreates = 0;
  let segmentCreateTimes: number[] = [];
  const segmentsPerDay = options.segmentCreatesPerDay ?? 100;
  /** metric name → first time an event of it was recorded (Klaviyo creates a metric with its first event). */
  const metrics = new Map<string, number>();
  const emitter = new EventEmitter();
  const faults = new FaultQueue();
  let rateLimit: KlaviyoRateLimit | null = options.rateLimit ?? null;
  let bucket: TokenBucket | null = rateLimit ? new TokenBucket(rateLimit.perSecond, rateLimit.burst) : null;
  let bulkRateLimit: KlaviyoRateLimit | null =
    options.bulkRateLimit === undefined ? KLAVIYO_BULK_RATE_LIMIT : options.bulkRateLimit;
  let bulkBucket: TokenBucket | null = bulkRateLimit
    ? new TokenBucket(bulkRateLimit.perSecond, bulkRateLimit.burst)
    : null;
  let latencyMs = 0;
  let outage: number | null = null;
  let refused = new Set<string>();

  let posts = 0;
  let accepted = 0;
  let duplicates = 0;
  let throttled = 0;
  let requestTimes: number[] = [];
  let bulkPosts = 0;
  let bulkAccepted = 0;
  let bulkRejected = 0;
  let bulkThrottled = 0;
  let bulkEventsAccepted = 0;
  let bulkRequestTimes: number[] = [];
  let events: KlaviyoRecordedEvent[] = [];
  let seen = new Set<string>();
  let profiles = new Map<string, KlaviyoProfileView>();
  const seeded = new Set<string>((options.profiles ?? []).map((e) => e.trim().toLowerCase()));
  let profileLookups = 0;

  const sendErrors = (res: ServerResponse, status: number, errors: KlaviyoErrorObject[], headers = {}) => {
    if (status === 429) throttled += 1;
    if (res.req.method === 'POST' && pathOf(res.req) === BULK_PATH) {
      if (status === 429) bulkThrottled += 1;
      if (status === 400) bulkRejected += 1;
    }
    sendJson(res, status, { errors }, headers, JSON_API);
  };

  function record(event: ParsedEvent): KlaviyoRecordedEvent | undefined {
    const emailKey = event.email.trim().toLowerCase();
    const key = JSON.stringify([emailKey, event.metricName, event.uniqueId]);
    if (seen.has(key)) {
      duplicates += 1;
      return undefined;
    }
    seen.add(key);
    const recorded: KlaviyoRecordedEvent = { ...event, receivedAt: Date.now() };
    if (!metrics.has(event.metricName)) metrics.set(event.metricName, recorded.receivedAt);
    events.push(recorded);
    let profile = profiles.get(emailKey);
    if (!profile) {
      profile = { email: event.email.trim(), properties: {}, events: [] };
      profiles.set(emailKey, profile);
    }
    profile.events.push(recorded);
    // A backfilled event never triggers anything on the profile, even if it carried properties.
    if (!event.backfill && event.profileProperties)
      Object.assign(profile.properties, event.profileProperties);
    return recorded;
  }

  /**
   * Create Event (`bulk` false) and Bulk Create Events: the same faults, key, scope and
   * revision checks; each its own rate limit and body rules. A bulk request is checked whole
   * before anything of it is recorded, so a refused one leaves no trace.
   */
  async function handlePost(
    req: IncomingMessage,
    res: ServerResponse,
    server: RunningServer,
    bulk: boolean,
  ): Promise<void> {
    if (bulk) {
      bulkPosts += 1;
      bulkRequestTimes.push(Date.now());
    } else {
      posts += 1;
      requestTimes.push(Date.now());
    }
    let raw: Buffer;
    let tooLarge = false;
    try {
      raw = await readBody(req, bulk ? BULK_MAX_BYTES : undefined);
    } catch (err) {
      if (!(err instanceof BodyTooLargeError)) throw err;
      if (!bulk) {
        return sendErrors(res, 413, [
          klaviyoError(413, 'too_large', 'Request too large.', 'Body over 1 MiB.'),
        ]);
      }
      // Klaviyo documents the 5 MB cap without a status of its own: an invalid request (400),
      // answered after the key and limit checks like any other.
      raw = Buffer.alloc(0);
      tooLarge = true;
    }

    const fault = faults.next();
    if (fault?.delayMs) await server.delay(fault.delayMs);
    if (fault?.drop) {
      req.socket.destroy();
      return;
    }
    if (latencyMs > 0) await server.delay(latencyMs);
    if (fault?.status !== undefined) {
      const headers =
        fault.retryAfterSeconds !== undefined ? { 'retry-after': String(fault.retryAfterSeconds) } : {};
      return sendErrors(res, fault.status, [faultError(fault.status)], headers);
    }
    if (outage !== null) return sendErrors(res, outage, [faultError(outage)]);

    const authorization = req.headers.authorization;
    if (!authorization?.startsWith('Klaviyo-API-Key ')) {
      return sendErrors(res, 401, [
        klaviyoError(
          401,
          'not_authenticated',
          'Authentication credentials were not provided.',
          'Missing private key.',
        ),
      ]);
    }
    if (authorization !== `Klaviyo-API-Key ${apiKey}`) {
      return sendErrors(res, 401, [
        klaviyoError(
          401,
          'authentication_failed',
          'Incorrect authentication credentials.',
          'Invalid private key.',
        ),
      ]);
    }

    if (!hasScope(scopes, 'events:write')) return sendErrors(res, 403, [missingScopeError('events:write')]);

    // Klaviyo's limits are per account, so only authenticated requests spend tokens.
    const limiter = bulk ? bulkBucket : bucket;
    if (limiter) {
      const taken = limiter.take();
      if (!taken.ok) {
        const seconds = retryAfterSeconds(taken.retryAfterMs);
        return sendErrors(
          res,
          429,
          [
            klaviyoError(
              429,
              'throttled',
              'Request was throttled.',
              `Request was throttled. Expected available in ${seconds} second${seconds === 1 ? '' : 's'}.`,
            ),
          ],
          { 'retry-after': String(seconds) },
        );
      }
    }

    const revision = checkRevision(header(req, 'revision'), revisionMin);
    if (!revision.ok) return sendErrors(res, 400, [revision.error]);
    if (bulk && revision.date < BULK_MIN_REVISION) {
      return sendErrors(res, 400, [
        klaviyoError(
          400,
          'invalid',
          'Invalid input.',
          `Bulk Create Events needs revision ${BULK_MIN_REVISION} or later.`,
          { header: 'revision' },
        ),
      ]);
    }

    const mediaType = (req.headers['content-type'] ?? '').split(';')[0]?.trim().toLowerCase() ?? '';
    if (!ACCEPTED_TYPES.has(mediaType)) {
      return sendErrors(res, 415, [
        klaviyoError(
          415,
          'unsupported_media_type',
          'Unsupported media type.',
          `Content-Type must be ${JSON_API} or application/json.`,
          { header: 'content-type' },
        ),
      ]);
    }

    if (tooLarge) {
      return sendErrors(res, 400, [
        klaviyoError(
          400,
          'invalid',
          'Invalid input.',
          `The payload is over the ${BULK_MAX_BYTES / 1024 / 1024} MB allowed.`,
          { pointer: '/' },
        ),
      ]);
    }
    let body: unknown;
    try {
      body = JSON.parse(raw.toString('utf8'));
    } catch {
      return sendErrors(res, 400, [
        klaviyoError(400, 'parse_error', 'Malformed JSON.', 'The request body is not valid JSON.', {
          pointer: '/',
        }),
      ]);
    }
    if (bulk) {
      const validatedBulk = validateBulkCreateEvents(body, revision.date);
      if (!validatedBulk.ok) return sendErrors(res, 400, validatedBulk.errors);
      const refusedAt = validatedBulk.events.findIndex((e) => refused.has(e.email.trim().toLowerCase()));
      if (refusedAt >= 0)
        return sendErrors(res, 400, [
          refusedEmailError(`/data/attributes/events-bulk-create/data/${refusedAt}`),
        ]);
      const recordedAll = validatedBulk.events.flatMap((event) => record(event) ?? []);
      bulkAccepted += 1;
      bulkEventsAccepted += validatedBulk.events.length;
      res.writeHead(202, { 'content-length': '0' });
      res.end();
      for (const recorded of recordedAll) emitter.emit('event', recorded);
      return;
    }
    const validated = validateCreateEvent(body, revision.date);
    if (!validated.ok) return sendErrors(res, 400, validated.errors);
    if (refused.has(validated.event.email.trim().toLowerCase())) {
      return sendErrors(res, 400, [refusedEmailError('/data/attributes/profile/data/attributes/email')]);
    }

    const recorded = record(validated.event);
    accepted += 1;
    res.writeHead(202, { 'content-length': '0' });
    res.end();
    if (recorded) emitter.emit('event', recorded);
  }

  /** Checks the key and its scope as for POST; true when it was refused (the 401/403 is sent). */
  function refuseKey(req: IncomingMessage, res: ServerResponse, scope: string): boolean {
    if (refuseKeyOnly(req, res)) return true;
    if (hasScope(scopes, scope)) return false;
    sendErrors(res, 403, [missingScopeError(scope)]);
    return true;
  }

  function refuseKeyOnly(req: IncomingMessage, res: ServerResponse): boolean {
    const authorization = req.headers.authorization;
    if (!authorization?.startsWith('Klaviyo-API-Key ')) {
      sendErrors(res, 401, [
        klaviyoError(
          401,
          'not_authenticated',
          'Authentication credentials were not provided.',
          'Missing private key.',
        ),
      ]);
      return true;
    }
    if (authorization !== `Klaviyo-API-Key ${apiKey}`) {
      sendErrors(res, 401, [
        klaviyoError(
          401,
          'authentication_failed',
          'Incorrect authentication credentials.',
          'Invalid private key.',
        ),
      ]);
      return true;
    }
    return false;
  }

  /**
   * `GET /api/profiles?filter=equals(email,"…")`: Klaviyo's Get Profiles, for the one filter the
   * bridge uses. Finds profiles events created and seeded ones, case-insensitively, as JSON:API.
   */
  async function handleProfiles(
    req: IncomingMessage,
    res: ServerResponse,
    server: RunningServer,
  ): Promise<void> {
    req.resume();
    if (latencyMs > 0) await server.delay(latencyMs);
    if (refuseKey(req, res, 'profiles:read')) return;
    const revision = checkRevision(header(req, 'revision'), revisionMin);
    if (!revision.ok) return sendErrors(res, 400, [revision.error]);
    const url = new URL(req.url ?? '/', 'http://stand-in.invalid');
    if (url.searchParams.get('filter') === null) {
      // No filter: the first profiles, as Get Profiles lists them (what a scope probe asks).
      const size = Math.min(100, Math.max(1, Number(url.searchParams.get('page[size]') ?? 20) || 20));
      const emails = [...new Set([...seeded, ...profiles.keys()])].slice(0, size);
      return sendJson(
        res,
        200,
        {
          data: emails.map((email) => ({ type: 'profile', id: profileId(email), attributes: { email } })),
          links: { self: req.url ?? PROFILES_PATH, next: null, prev: null },
        },
        {},
        JSON_API,
      );
    }
    const match = EMAIL_FILTER.exec(url.searchParams.get('filter') ?? '');
    if (!match) {
      return sendErrors(res, 400, [
        klaviyoError(
          400,
          'invalid',
          'Invalid input.',
          'This stand-in supports filter=equals(email,"…") only.',
          {
            parameter: 'filter',
          },
        ),
      ]);
    }
    const email = (match[1] ?? '').replace(/\\(.)/g, '$1').trim().toLowerCase();
    profileLookups += 1;
    const known = seeded.has(email) || profiles.has(email);
    const id = profileId(email);
    sendJson(
      res,
      200,
      {
        data: known
          ? [{ type: 'profile', id, attributes: { email }, links: { self: `/api/profiles/${id}/` } }]
          : [],
        links: { self: req.url ?? PROFILES_PATH, next: null, prev: null },
      },
      {},
      JSON_API,
    );
  }

  /** Reads the JSON body of a POST to an account endpoint; undefined when an error was answered. */
  async function readJsonBody(
    req: IncomingMessage,
    res: ServerResponse,
  ): Promise<{ body: unknown } | undefined> {
    let raw: Buffer;
    try {
      raw = await readBody(req);
    } catch (err) {
      if (err instanceof BodyTooLargeError) {
        sendErrors(res, 413, [klaviyoError(413, 'too_large', 'Request too large.', 'Body over 1 MiB.')]);
        return undefined;
      }
      throw err;
    }
    const mediaType = (req.headers['content-type'] ?? '').split(';')[0]?.trim().toLowerCase() ?? '';
    if (!ACCEPTED_TYPES.has(mediaType)) {
      sendErrors(res, 415, [
        klaviyoError(
          415,
          'unsupported_media_type',
          'Unsupported media type.',
          `Content-Type must be ${JSON_API}.`,
          {
            header: 'content-type',
          },
        ),
      ]);
      return undefined;
    }
    try {
      return { body: JSON.parse(raw.toString('utf8')) };
    } catch {
      sendErrors(res, 400, [
        klaviyoError(400, 'parse_error', 'Malformed JSON.', 'The request body is not valid JSON.', {
          pointer: '/',
        }),
      ]);
      return undefined;
    }
  }

  const segmentResource = (base: string, s: KlaviyoSegmentRecord) => ({
    type: 'segment',
    id: s.id,
    attributes: {
      name: s.name,
      definition: s.definition,
      created: s.created,
      updated: s.created,
      is_active: true,
      is_processing: false,
      is_starred: s.isStarred,
    },
    links: { self: `${base}${SEGMENTS_PATH}/${s.id}/` },
  });

  /** `GET|POST /api/segments`: Get Segments (segments:read) and Create Segment (segments:write). */
  async function handleSegments(
    req: IncomingMessage,
    res: ServerResponse,
    server: RunningServer,
  ): Promise<void> {
    const create = req.method === 'POST';
    if (!create) req.resume();
    if (latencyMs > 0) await server.delay(latencyMs);
    if (refuseKey(req, res, create ? 'segments:write' : 'segments:read')) {
      req.resume();
      return;
    }
    const revision = checkRevision(header(req, 'revision'), revisionMin);
    if (!revision.ok) {
      req.resume();
      return sendErrors(res, 400, [revision.error]);
    }
    if (!create) {
      const url = new URL(req.url ?? '/', 'http://stand-in.invalid');
      const query = parseSegmentQuery(url.searchParams);
      if (!query.ok) return sendErrors(res, 400, [query.error]);
      const matching = segments.filter((s) => query.name === null || s.name === query.name);
      const page = matching.slice(query.offset, query.offset + query.pageSize);
      const nextOffset = query.offset + query.pageSize;
      const next = new URL(`${server.url}${SEGMENTS_PATH}`);
      for (const [k, v] of url.searchParams) if (k !== 'page[cursor]') next.searchParams.set(k, v);
      next.searchParams.set('page[cursor]', String(nextOffset));
      return sendJson(
        res,
        200,
        {
          data: page.map((s) => segmentResource(server.url, s)),
          links: {
            self: `${server.url}${req.url ?? SEGMENTS_PATH}`,
            next: nextOffset < matching.length ? next.toString() : null,
            prev: null,
          },
        },
        {},
        JSON_API,
      );
    }
    const read = await readJsonBody(req, res);
    if (!read) return;
    // Injected faults apply to Create Segment as to Create Event (a dropped answer, a 5xx).
    const fault = faults.next();
    if (fault?.delayMs) await server.delay(fault.delayMs);
    if (fault?.drop) {
      req.socket.destroy();
      return;
    }
    if (fault?.status !== undefined) return sendErrors(res, fault.status, [faultError(fault.status)]);
    const validated = validateCreateSegment(read.body);
    if (!validated.ok) return sendErrors(res, 400, validated.errors);
    const now = Date.now();
    segmentCreateTimes = segmentCreateTimes.filter((t) => t > now - 24 * 3600 * 1000);
    if (segmentCreateTimes.length >= segmentsPerDay) {
      return sendErrors(
        res,
        429,
        [
          klaviyoError(
            429,
            'throttled',
            'Request was throttled.',
            'Create Segment is limited to 100 per day.',
          ),
        ],
        { 'retry-after': '3600' },
      );
    }
    segmentCreateTimes.push(now);
    segmentCreates += 1;
    const record: KlaviyoSegmentRecord = {
      ...validated.segment,
      id: createHash('sha256')
        .update(`${segments.length}:${validated.segment.name}:${now}`)
        .digest('hex')
        .slice(0, 6)
        .toUpperCase(),
      created: new Date(now).toISOString(),
    };
    segments.push(record);
    sendJson(res, 201, { data: segmentResource(server.url, record) }, {}, JSON_API);
  }

  /** `GET /api/metrics` (metrics:read): one metric per name an event was recorded under. */
  async function handleMetrics(
    req: IncomingMessage,
    res: ServerResponse,
    server: RunningServer,
  ): Promise<void> {
    req.resume();
    if (latencyMs > 0) await server.delay(latencyMs);
    if (refuseKey(req, res, 'metrics:read')) return;
    const revision = checkRevision(header(req, 'revision'), revisionMin);
    if (!revision.ok) return sendErrors(res, 400, [revision.error]);
    const url = new URL(req.url ?? '/', 'http://stand-in.invalid');
    const offset = Number(url.searchParams.get('page[cursor]') ?? 0);
    if (!Number.isInteger(offset) || offset < 0) {
      return sendErrors(res, 400, [
        klaviyoError(400, 'invalid', 'Invalid input.', 'Invalid page cursor.', { parameter: 'page[cursor]' }),
      ]);
    }
    const all = [...metrics.entries()];
    const page = all.slice(offset, offset + METRICS_PAGE);
    const next =
      offset + METRICS_PAGE < all.length
        ? `${server.url}${METRICS_PATH}?page%5Bcursor%5D=${offset + METRICS_PAGE}`
        : null;
    sendJson(
      res,
      200,
      {
        data: page.map(([name, at]) => {
          const id = createHash('sha256').update(name).digest('hex').slice(0, 6).toUpperCase();
          return {
            type: 'metric',
            id,
            attributes: {
              name,
              created: new Date(at).toISOString(),
              updated: new Date(at).toISOString(),
              integration: { object: 'integration', id: 'api', key: 'api', name: 'API', category: 'API' },
            },
            links: { self: `${server.url}${METRICS_PATH}/${id}/` },
          };
        }),
        links: { self: `${server.url}${req.url ?? METRICS_PATH}`, next, prev: null },
      },
      {},
      JSON_API,
    );
  }

  async function handle(req: IncomingMessage, res: ServerResponse, server: RunningServer): Promise<void> {
    const path = pathOf(req);
    if (path === SEGMENTS_PATH && (req.method === 'GET' || req.method === 'POST')) {
      return handleSegments(req, res, server);
    }
    if (path === METRICS_PATH && req.method === 'GET') return handleMetrics(req, res, server);
    if (path === PROFILES_PATH && req.method === 'GET') return handleProfiles(req, res, server);
    if (path === RECORDED_PATH && req.method === 'GET') {
      req.resume();
      return sendJson(res, 200, {
        events,
        profiles: [...profiles.values()].map(({ email, properties }) => ({ email, properties })),
        counts: { posts, accepted, duplicates, throttled },
        bulkCounts: {
          posts: bulkPosts,
          accepted: bulkAccepted,
          rejected: bulkRejected,
          throttled: bulkThrottled,
        },
      });
    }
    if (path === EVENTS_PATH && req.method === 'POST') return handlePost(req, res, server, false);
    if (path === BULK_PATH && req.method === 'POST') return handlePost(req, res, server, true);
    req.resume();
    if (path === EVENTS_PATH || path === BULK_PATH) {
      return sendErrors(
        res,
        405,
        [
          klaviyoError(
            405,
            'method_not_allowed',
            'Method not allowed.',
            'This stand-in only accepts POST here.',
          ),
        ],
        { allow: 'POST' },
      );
    }
    sendErrors(res, 404, [klaviyoError(404, 'not_found', 'Not found.', `No endpoint at ${path}.`)]);
  }

  const server = await startHttpServer(handle, options);
  return {
    url: server.url,
    setApiKey(key) {
      apiKey = key;
    },
    setScopes(list) {
      scopes = list === null ? null : new Set(list);
    },
    setRevisionMin(revision) {
      revisionMin = revision ?? undefined;
    },
    get segments() {
      return segments;
    },
    get segmentCreates() {
      return segmentCreates;
    },
    injectFaults(...injected) {
      faults.push(injected);
    },
    setOutage(status) {
      outage = status;
    },
    refuseEmails(...emails) {
      for (const e of emails) refused.add(e.trim().toLowerCase());
    },
    setRateLimit(perSecond, burst) {
      rateLimit = perSecond === null ? null : { perSecond, burst: burst ?? Math.max(1, perSecond) };
      bucket = rateLimit ? new TokenBucket(rateLimit.perSecond, rateLimit.burst) : null;
    },
    setBulkRateLimit(perSecond, burst) {
      bulkRateLimit = perSecond === null ? null : { perSecond, burst: burst ?? Math.max(1, perSecond) };
      bulkBucket = bulkRateLimit ? new TokenBucket(bulkRateLimit.perSecond, bulkRateLimit.burst) : null;
    },
    setLatency(ms) {
      latencyMs = Math.max(0, ms);
    },
    get posts() {
      return posts;
    },
    get accepted() {
      return accepted;
    },
    get events() {
      return events;
    },
    get duplicates() {
      return duplicates;
    },
    get requestTimes() {
      return requestTimes;
    },
    get throttled() {
      return throttled;
    },
    get bulkPosts() {
      return bulkPosts;
    },
    get bulkAccepted() {
      return bulkAccepted;
    },
    get bulkRejected() {
      return bulkRejected;
    },
    get bulkThrottled() {
      return bulkThrottled;
    },
    get bulkEventsAccepted() {
      return bulkEventsAccepted;
    },
    get bulkRequestTimes() {
      return bulkRequestTimes;
    },
    seedProfiles(...emails) {
      for (const email of emails) seeded.add(email.trim().toLowerCase());
    },
    get profileLookups() {
      return profileLookups;
    },
    profile(email) {
      return profiles.get(email.trim().toLowerCase());
    },
    profiles() {
      return [...profiles.values()];
    },
    on(event, listener) {
      emitter.on(event, listener);
    },
    off(event, listener) {
      emitter.off(event, listener);
    },
    reset() {
      posts = 0;
      accepted = 0;
      duplicates = 0;
      throttled = 0;
      requestTimes = [];
      bulkPosts = 0;
      bulkAccepted = 0;
      bulkRejected = 0;
      bulkThrottled = 0;
      bulkEventsAccepted = 0;
      bulkRequestTimes = [];
      events = [];
      seen = new Set();
      profiles = new Map();
      faults.clear();
      outage = null;
      refused = new Set();
      bucket = rateLimit ? new TokenBucket(rateLimit.perSecond, rateLimit.burst) : null;
      bulkBucket = bulkRateLimit ? new TokenBucket(bulkRateLimit.perSecond, bulkRateLimit.burst) : null;
    },
    close: () => server.close(),
  };
}

function profileId(email: string): string {
  return `01${createHash('sha256').update(email).digest('hex').slice(0, 24).toUpperCase()}`;
}

function header(req: IncomingMessage, name: string): string | undefined {
  const value = req.headers[name];
  return Array.isArray(value) ? value[0] : value;
}

/** Klaviyo's answer for an address it will not take (see refuseEmails). */
function refusedEmailError(pointer: string): KlaviyoErrorObject {
  return klaviyoError(400, 'invalid', 'Invalid input.', 'Invalid email address.', { pointer });
}

function faultError(status: number): KlaviyoErrorObject {
  if (status === 429) {
    return klaviyoError(
      429,
      'throttled',
      'Request was throttled.',
      'Request was throttled (injected fault).',
    );
  }
  if (status === 503) {
    return klaviyoError(503, 'service_unavailable', 'Service unavailable.', 'Injected fault.');
  }
  if (status >= 500) return klaviyoError(status, 'error', 'A server error occurred.', 'Injected fault.');
  return klaviyoError(status, 'invalid', 'Injected fault.', 'Injected fault.');
}
