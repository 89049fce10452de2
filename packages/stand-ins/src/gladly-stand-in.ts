import type { IncomingMessage, ServerResponse } from 'node:http';
import { FaultQueue, type InjectedFault } from './faults.js';
import { type GladlySenderOptions, GladlyWebhooks, WebhookInputError } from './gladly-webhooks.js';
import {
  BodyTooLargeError,
  pathOf,
  type RunningServer,
  readBody,
  type StartOptions,
  sendJson,
  startHttpServer,
} from './http-server.js';
import { retryAfterSeconds, TokenBucket } from './token-bucket.js';

export interface GladlyLookupRecord {
  customerId: string;
  /** Date.now() when the request arrived. */
  at: number;
  /** The status answered; 0 when the connection was dropped. */
  status: number;
}

/** One event as Gladly's Events API answers it (the webhook payload of the same type). */
export interface GladlyEventRecord {
  id: string;
  type: string;
  /** ISO-8601: when the event happened; what `startAt`/`endAt` filter on. */
  timestamp: string;
  [field: string]: unknown;
}

export interface GladlyEventsRequestRecord {
  at: number;
  status: number;
  startAt: string | null;
  entities: string[];
  /** Events answered. */
  count: number;
}

export interface GladlyStandIn {
  /** http://127.0.0.1:PORT */
  url: string;
  /** Basic auth is checked on every request; 401 when wrong. */
  setCredentials(user: string, token: string): void;
  /** `emails` are `emails[].original` values; `normalized` is their lowercase form. */
  setCustomer(id: string, emails: string[]): void;
  /** The old id answers 301 with `errors[0].meta.new = newId`; its own profile is gone. */
  mergeCustomer(oldId: string, newId: string): void;
  /** Unknown ids answer 404 `not_exist`. */
  removeCustomer(id: string): void;
  /**
   * What Gladly does when an agent edits a customer's addresses: the profile answers the new
   * `emails`, and a `CUSTOMER_PROFILE/UPDATED` event is emitted (Events API, subscribed webhooks).
   * Answers that event.
   */
  updateCustomer(id: string, emails: string[], options?: { at?: Date }): GladlyEventRecord;
  /**
   * What Gladly does when an agent merges two customers: the source answers 301 to the
   * destination (whose addresses stay as they are), and a `CUSTOMER/MERGED` event naming both
   * customers and, when given, the conversations joined is emitted. Answers that event.
   */
  mergeCustomers(merge: GladlyMergeInput, options?: { at?: Date }): GladlyEventRecord;
  /** The next requests answer these, in order; then normal again. */
  injectFaults(...faults: InjectedFault[]): void;
  /** Over it → 429 with `Retry-After`; null removes the limit. */
  setRateLimit(perSecond: number | null): void;
  /** Added to every answer (real lookups take a while, so work is in flight when a worker dies). */
  setLatency(ms: number): void;
  /** Every lookup request. */
  readonly requests: GladlyLookupRecord[];
  /** Adds events to the Events API's history (`GET /api/v1/events`), as Gladly records them. */
  recordEvents(...events: GladlyEventRecord[]): void;
  /** The recorded history, oldest first. */
  readonly events: readonly GladlyEventRecord[];
  /** Every Events API request (not counted in `requests`). */
  readonly eventRequests: GladlyEventsRequestRecord[];
  /**
   * What Gladly does when events happen: records them in the Events API's history (visible after
   * the Events API's delay) and delivers them to every enabled webhook subscribed to their type.
   */
  emitEvents(...events: GladlyEventRecord[]): void;
  /** The webhooks API's state and Gladly's sender (`deliveries`, `configure`). */
  readonly webhooks: GladlyWebhooks;
  /** How far behind real time the Events API is (Gladly: up to 15 s). Default 0. */
  setEventsDelay(ms: number): void;
  close(): Promise<void>;
}

/** The content of a CUSTOMER/MERGED event. */
export interface GladlyMergeInput {
  sourceCustomerId: string;
  destinationCustomerId: string;
  sourceConversationId?: string;
  destinationConversationId?: string;
}

