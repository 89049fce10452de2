import { GladlyError, type GladlyErrorKind } from './errors.js';

/** Gladly keeps events for 24 hours; `startAt` must fall inside that window. */
export const EVENTS_WINDOW_MS = 24 * 3600 * 1000;

export interface GladlyEventsQuery {
  startAt: Date;
  /** Default: now (Gladly's default). */
  endAt?: Date;
  /** Entity types, e.g. `CONVERSATION`; at least one. */
  entities: readonly string[];
}

/** `GET {base}/api/v1/events?startAt=…&entities=…` (one `entities` parameter per type, as Gladly documents). */
export function buildEventsUrl(baseUrl: string, query: GladlyEventsQuery): string {
  const params = new URLSearchParams({ startAt: query.startAt.toISOString() });
  if (query.endAt) params.set('endAt', query.endAt.toISOString());
  for (const entity of query.entities) params.append('entities', entity);
  return `${baseUrl.replace(/\/+$/, '')}/api/v1/events?${params}`;
}

/**
 * What a non-200 answer of the Events API means (pure): 429 → rate_limited, 401/403 → auth,
 * 5xx → server, anything else (400 for a `startAt` outside the window, say) → protocol, with
 * Gladly's own error detail when it sent one (`{ errors: [{ attr, code, detail }] }`).
 */
export function classifyEventsFailure(
  status: number,
  headers: Headers,
  body: unknown,
): { kind: Exclude<GladlyErrorKind, 'network' | 'timeout'>; reason: string; retryAfter?: string } {
  const detail = errorDetail(body);
  const said = detail ? `: ${detail}` : '';
  if (status === 429) {
    const retryAfter = headers.get('retry-after');
    const reason = `Gladly rate limit exceeded (429)${said}`;
    return retryAfter === null
      ? { kind: 'rate_limited', reason }
      : { kind: 'rate_limited', reason, retryAfter };
  }
  if (status === 401 || status === 403)
    return { kind: 'auth', reason: `Gladly rejected the API credentials (${status})` };
  if (status >= 500 && status <= 599)
    return { kind: 'server', reason: `Gladly server error (${status})${said}` };
  return { kind: 'protocol', reason: `Gladly answered ${status}${said}` };
}

function errorDetail(body: unknown): string | undefined {
  if (typeof body !== 'object' || body === null) return undefined;
  const errors = (body as { errors?: unknown }).errors;
  if (!Array.isArray(errors)) return undefined;
  const parts = errors.flatMap((e: unknown) => {
    if (typeof e !== 'object' || e === null) return [];
    const { attr, detail, code } = e as { attr?: unknown; detail?: unknown; code?: unknown };
    const text = typeof detail === 'string' ? detail : typeof code === 'string' ? code : undefined;
    if (!text) return [];
    return [typeof attr === 'string' ? `${attr} ${text}` : text];
  });
  return parts.length > 0 ? parts.join('; ').slice(0, 300) : undefined;
}

export interface GladlyEventsClientOptions {
  baseUrl: string;
  user: string;
  token: string;
  /** For the whole answer, streamed. Default 5 min. */
  timeoutMs?: number;
}

/**
 * Streams the Events API's answer (JSON lines, one event per line) line by line, without holding
 * the whole answer in memory. Rejects with a {@link GladlyError} on a non-200 answer or a broken
 * stream; lines already yielded stay valid (re-running is safe: job ids derive from event ids).
 */
export async function* streamGladlyEvents(
  options: GladlyEventsClientOptions,
  query: GladlyEventsQuery,
): AsyncGenerator<string> {
  const timeoutMs = options.timeoutMs ?? 300_000;
  const authorization = `Basic ${Buffer.from(`${options.user}:${options.token}`).toString('base64')}`;
  let response: Response;
  try {
    response = await fetch(buildEventsUrl(options.baseUrl, query), {
      headers: { authorization, accept: 'application/x-jsonlines, application/json' },
      redirect: 'manual',
      signal: AbortSignal.timeout(timeoutMs),
    });
  } catch (err) {
    throw transportError(err, timeoutMs);
  }
  if (response.status !== 200) {
    const text = await response.text().catch(() => '');
    const failure = classifyEventsFailure(response.status, response.headers, parseJson(text));
    throw new GladlyError(failure.kind, `events: ${failure.reason}`, {
      status: response.status,
      ...(failure.retryAfter === undefined ? {} : { retryAfter: failure.retryAfter }),
    });
  }
  if (!response.body) return;
  const decoder = new TextDecoder();
  let pending = '';
  try {
    for await (const chunk of response.body) {
      pending += decoder.decode(chunk, { stream: true });
      let newline = pending.indexOf('\n');
      while (newline >= 0) {
        const line = pending.slice(0, newline).replace(/\r$/, '');
        pending = pending.slice(newline + 1);
        if (line.trim() !== '') yield line;
        newline = pending.indexOf('\n');
      }
    }
  } catch (err) {
    throw transportError(err, timeoutMs);
  }
  pending += decoder.decode();
  if (pending.trim() !== '') yield pending.replace(/\r$/, '');
}

function parseJson(text: string): unknown {
  try {
    return text ? JSON.parse(text) : undefined;
  } catch {
    return undefined;
  }
}

function transportError(err: unknown, timeoutMs: number): GladlyError {
  if (err instanceof GladlyError) return err;
  const name = err instanceof Error ? err.name : '';
  if (name === 'TimeoutError' || name === 'AbortError') {
    return new GladlyError('timeout', `events: Gladly did not finish answering within ${timeoutMs} ms`, {
      cause: err,
    });
  }
  return new GladlyError('network', 'events: network error talking to Gladly', { cause: err });
}
