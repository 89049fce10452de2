import { DEFAULT_KLAVIYO_REVISION } from './event-body.js';

/**
 * Klaviyo account calls for set-up and diagnosis (not delivery): key scope probes, segments and
 * metrics. Facts from Klaviyo's OpenAPI description (revision 2026-07-15): `GET /api/segments`
 * (segments:read, filter `equals(name,…)`, `page[size]` 1–10), `POST /api/segments`
 * (segments:write; 1/s burst, 15/min, 100/day), `GET /api/metrics` (metrics:read, no name filter,
 * cursor pages), `POST /api/events` (events:write). Klaviyo has no endpoint that lists a key's
 * scopes, so each scope is probed with a request that cannot change anything.
 */

export interface KlaviyoAccountOptions {
  baseUrl: string;
  apiKey: string;
  revision?: string;
  /** Per request; default 10 s. */
  timeoutMs?: number;
}

export interface KlaviyoAnswer {
  status: number;
  headers: Headers;
  /** Parsed JSON, or undefined. */
  body: unknown;
}

/** The scopes the bridge and its set-up use. */
export type KlaviyoScope =
  | 'events:write'
  | 'profiles:read'
  | 'segments:read'
  | 'segments:write'
  | 'metrics:read';

export type ProbeOutcome =
  | { kind: 'granted'; status: number }
  | { kind: 'missing_scope'; status: 403; detail: string }
  | { kind: 'key_rejected'; status: 401; detail: string }
  | { kind: 'revision_refused'; status: number; detail: string }
  | { kind: 'rate_limited'; status: 429; detail: string }
  | { kind: 'unavailable'; status?: number; detail: string };

const JSON_API = 'application/vnd.api+json';
const DEFAULT_TIMEOUT_MS = 10_000;
/** Paging is bounded: an account with thousands of metrics is read up to this many pages. */
const MAX_PAGES = 50;

/** One request to Klaviyo; network failures reject. */
export async function klaviyoRequest(
  options: KlaviyoAccountOptions,
  method: 'GET' | 'POST',
  pathAndQuery: string,
  body?: unknown,
): Promise<KlaviyoAnswer> {
  const base = options.baseUrl.replace(/\/+$/, '');
  // A `links.next` is absolute; only its path and query are used, so the key never goes to
  // another host than KLAVIYO_API_URL.
  const relative = /^https?:\/\//.test(pathAndQuery)
    ? (() => {
        const u = new URL(pathAndQuery);
        return `${u.pathname}${u.search}`;
      })()
    : pathAndQuery;
  const url = `${base}${relative}`;
  const response = await fetch(url, {
    method,
    headers: {
      authorization: `Klaviyo-API-Key ${options.apiKey}`,
      revision: options.revision ?? DEFAULT_KLAVIYO_REVISION,
      accept: JSON_API,
      ...(body === undefined ? {} : { 'content-type': JSON_API }),
    },
    ...(body === undefined ? {} : { body: JSON.stringify(body) }),
    redirect: 'manual',
    signal: AbortSignal.timeout(options.timeoutMs ?? DEFAULT_TIMEOUT_MS),
  });
  const text = await response.text();
  let parsed: unknown;
  try {
    parsed = text ? JSON.parse(text) : undefined;
  } catch {
    parsed = undefined;
  }
  return { status: response.status, headers: response.headers, body: parsed };
}

interface ErrorEntry {
  code?: string;
  detail?: string;
  header?: string;
}

export function firstKlaviyoError(body: unknown): ErrorEntry {
  const errors = (body as { errors?: unknown } | undefined)?.errors;
  if (!Array.isArray(errors) || typeof errors[0] !== 'object' || errors[0] === null) return {};
  const e = errors[0] as { code?: unknown; detail?: unknown; title?: unknown; source?: unknown };
  const source = (e.source ?? {}) as { header?: unknown };
  const detail = typeof e.detail === 'string' ? e.detail : typeof e.title === 'string' ? e.title : undefined;
  return {
    ...(typeof e.code === 'string' ? { code: e.code } : {}),
    ...(detail !== undefined ? { detail: detail.slice(0, 300) } : {}),
    ...(typeof source.header === 'string' ? { header: source.header } : {}),
  };
}