export interface GladlyStandInOptions extends StartOptions {
  /** Default `api-user@example.com`. */
  user?: string;
  /** Default `gladly-stand-in-token`. */
  token?: string;
  customers?: Record<string, string[]>;
  /** old id → surviving id */
  merges?: Record<string, string>;
  /** History served by the Events API. */
  events?: GladlyEventRecord[];
  /** Gladly's webhook sender: time factor of its retries, dropped deliveries. */
  sender?: GladlySenderOptions;
  /** How far behind real time the Events API is. Default 0. */
  eventsDelayMs?: number;
}

const PROFILE_PATH = '/api/v1/customer-profiles/';
const EVENTS_PATH = '/api/v1/events';
const WEBHOOKS_PATH = '/api/v1/webhooks';
/** Gladly's Events API keeps the last 24 hours. */
const EVENTS_WINDOW_MS = 24 * 3600 * 1000;
/** The entity types Gladly documents for `entities`. */
const EVENT_ENTITIES = new Set([
  'AGENT_AVAILABILITY',
  'AGENT_STATUS',
  'CONTACT',
  'CONVERSATION',
  'CUSTOMER',
  'CUSTOMER_PROFILE',
  'PAYMENT_REQUEST',
  'TASK',
]);
const CREATED_AT = '2024-03-02T10:11:12.000Z';

/**
 * A stand-in for Gladly's `GET /api/v1/customer-profiles/{id}`: HTTP Basic auth, profiles shaped
 * like fixtures/gladly/customer-profile.json, 301 for merged customers, 404 for unknown ones,
 * Gladly's per-organisation rate limit (429), and injectable faults.
 */
