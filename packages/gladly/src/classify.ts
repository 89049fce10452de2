import type { GladlyErrorKind } from './errors.js';

/** An HTTP answer from Gladly's customer-profiles endpoint, body already parsed (or undefined). */
export interface GladlyHttpAnswer {
  status: number;
  headers: Headers;
  body: unknown;
}

/** What one answer means for the lookup. */
export type GladlyAnswer =
  | { kind: 'found'; emails: string[] }
  | { kind: 'moved'; newId: string }
  | { kind: 'not_found' }
  /** `retryAfter`: the raw header; the worker reads it (clamped) where it decides the pause. */
  | { kind: 'rate_limited'; status: 429; retryAfter: string | null; reason: string }
  | {
      kind: Exclude<GladlyErrorKind, 'network' | 'timeout' | 'rate_limited'>;
      status: number;
      reason: string;
    };

const PROFILE_PATH = '/api/v1/customer-profiles/';

/**
 * Classifies one answer of `GET /api/v1/customer-profiles/{id}` (pure):
 * 200 → found (the raw `emails[].original` values, in Gladly's order), 301 → moved (a merged
 * customer: the survivor's id from `errors[0].meta.new`, else from `Location`), 404 → not_found,
 * 429 → rate_limited (with `Retry-After` when present), 401/403 → auth, 5xx → server,
 * anything else (or a body that does not have the documented shape) → protocol.
 */
export function classifyGladlyResponse(answer: GladlyHttpAnswer): GladlyAnswer {
  const { status, headers, body } = answer;
  if (status === 200) {
    const emails = readEmails(body);
    if (!emails) return { kind: 'protocol', status, reason: 'profile body has no readable emails list' };
    return { kind: 'found', emails };
  }
  if (status === 301) {
    const newId = readMovedTo(body) ?? readLocationId(headers.get('location'));
    if (!newId) return { kind: 'protocol', status, reason: '301 without the surviving customer id' };
    return { kind: 'moved', newId };
  }
  if (status === 404) return { kind: 'not_found' };
  if (status === 429) {
    const reason = 'Gladly rate limit exceeded (429)';
    return { kind: 'rate_limited', status, retryAfter: headers.get('retry-after'), reason };
  }
  if (status === 401 || status === 403) {
    return { kind: 'auth', status, reason: `Gladly rejected the API credentials (${status})` };
  }
  if (status >= 500 && status <= 599)
    return { kind: 'server', status, reason: `Gladly server error (${status})` };
  return { kind: 'protocol', status, reason: `unexpected answer from Gladly (${status})` };
}

/**
 * `emails` may be absent on a profile without addresses (→ []); entries without a string
 * `original` fall back to `normalized` and are otherwise skipped. Anything that is not a list is
 * not a profile.
 */
function readEmails(body: unknown): string[] | undefined {
  if (!isRecord(body)) return undefined;
  if (body.emails === undefined || body.emails === null) return [];
  if (!Array.isArray(body.emails)) return undefined;
  const emails: string[] = [];
  for (const entry of body.emails) {
    if (!isRecord(entry)) continue;
    const value = typeof entry.original === 'string' ? entry.original : entry.normalized;
    if (typeof value === 'string' && value.length > 0) emails.push(value);
  }
  return emails;
}

function readMovedTo(body: unknown): string | undefined {
  if (!isRecord(body) || !Array.isArray(body.errors)) return undefined;
  const first: unknown = body.errors[0];
  if (!isRecord(first) || !isRecord(first.meta)) return undefined;
  const id = first.meta.new;
  return typeof id === 'string' && id.length > 0 ? id : undefined;
}

/** `Location: /api/v1/customer-profiles/{newId}` (absolute or relative). */
function readLocationId(location: string | null): string | undefined {
  if (!location) return undefined;
  let path: string;
  try {
    path = new URL(location, 'http://gladly.invalid').pathname;
  } catch {
    return undefined;
  }
  const at = path.lastIndexOf(PROFILE_PATH);
  if (at < 0) return undefined;
  const rest = path.slice(at + PROFILE_PATH.length);
  if (!rest || rest.includes('/')) return undefined;
  try {
    return decodeURIComponent(rest);
  } catch {
    return undefined;
  }
}

function isRecord(value: unknown): value is Record<string, unknown> {
  return typeof value === 'object' && value !== null && !Array.isArray(value);
}