/** A 400 about the `revision` header (not about the body): the revision is refused. */
function isRevisionError(error: ErrorEntry): boolean {
  return error.header === 'revision' || /revision/i.test(error.code ?? '');
}

/**
 * What a probe's answer says about the scope (pure). 401 = key rejected; 403 = the key lacks the
 * scope (Klaviyo checks scopes before it reads the body); 400 about the revision header =
 * revision refused; any other 2xx or 4xx from body validation = the scope is there; 429 and 5xx
 * tell nothing.
 */
export function classifyProbe(answer: Pick<KlaviyoAnswer, 'status' | 'body'>): ProbeOutcome {
  const { status } = answer;
  const error = firstKlaviyoError(answer.body);
  const detail = error.detail ?? `HTTP ${status}`;
  if (status === 401) return { kind: 'key_rejected', status, detail };
  if (status === 403) return { kind: 'missing_scope', status, detail };
  if (status === 429) return { kind: 'rate_limited', status, detail };
  if (status === 400 && isRevisionError(error)) return { kind: 'revision_refused', status, detail };
  if (
    (status >= 200 && status < 300) ||
    (status >= 400 && status < 500 && status !== 404 && status !== 405)
  ) {
    return { kind: 'granted', status };
  }
  return { kind: 'unavailable', status, detail: `unexpected answer ${status}: ${detail}` };
}

/**
 * Probes one scope with a request that records nothing: reads for the read scopes, and for the
 * write scopes a body Klaviyo's schema refuses (no metric, no profile; a segment without name or
 * definition), so the answer is 400 with the scope and 403 without, and nothing is created.
 */
export async function probeKlaviyoScope(
  options: KlaviyoAccountOptions,
  scope: KlaviyoScope,
): Promise<ProbeOutcome> {
  const requests: Record<KlaviyoScope, () => Promise<KlaviyoAnswer>> = {
    'events:write': () =>
      klaviyoRequest(options, 'POST', '/api/events', { data: { type: 'event', attributes: {} } }),
    'segments:write': () =>
      klaviyoRequest(options, 'POST', '/api/segments', { data: { type: 'segment', attributes: {} } }),
    'profiles:read': () =>
      klaviyoRequest(options, 'GET', '/api/profiles?fields%5Bprofile%5D=email&page%5Bsize%5D=1'),
    'segments:read': () =>
      klaviyoRequest(options, 'GET', '/api/segments?fields%5Bsegment%5D=name&page%5Bsize%5D=1'),
    'metrics:read': () => klaviyoRequest(options, 'GET', '/api/metrics?fields%5Bmetric%5D=name'),
  };
  try {
    return classifyProbe(await requests[scope]());
  } catch (err) {
    return { kind: 'unavailable', detail: `no answer from Klaviyo (${describeFailure(err)})` };
  }
}

export function describeFailure(err: unknown): string {
  let current: unknown = err;
  for (let depth = 0; depth < 4 && typeof current === 'object' && current !== null; depth += 1) {
    const code = (current as { code?: unknown }).code;
    if (typeof code === 'string') return code;
    current = (current as { cause?: unknown }).cause;
  }
  if (err instanceof Error && (err.name === 'TimeoutError' || err.name === 'AbortError')) return 'timeout';
  return err instanceof Error ? err.message : String(err);
}

/** An error with the HTTP answer that caused it. */
export class KlaviyoApiError extends Error {
  override name = 'KlaviyoApiError';
  constructor(
    message: string,
    readonly status?: number,
  ) {
    super(message);
  }
}

function failWith(what: string, answer: KlaviyoAnswer): never {
  const error = firstKlaviyoError(answer.body);
  throw new KlaviyoApiError(
    `${what}: Klaviyo answered ${answer.status}${error.code ? ` ${error.code}` : ''}${error.detail ? `: ${error.detail}` : ''}`,
    answer.status,
  );
}

interface JsonApiPage {
  data: { id: string; attributes?: Record<string, unknown> }[];
  next: string | null;
}