export async function startGladlyStandIn(options: GladlyStandInOptions = {}): Promise<GladlyStandIn> {
  let expectedAuth = basic(options.user ?? 'api-user@example.com', options.token ?? 'gladly-stand-in-token');
  const customers = new Map<string, { emails: string[]; updatedAt: string }>();
  const merges = new Map<string, string>();
  const faults = new FaultQueue();
  let bucket: TokenBucket | null = null;
  let latencyMs = 0;
  const requests: GladlyLookupRecord[] = [];
  let history: GladlyEventRecord[] = [];
  const eventRequests: GladlyEventsRequestRecord[] = [];
  const webhooks = new GladlyWebhooks(options.sender);
  let eventsDelayMs = Math.max(0, options.eventsDelayMs ?? 0);
  /** When an emitted event shows up in the Events API (recorded history: at once). */
  const visibleAt = new WeakMap<GladlyEventRecord, number>();
  const recordEvents = (...events: GladlyEventRecord[]) => {
    history = [...history, ...events].sort((a, b) => Date.parse(a.timestamp) - Date.parse(b.timestamp));
  };
  recordEvents(...(options.events ?? []));

  const setCustomer = (id: string, emails: string[]) => {
    merges.delete(id);
    customers.set(id, { emails: [...emails], updatedAt: new Date().toISOString() });
  };
  const mergeCustomer = (oldId: string, newId: string) => {
    customers.delete(oldId);
    merges.set(oldId, newId);
  };
  for (const [id, emails] of Object.entries(options.customers ?? {})) setCustomer(id, emails);
  for (const [oldId, newId] of Object.entries(options.merges ?? {})) mergeCustomer(oldId, newId);

  /**
   * `GET /api/v1/events?startAt=…[&endAt=…]&entities=…`: JSON lines of the recorded events whose
   * timestamp is in [startAt, endAt] and whose type belongs to one of the entities (the part of
   * the type before `/`). startAt older than 24 h, a bad date or no entity → 400 as Gladly does.
   */
  async function handleEvents(
    req: IncomingMessage,
    res: ServerResponse,
    server: RunningServer,
  ): Promise<void> {
    const url = new URL(req.url ?? '/', 'http://stand-in.invalid');
    const startAtParam = url.searchParams.get('startAt');
    const entities = url.searchParams
      .getAll('entities')
      .flatMap((v) => v.split(','))
      .map((v) => v.trim())
      .filter(Boolean);
    const record: GladlyEventsRequestRecord = {
      at: Date.now(),
      status: 0,
      startAt: startAtParam,
      entities,
      count: 0,
    };
    eventRequests.push(record);
    const fail = (
      status: number,
      attr: string,
      code: string,
      detail: string,
      headers: Record<string, string> = {},
    ) => {
      record.status = status;
      sendJson(res, status, { errors: [{ attr, code, detail }] }, headers);
    };
    if (req.method !== 'GET') return fail(405, 'method', 'method_not_allowed', 'GET only', { allow: 'GET' });
    if (latencyMs > 0) await server.delay(latencyMs);
    if (req.headers.authorization !== expectedAuth) {
      record.status = 401;
      return sendJson(
        res,
        401,
        { errors: [{ code: 'unauthorized', detail: 'invalid API user or token' }] },
        { 'www-authenticate': 'Basic realm="Gladly"' },
      );
    }
    if (bucket) {
      const taken = bucket.take();
      if (!taken.ok) {
        return fail(429, 'request', 'too_many_requests', 'rate limit exceeded', {
          'retry-after': String(retryAfterSeconds(taken.retryAfterMs)),
        });
      }
    }
    if (!startAtParam) return fail(400, 'startAt', 'blank', 'startAt cannot be blank');
    const startAt = Date.parse(startAtParam);
    if (!Number.isFinite(startAt)) return fail(400, 'startAt', 'invalid', 'startAt must be an ISO 8601 date');
    if (startAt < Date.now() - EVENTS_WINDOW_MS) {
      return fail(400, 'startAt', 'invalid', 'startAt must be within the last 24 hours');
    }
    const endAtParam = url.searchParams.get('endAt');
    const endAt = endAtParam ? Date.parse(endAtParam) : Number.POSITIVE_INFINITY;
    if (Number.isNaN(endAt)) return fail(400, 'endAt', 'invalid', 'endAt must be an ISO 8601 date');
    if (endAt <= startAt) return fail(400, 'startAt', 'invalid', 'endAt must occur after startAt');
    if (entities.length === 0) return fail(400, 'entities', 'blank', 'at least one entity type is required');
    const unknown = entities.find((e) => !EVENT_ENTITIES.has(e));
    if (unknown) return fail(400, 'entities', 'invalid', `unknown entity type ${unknown}`);

    const wanted = new Set(entities);
    const now = Date.now();
    const selected = history.filter((e) => {
      const at = Date.parse(e.timestamp);
      return at >= startAt && at <= endAt && (visibleAt.get(e) ?? 0) <= now && wanted.has(entityOf(e.type));
    });
    record.status = 200;
    record.count = selected.length;
    const body = selected.map((e) => `${JSON.stringify(e)}\n`).join('');
    res.writeHead(200, {
      'content-type': 'application/x-jsonlines',
      'content-length': String(Buffer.byteLength(body)),
    });
    res.end(body);
  }

  /**
   * `GET|POST /api/v1/webhooks`, `GET|PATCH|DELETE /api/v1/webhooks/{id}`, as Gladly documents
   * them: Basic auth, write-only credentials and headers, PING on enable or URL change.
   */
  async function handleWebhooks(req: IncomingMessage, res: ServerResponse, path: string): Promise<void> {
    let body: unknown;
    try {
      const raw = await readBody(req, 64 * 1024);
      body = raw.length > 0 ? JSON.parse(raw.toString('utf8')) : undefined;
    } catch (err) {
      const tooLarge = err instanceof BodyTooLargeError;
      return sendJson(res, tooLarge ? 413 : 400, {
        errors: [
          {
            code: tooLarge ? 'too_large' : 'invalid',
            detail: tooLarge ? 'body too large' : 'body is not JSON',
          },
        ],
      });
    }
    if (req.headers.authorization !== expectedAuth) {
      return sendJson(
        res,
        401,
        { errors: [{ code: 'unauthorized', detail: 'invalid API user or token' }] },
        { 'www-authenticate': 'Basic realm="Gladly"' },
      );
    }
    const id = path === WEBHOOKS_PATH ? undefined : decodeURIComponent(path.slice(WEBHOOKS_PATH.length + 1));
    const notFound = () =>
      sendJson(res, 404, {
        errors: [{ attr: 'webhookId', code: 'not_exist', detail: 'webhook does not exist' }],
      });
    const input = (typeof body === 'object' && body !== null ? body : {}) as Record<string, unknown>;
    try {
      if (id === undefined) {
        if (req.method === 'GET') return sendJson(res, 200, webhooks.list());
        if (req.method === 'POST') return sendJson(res, 201, await webhooks.create(input));
        return sendJson(
          res,
          405,
          { errors: [{ code: 'method_not_allowed', detail: 'GET or POST' }] },
          { allow: 'GET, POST' },
        );
      }
      if (req.method === 'GET') {
        const hook = webhooks.get(id);
        return hook ? sendJson(res, 200, hook) : notFound();
      }
      if (req.method === 'PATCH') {
        const hook = await webhooks.update(id, input);
        return hook ? sendJson(res, 200, hook) : notFound();
      }
      if (req.method === 'DELETE') {
        if (!webhooks.remove(id)) return notFound();
        res.writeHead(204).end();
        return;
      }
      return sendJson(
        res,
        405,
        { errors: [{ code: 'method_not_allowed', detail: 'GET, PATCH or DELETE' }] },
        { allow: 'GET, PATCH, DELETE' },
      );
    } catch (err) {
      if (!(err instanceof WebhookInputError)) throw err;
      return sendJson(res, err.status, { errors: [{ attr: err.attr, code: err.code, detail: err.message }] });
    }
  }

  /**
   * `Ratelimit-Limit`, `Ratelimit-Remaining` and `Ratelimit-Reset` (seconds until the window is
   * full again) while a limit is set, as Gladly reports its per-organisation limit.
   */
  function rateLimitHeaders(): Record<string, string> {
    if (!bucket) return {};
    const remaining = bucket.remaining();
    return {
      'ratelimit-limit': String(bucket.burst),
      'ratelimit-remaining': String(remaining),
      'ratelimit-reset': String(Math.ceil((bucket.burst - remaining) / bucket.ratePerSecond)),
    };
  }

  async function handle(req: IncomingMessage, res: ServerResponse, server: RunningServer): Promise<void> {
    req.resume();
    const path = pathOf(req);
    if (path === EVENTS_PATH) return handleEvents(req, res, server);
    if (path === WEBHOOKS_PATH || path.startsWith(`${WEBHOOKS_PATH}/`)) return handleWebhooks(req, res, path);
    if (!path.startsWith(PROFILE_PATH) || path.length === PROFILE_PATH.length) {
      return sendJson(res, 404, { errors: [{ code: 'not_found', detail: 'no such endpoint' }] });
    }
    let customerId: string;
    try {
      customerId = decodeURIComponent(path.slice(PROFILE_PATH.length));
    } catch {
      return sendJson(res, 400, {
        errors: [{ attr: 'customerId', code: 'invalid', detail: 'bad id encoding' }],
      });
    }
    const record: GladlyLookupRecord = { customerId, at: Date.now(), status: 0 };
    requests.push(record);
    const answer = (status: number, body: unknown, headers: Record<string, string> = {}) => {
      record.status = status;
      sendJson(res, status, body, { ...rateLimitHeaders(), ...headers });
    };

    if (req.method !== 'GET') {
      return answer(405, { errors: [{ code: 'method_not_allowed', detail: 'GET only' }] }, { allow: 'GET' });
    }

    const fault = faults.next();
    if (fault?.delayMs) await server.delay(fault.delayMs);
    if (fault?.drop) {
      req.socket.destroy();
      return;
    }
    if (latencyMs > 0) await server.delay(latencyMs);
    if (fault?.status !== undefined) {
      const headers: Record<string, string> =
        fault.retryAfterSeconds !== undefined ? { 'retry-after': String(fault.retryAfterSeconds) } : {};
      return answer(
        fault.status,
        { errors: [{ code: faultCode(fault.status), detail: 'injected fault' }] },
        headers,
      );
    }

    if (req.headers.authorization !== expectedAuth) {
      return answer(
        401,
        { errors: [{ code: 'unauthorized', detail: 'invalid API user or token' }] },
        { 'www-authenticate': 'Basic realm="Gladly"' },
      );
    }

    if (bucket) {
      const taken = bucket.take();
      if (!taken.ok) {
        return answer(
          429,
          { errors: [{ code: 'too_many_requests', detail: 'rate limit exceeded' }] },
          { 'retry-after': String(retryAfterSeconds(taken.retryAfterMs)) },
        );
      }
    }

    const movedTo = merges.get(customerId);
    if (movedTo !== undefined) {
      return answer(
        301,
        { errors: [{ attr: 'customerId', code: 'moved', meta: { old: customerId, new: movedTo } }] },
        { location: `${PROFILE_PATH}${encodeURIComponent(movedTo)}` },
      );
    }
    const customer = customers.get(customerId);
    if (!customer) {
      return answer(404, {
        errors: [{ attr: 'customerId', code: 'not_exist', detail: 'customer does not exist' }],
      });
    }
    answer(200, {
      id: customerId,
      emails: customer.emails.map((original, index) => ({
        original,
        normalized: original.trim().toLowerCase(),
        ...(index === 0 ? { primary: true } : {}),
      })),
      phones: [],
      createdAt: CREATED_AT,
      updatedAt: customer.updatedAt,
    });
  }

  let changeCounter = 0;
  /** A Gladly-looking event id (22 characters), distinct within this stand-in. */
  const changeEventId = () => {
    changeCounter += 1;
    return `chg${Date.now().toString(36)}${changeCounter.toString(36)}`.padEnd(22, '0').slice(0, 22);
  };
  const emitEvents = (...events: GladlyEventRecord[]) => {
    const at = Date.now() + eventsDelayMs;
    for (const e of events) visibleAt.set(e, at);
    recordEvents(...events);
    for (const e of events) webhooks.send(e);
  };

  const server = await startHttpServer(handle, options);
  return {
    url: server.url,
    setCredentials(user, token) {
      expectedAuth = basic(user, token);
    },
    setCustomer,
    mergeCustomer,
    removeCustomer(id) {
      customers.delete(id);
      merges.delete(id);
    },
    injectFaults(...injected) {
      faults.push(injected);
    },
    setRateLimit(perSecond) {
      bucket = perSecond === null ? null : new TokenBucket(perSecond, Math.max(1, perSecond));
    },
    setLatency(ms) {
      latencyMs = Math.max(0, ms);
    },
    get requests() {
      return requests;
    },
    recordEvents,
    get events() {
      return history;
    },
    get eventRequests() {
      return eventRequests;
    },
    emitEvents,
    updateCustomer(id, emails, { at = new Date() } = {}) {
      setCustomer(id, emails);
      const event: GladlyEventRecord = {
        id: changeEventId(),
        type: 'CUSTOMER_PROFILE/UPDATED',
        timestamp: at.toISOString(),
        initiator: { id: 'standInAgent0000000001', type: 'AGENT' },
        content: { customerId: id },
      };
      emitEvents(event);
      return event;
    },
    mergeCustomers(merge, { at = new Date() } = {}) {
      mergeCustomer(merge.sourceCustomerId, merge.destinationCustomerId);
      const event: GladlyEventRecord = {
        id: changeEventId(),
        type: 'CUSTOMER/MERGED',
        timestamp: at.toISOString(),
        initiator: { id: 'standInAgent0000000001', type: 'AGENT' },
        content: { ...merge },
      };
      emitEvents(event);
      return event;
    },
    webhooks,
    setEventsDelay(ms) {
      eventsDelayMs = Math.max(0, ms);
    },
    close: () => {
      webhooks.close();
      return server.close();
    },
  };
}

/**
 * The entity an event type belongs to: the part before `/`. Customer profile events
 * (`CUSTOMER_PROFILE/UPDATED|DELETED`) are part of the `CUSTOMER` entity, with `CUSTOMER/MERGED`.
 */
function entityOf(type: string): string {
  const prefix = type.split('/')[0] ?? '';
  return prefix === 'CUSTOMER_PROFILE' ? 'CUSTOMER' : prefix;
}

function basic(user: string, token: string): string {
  return `Basic ${Buffer.from(`${user}:${token}`).toString('base64')}`;
}

function faultCode(status: number): string {
  if (status === 429) return 'too_many_requests';
  if (status >= 500) return 'internal_error';
  return 'error';
}
