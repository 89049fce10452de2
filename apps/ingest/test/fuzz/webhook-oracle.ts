/**
 * What `POST /webhooks/gladly` must answer for a request, written from the contract (DESIGN.md,
 * README "Endpoints") and not from the app's code: checks in the documented order (credentials,
 * media type, body size, JSON, payload), fields trimmed, ids and customer/conversation ids 1–200
 * characters, timestamps RFC 3339 with seconds and an offset (checked for the types the bridge
 * stores, transitions and customer changes; a PING or an ignored type needs only its id and type). The fuzz test compares the real
 * app's answers and stored jobs with it.
 */

export const BODY_LIMIT_BYTES = 64 * 1024;
export const TRANSITION_TYPES = new Set([
  'CONVERSATION/CREATED',
  'CONVERSATION/REOPENED',
  'CONVERSATION/CLOSED',
]);
/** Customer webhooks the worker's lookup cache listens to; a merge names two customers. */
export const CUSTOMER_PROFILE_TYPES = new Set(['CUSTOMER_PROFILE/UPDATED', 'CUSTOMER_PROFILE/DELETED']);
export const CUSTOMER_MERGED_TYPES = new Set(['CUSTOMER/MERGED', 'CUSTOMER_PROFILE/MERGED']);

export type Expected =
  | { status: 401 | 413 | 415 | 400 }
  | { status: 200; outcome: 'pong' | 'ignored' }
  /** Stored as a job in `queue` (200 accepted or duplicate), or 503 when Redis is down. */
  | { status: 200; outcome: 'stored'; queue: 'transitions' | 'customer-changes'; eventId: string };

export interface OracleRequest {
  credentialsValid: boolean;
  /** How the content type is meant to be read: JSON, JSON in a charset other than UTF-8, or not JSON. */
  mediaType: 'json' | 'json-bad-charset' | 'not-json';
  /** `content-encoding` as sent, if any. */
  contentEncoding?: string;
  body: Buffer;
}

const COMPRESSED = new Set(['gzip', 'deflate', 'br']);

export function expectedAnswer(req: OracleRequest): Expected {
  if (!req.credentialsValid) return { status: 401 };
  if (req.mediaType !== 'json') return { status: 415 };
  const encoding = (req.contentEncoding ?? 'identity').toLowerCase();
  if (encoding !== 'identity') {
    // The fuzzer never compresses: a claimed compression is a body that cannot be read.
    return { status: COMPRESSED.has(encoding) ? 400 : 415 };
  }
  if (req.body.length > BODY_LIMIT_BYTES) return { status: 413 };
  const text = new TextDecoder('utf-8').decode(req.body);
  let body: unknown;
  if (text.length === 0) body = {};
  else {
    // Only an object or an array at the top (strict JSON, as a webhook body always is).
    const first = /^[ \t\n\r]*(.)/s.exec(text)?.[1];
    if (first !== '{' && first !== '[') return { status: 400 };
    try {
      body = JSON.parse(text);
    } catch {
      return { status: 400 };
    }
  }
  if (!isRecord(body)) return { status: 400 };
  const id = boundedString(body.id);
  const type = boundedString(body.type);
  if (id === null || type === null) return { status: 400 };
  // A PING must get its 200 or Gladly keeps the webhook off; other types are acknowledged so
  // Gladly never disables the webhook over them: only id and type matter for those.
  if (type === 'PING') return { status: 200, outcome: 'pong' };
  const transition = TRANSITION_TYPES.has(type);
  const profile = CUSTOMER_PROFILE_TYPES.has(type);
  const merged = CUSTOMER_MERGED_TYPES.has(type);
  if (!transition && !profile && !merged) return { status: 200, outcome: 'ignored' };
  if (!isTimestamp(body.timestamp)) return { status: 400 };
  const initiator = body.initiator;
  if (initiator !== undefined) {
    if (!isRecord(initiator)) return { status: 400 };
    for (const key of ['id', 'type'] as const)
      if (initiator[key] !== undefined && typeof initiator[key] !== 'string') return { status: 400 };
  }
  const content = body.content;
  if (!isRecord(content)) return { status: 400 };
  const ids = transition
    ? [content.customerId, content.conversationId]
    : profile
      ? [content.customerId]
      : [content.sourceCustomerId, content.destinationCustomerId];
  if (ids.some((v) => boundedString(v) === null)) return { status: 400 };
  if (merged) {
    for (const key of ['sourceConversationId', 'destinationConversationId'])
      if (content[key] !== undefined && typeof content[key] !== 'string') return { status: 400 };
  }
  const queue = transition ? 'transitions' : 'customer-changes';
  return { status: 200, outcome: 'stored', queue, eventId: id };
}

function isRecord(value: unknown): value is Record<string, unknown> {
  return typeof value === 'object' && value !== null && !Array.isArray(value);
}

/** A string that is 1–200 characters once trimmed; null otherwise. */
function boundedString(value: unknown): string | null {
  if (typeof value !== 'string') return null;
  const trimmed = value.trim();
  return trimmed.length >= 1 && trimmed.length <= 200 ? trimmed : null;
}

const RFC3339 = /^(\d{4})-(\d{2})-(\d{2})T(\d{2}):(\d{2}):(\d{2})(\.\d+)?(Z|([+-])(\d{2}):(\d{2}))$/;

/** RFC 3339 date-time: seconds required, `Z` or `±hh:mm`, a real calendar date. */
export function isTimestamp(value: unknown): boolean {
  if (typeof value !== 'string') return false;
  const m = RFC3339.exec(value);
  if (!m) return false;
  const [year, month, day, hour, minute, second] = m.slice(1, 7).map(Number) as [
    number,
    number,
    number,
    number,
    number,
    number,
  ];
  const leap = (year % 4 === 0 && year % 100 !== 0) || year % 400 === 0;
  const days = [31, leap ? 29 : 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31][month - 1];
  if (days === undefined || day < 1 || day > days) return false;
  if (hour > 23 || minute > 59 || second > 59) return false;
  if (m[8] !== 'Z' && (Number(m[10]) > 23 || Number(m[11]) > 59)) return false;
  return true;
}