function readPage(what: string, answer: KlaviyoAnswer): JsonApiPage {
  if (answer.status !== 200) failWith(what, answer);
  const body = answer.body as { data?: unknown; links?: { next?: unknown } } | undefined;
  if (!Array.isArray(body?.data))
    throw new KlaviyoApiError(`${what}: Klaviyo answered 200 without a data list`, 200);
  const next = typeof body.links?.next === 'string' && body.links.next !== '' ? body.links.next : null;
  return { data: body.data as JsonApiPage['data'], next };
}

/** Klaviyo filter strings are double-quoted; `"` and `\` inside are escaped with a backslash. */
export function quoteFilterValue(value: string): string {
  return `"${value.replace(/["\\]/g, (c) => `\\${c}`)}"`;
}

/** `properties['In Gladly Conversation']`: how a segment condition names a custom profile property. */
export function profilePropertyPath(property: string): string {
  return `properties['${property.replace(/['\\]/g, (c) => `\\${c}`)}']`;
}

export interface SegmentCondition {
  type: 'profile-property';
  property: string;
  filter: { type: 'boolean'; operator: 'equals'; value: true };
}

/** The definition of the suppression segment: the bridge's profile property is true. */
export function suppressionSegmentDefinition(property: string): {
  condition_groups: { conditions: SegmentCondition[] }[];
} {
  return {
    condition_groups: [
      {
        conditions: [
          {
            type: 'profile-property',
            property: profilePropertyPath(property),
            filter: { type: 'boolean', operator: 'equals', value: true },
          },
        ],
      },
    ],
  };
}

/** Create Segment's body (SegmentCreateQuery). */
export function buildCreateSegmentBody(name: string, property: string) {
  return {
    data: { type: 'segment', attributes: { name, definition: suppressionSegmentDefinition(property) } },
  };
}

/** Whether a segment's definition is exactly "the property equals true" (pure). */
export function isSuppressionDefinition(definition: unknown, property: string): boolean {
  return JSON.stringify(definition) === JSON.stringify(suppressionSegmentDefinition(property));
}

export interface KlaviyoSegment {
  id: string;
  name: string;
  /** null when Klaviyo did not return it. */
  definition: unknown;
}

/** Every segment with exactly this name (Get Segments filtered by name, all pages). */
export async function findSegmentsByName(
  options: KlaviyoAccountOptions,
  name: string,
): Promise<KlaviyoSegment[]> {
  const params = new URLSearchParams({
    filter: `equals(name,${quoteFilterValue(name)})`,
    'fields[segment]': 'name,definition',
    'page[size]': '10',
  });
  let url: string | null = `/api/segments?${params}`;
  const found: KlaviyoSegment[] = [];
  for (let page = 0; url && page < MAX_PAGES; page += 1) {
    const answer = await klaviyoRequest(options, 'GET', url);
    const { data, next } = readPage('Get Segments', answer);
    for (const item of data) {
      if (item.attributes?.name === name) {
        found.push({ id: item.id, name, definition: item.attributes.definition ?? null });
      }
    }
    url = next;
  }
  return found;
}

/** Create Segment; resolves the new segment's id. Never retried here (Klaviyo allows 100 a day). */
export async function createSegment(
  options: KlaviyoAccountOptions,
  name: string,
  property: string,
): Promise<string> {
  const answer = await klaviyoRequest(
    options,
    'POST',
    '/api/segments',
    buildCreateSegmentBody(name, property),
  );
  if (answer.status !== 201 && answer.status !== 200) failWith('Create Segment', answer);
  const id = (answer.body as { data?: { id?: unknown } } | undefined)?.data?.id;
  if (typeof id !== 'string')
    throw new KlaviyoApiError('Create Segment: Klaviyo answered without an id', answer.status);
  return id;
}

/** The names of the account's metrics (Get Metrics, every page up to a bound). */
export async function listMetricNames(options: KlaviyoAccountOptions): Promise<Set<string>> {
  let url: string | null = '/api/metrics?fields%5Bmetric%5D=name';
  const names = new Set<string>();
  for (let page = 0; url && page < MAX_PAGES; page += 1) {
    const { data, next } = readPage('Get Metrics', await klaviyoRequest(options, 'GET', url));
    for (const item of data) if (typeof item.attributes?.name === 'string') names.add(item.attributes.name);
    url = next;
  }
  return names;
}
