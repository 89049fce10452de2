export type KlaviyoOutcome =
  | { kind: 'delivered'; status: number }
  /** `retryAfter`: the raw header; the worker reads it (clamped) where it decides the pause. */
  | { kind: 'rate_limited'; status: 429; retryAfter: string | null }
  /**
   * No `status`: no answer (timeout, reset), so Klaviyo may or may not have recorded the event,
   * unless `notSent`: the request never left (the caller's deadline had passed).
   */
  | { kind: 'retryable'; status?: number; reason: string; notSent?: true }
  | { kind: 'auth'; status: 401 | 403; reason: string }
  | { kind: 'permanent'; status: number; code?: string; detail?: string; reason: string };

export interface KlaviyoHttpAnswer {
  status: number;
  headers: Headers;
  /** The parsed JSON body, or undefined when empty or not JSON. */
  body: unknown;
}

const MAX_DETAIL_LENGTH = 500;

/**
 * Classifies one answer of Create Event (pure). 2xx (Klaviyo answers 202) → delivered;
 * 429 → rate_limited (pause for Retry-After, not an attempt); 408 and 5xx → retryable;
 * 401/403 → auth (pause, retry slowly); other 4xx → permanent with Klaviyo's error code and
 * detail. Anything else (1xx, 3xx: a proxy or a wrong KLAVIYO_API_URL) → retryable, so a
 * misconfiguration keeps deliveries queued instead of failing them.
 */
export function classifyKlaviyoResponse(answer: KlaviyoHttpAnswer): KlaviyoOutcome {
  const { status } = answer;
  if (status >= 200 && status <= 299) return { kind: 'delivered', status };
  if (status === 429) {
    return { kind: 'rate_limited', status, retryAfter: answer.headers.get('retry-after') };
  }
  const error = firstError(answer.body);
  const described = describe(status, error);
  if (status === 401 || status === 403) return { kind: 'auth', status, reason: described };
  if (status === 408 || (status >= 500 && status <= 599))
    return { kind: 'retryable', status, reason: described };
  if (status >= 400 && status <= 499) {
    return {
      kind: 'permanent',
      status,
      ...(error.code !== undefined ? { code: error.code } : {}),
      ...(error.detail !== undefined ? { detail: error.detail } : {}),
      reason: described,
    };
  }
  return { kind: 'retryable', status, reason: `unexpected answer from Klaviyo (${status})` };
}

/**
 * Fetch failures: our timeout, connection resets and refusals, DNS errors, a body cut short.
 * None of them says the event was refused, so all are retryable (unique_id makes a resend safe).
 */
export function classifyKlaviyoFailure(err: unknown): KlaviyoOutcome {
  const name = err instanceof Error ? err.name : '';
  if (name === 'TimeoutError' || name === 'AbortError') return { kind: 'retryable', reason: 'timeout' };
  return { kind: 'retryable', reason: `network error (${errorCode(err)})` };
}

interface KlaviyoErrorEntry {
  code?: string;
  title?: string;
  detail?: string;
  pointer?: string;
}

/** Klaviyo errors: `{ errors: [{ id, status, code, title, detail, source: { pointer } }] }`. */
function firstError(body: unknown): KlaviyoErrorEntry {
  if (!isRecord(body) || !Array.isArray(body.errors)) return {};
  const first: unknown = body.errors[0];
  if (!isRecord(first)) return {};
  const entry: KlaviyoErrorEntry = {};
  if (typeof first.code === 'string') entry.code = first.code;
  if (typeof first.title === 'string') entry.title = first.title;
  if (typeof first.detail === 'string') entry.detail = first.detail.slice(0, MAX_DETAIL_LENGTH);
  if (isRecord(first.source) && typeof first.source.pointer === 'string')
    entry.pointer = first.source.pointer;
  return entry;
}

/** e.g. `Klaviyo 400 invalid: The payload provided in the request is invalid. (at /data)` */
function describe(status: number, error: KlaviyoErrorEntry): string {
  let text = `Klaviyo ${status}`;
  if (error.code) text += ` ${error.code}`;
  const message = error.detail ?? error.title;
  if (message) text += `: ${message}`;
  if (error.pointer) text += ` (at ${error.pointer})`;
  return text;
}

/** undici wraps the socket error: `TypeError('fetch failed', { cause: { code: 'ECONNRESET' } })`. */
function errorCode(err: unknown): string {
  let current: unknown = err;
  for (let depth = 0; depth < 4 && typeof current === 'object' && current !== null; depth += 1) {
    const code = (current as { code?: unknown }).code;
    if (typeof code === 'string') return code;
    current = (current as { cause?: unknown }).cause;
  }
  return err instanceof Error ? err.message : String(err);
}

function isRecord(value: unknown): value is Record<string, unknown> {
  return typeof value === 'object' && value !== null && !Array.isArray(value);
}
