/**
 * What went wrong talking to Gladly (the Events API stream rejects with these; the customer
 * lookup returns outcomes instead), as the worker needs it to decide what to do next:
 * `rate_limited` waits (Gladly's 10 GET/s are shared by every integration of the organisation),
 * `auth` pauses and retries slowly, `server`/`network`/`timeout` back off, `protocol` means an
 * answer this client does not understand (also a merge loop).
 */
export type GladlyErrorKind = 'rate_limited' | 'auth' | 'server' | 'network' | 'timeout' | 'protocol';

export interface GladlyErrorDetails {
  status?: number;
  /** The raw `Retry-After` of a 429. */
  retryAfter?: string;
  cause?: unknown;
}

/** Messages name the status and the customer id at most: never the API token, never an email. */
export class GladlyError extends Error {
  readonly kind: GladlyErrorKind;
  readonly status?: number;
  readonly retryAfter?: string;

  constructor(kind: GladlyErrorKind, message: string, details: GladlyErrorDetails = {}) {
    super(message, details.cause === undefined ? undefined : { cause: details.cause });
    this.name = 'GladlyError';
    this.kind = kind;
    if (details.status !== undefined) this.status = details.status;
    if (details.retryAfter !== undefined) this.retryAfter = details.retryAfter;
  }
}
