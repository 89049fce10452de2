import { performance } from 'node:perf_hooks';
import { classifyGladlyResponse } from './classify.js';

export interface GladlyClientOptions {
  /** e.g. `https://acme.gladly.com` */
  baseUrl: string;
  /** The API user's email. */
  user: string;
  /** The API user's token. */
  token: string;
  /** Per request (each merge hop is one request). Default 10 s. */
  timeoutMs?: number;
  /** How many 301 merges to follow before giving up. Default 5. */
  maxMergeHops?: number;
}

export type CustomerEmailsResult =
  | {
      status: 'found';
      /** The id the profile was found under, after following merges. */
      customerId: string;
      /** Raw `emails[].original` values in Gladly's order, not normalised. */
      emails: string[];
      /** How many 301 merges were followed. */
      hops: number;
    }
  | { status: 'not_found'; customerId: string };

/**
 * A lookup's outcome, in the same shape as the Klaviyo client's: `answered` (found or not found),
 * or a failure the worker's upstream guard acts on. Reasons name the status and the customer id
 * at most: never the API token, never an email.
 */
export type CustomerLookupOutcome = (
  | { kind: 'answered'; customer: CustomerEmailsResult }
  /** `retryAfter`: the raw header (or null); the worker reads and clamps it. */
  | { kind: 'rate_limited'; status: 429; retryAfter: string | null }
  | { kind: 'auth'; status: number; reason: string }
  /** 5xx, timeouts, resets, refusals, and answers this client does not understand (merge loops too). */
  | { kind: 'retryable'; status?: number; reason: string }
) & {
  /** Time spent on every request of the lookup (merge hops included). */
  durationMs: number;
};

export interface GladlyClient {
  /** Never rejects: every answer and every failure becomes a {@link CustomerLookupOutcome}. */
  getCustomerEmails(customerId: string): Promise<CustomerLookupOutcome>;
}

const DEFAULT_TIMEOUT_MS = 10_000;
const DEFAULT_MAX_MERGE_HOPS = 5;

/** An outcome before its duration is added. */
type Timeless<T> = T extends unknown ? Omit<T, 'durationMs'> : never;
type LookupResult = Timeless<CustomerLookupOutcome>;
type FailureWithoutDuration = Exclude<LookupResult, { kind: 'answered' }>;

export function createGladlyClient(options: GladlyClientOptions): GladlyClient {
  const baseUrl = options.baseUrl.replace(/\/+$/, '');
  const timeoutMs = options.timeoutMs ?? DEFAULT_TIMEOUT_MS;
  const maxMergeHops = options.maxMergeHops ?? DEFAULT_MAX_MERGE_HOPS;
  const authorization = `Basic ${Buffer.from(`${options.user}:${options.token}`).toString('base64')}`;

  async function fetchProfile(customerId: string) {
    const url = `${baseUrl}/api/v1/customer-profiles/${encodeURIComponent(customerId)}`;
    try {
      // Merges are followed by hand (bounded, loop-checked), so never let fetch follow a 301.
      const response = await fetch(url, {
        method: 'GET',
        headers: { authorization, accept: 'application/json' },
        redirect: 'manual',
        signal: AbortSignal.timeout(timeoutMs),
      });
      // Always read the body to the end so the keep-alive socket goes back to the pool.
      const text = await response.text();
      return { status: response.status, headers: response.headers, body: parseJson(text) };
    } catch (err) {
      return transportFailure(err, customerId, timeoutMs);
    }
  }

  async function lookup(customerId: string): Promise<LookupResult> {
    const visited = new Set<string>([customerId]);
    let currentId = customerId;
    let hops = 0;
    for (;;) {
      const answer = await fetchProfile(currentId);
      if ('kind' in answer) return answer;
      const outcome = classifyGladlyResponse(answer);
      switch (outcome.kind) {
        case 'found':
          return {
            kind: 'answered',
            customer: { status: 'found', customerId: currentId, emails: outcome.emails, hops },
          };
        case 'not_found':
          return { kind: 'answered', customer: { status: 'not_found', customerId: currentId } };
        case 'moved': {
          if (visited.has(outcome.newId)) {
            const reason = `customer ${customerId}: merge loop after ${hops + 1} hop(s)`;
            return { kind: 'retryable', status: 301, reason };
          }
          if (hops >= maxMergeHops) {
            const reason = `customer ${customerId}: more than ${maxMergeHops} merge hops`;
            return { kind: 'retryable', status: 301, reason };
          }
          visited.add(outcome.newId);
          currentId = outcome.newId;
          hops += 1;
          break;
        }
        case 'rate_limited':
          return { kind: 'rate_limited', status: 429, retryAfter: outcome.retryAfter };
        case 'auth':
          return { kind: 'auth', status: outcome.status, reason: `customer ${currentId}: ${outcome.reason}` };
        default:
          return {
            kind: 'retryable',
            status: outcome.status,
            reason: `customer ${currentId}: ${outcome.reason}`,
          };
      }
    }
  }

  return {
    async getCustomerEmails(customerId) {
      const started = performance.now();
      const result = await lookup(customerId);
      return { ...result, durationMs: performance.now() - started } as CustomerLookupOutcome;
    },
  };
}

function parseJson(text: string): unknown {
  if (!text) return undefined;
  try {
    return JSON.parse(text);
  } catch {
    return undefined;
  }
}

/** Our timeout, resets, refusals, DNS errors, truncated bodies: all retryable. */
function transportFailure(err: unknown, customerId: string, timeoutMs: number): FailureWithoutDuration {
  const name = err instanceof Error ? err.name : '';
  if (name === 'TimeoutError' || name === 'AbortError') {
    return {
      kind: 'retryable',
      reason: `customer ${customerId}: Gladly did not answer within ${timeoutMs} ms`,
    };
  }
  return {
    kind: 'retryable',
    reason: `customer ${customerId}: network error talking to Gladly (${errorCode(err)})`,
  };
}

/** undici wraps the socket error: `TypeError('fetch failed', { cause: { code: 'ECONNRESET' } })`. */
function errorCode(err: unknown): string {
  let current: unknown = err;
  for (let depth = 0; depth < 4 && current; depth += 1) {
    if (typeof current === 'object' && current !== null) {
      const code = (current as { code?: unknown }).code;
      if (typeof code === 'string') return code;
      current = (current as { cause?: unknown }).cause;
    } else break;
  }
  return err instanceof Error ? err.message : 'unknown';
}
