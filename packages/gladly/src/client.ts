import { classifyGladlyResponse } from './classify.js';
import { GladlyError } from './errors.js';

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

export interface GladlyClient {
  /** Resolves found/not_found; rejects with a {@link GladlyError} for everything else. */
  getCustomerEmails(customerId: string): Promise<CustomerEmailsResult>;
}

const DEFAULT_TIMEOUT_MS = 10_000;
const DEFAULT_MAX_MERGE_HOPS = 5;

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
      throw toTransportError(err, customerId, timeoutMs);
    }
  }

  return {
    async getCustomerEmails(customerId) {
      const visited = new Set<string>([customerId]);
      let currentId = customerId;
      let hops = 0;
      for (;;) {
        const answer = await fetchProfile(currentId);
        const outcome = classifyGladlyResponse(answer);
        switch (outcome.kind) {
          case 'found':
            return { status: 'found', customerId: currentId, emails: outcome.emails, hops };
          case 'not_found':
            return { status: 'not_found', customerId: currentId };
          case 'moved': {
            if (visited.has(outcome.newId)) {
              throw new GladlyError(
                'protocol',
                `customer ${customerId}: merge loop after ${hops + 1} hop(s)`,
                {
                  status: 301,
                },
              );
            }
            if (hops >= maxMergeHops) {
              throw new GladlyError(
                'protocol',
                `customer ${customerId}: more than ${maxMergeHops} merge hops`,
                {
                  status: 301,
                },
              );
            }
            visited.add(outcome.newId);
            currentId = outcome.newId;
            hops += 1;
            break;
          }
          default:
            throw new GladlyError(outcome.kind, `customer ${currentId}: ${outcome.reason}`, {
              status: outcome.status,
              ...(outcome.kind === 'rate_limited' && outcome.retryAfterMs !== undefined
                ? { retryAfterMs: outcome.retryAfterMs }
                : {}),
            });
        }
      }
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

/** Timeouts (ours) → `timeout`; resets, refusals, DNS, truncated bodies → `network`. */
function toTransportError(err: unknown, customerId: string, timeoutMs: number): GladlyError {
  if (err instanceof GladlyError) return err;
  const name = err instanceof Error ? err.name : '';
  if (name === 'TimeoutError' || name === 'AbortError') {
    return new GladlyError(
      'timeout',
      `customer ${customerId}: Gladly did not answer within ${timeoutMs} ms`,
      {
        cause: err,
      },
    );
  }
  const code = errorCode(err);
  return new GladlyError('network', `customer ${customerId}: network error talking to Gladly (${code})`, {
    cause: err,
  });
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
