import { redactEmails } from '@gk/domain';
import type { Logger } from '@gk/runtime';
import { RateLimitError, UnrecoverableError } from 'bullmq';
import type { Upstream, WorkerMetrics } from '../metrics.js';
import type { KlaviyoBreaker } from '../state/breaker.js';
import type { CredentialsStatus } from '../state/credentials.js';

/**
 * Every answer of Gladly or Klaviyo that is not a success, as both clients return it. One guard
 * turns it into what the queue does next, the same way for every queue.
 */
export type UpstreamFailure =
  /** 429: `retryAfter` is the raw header (or null), read by {@link parseRetryAfterMs}. */
  | { kind: 'rate_limited'; status: number; retryAfter: string | null }
  | { kind: 'auth'; status: number; reason: string }
  | { kind: 'retryable'; status?: number; reason: string }
  | { kind: 'permanent'; status: number; code?: string; reason: string };

/** The pause when a 429 has no usable `Retry-After`: both upstreams' burst windows are a second. */
export const MIN_PAUSE_MS = 1_000;

/**
 * `Retry-After` (RFC 9110 §10.2.3: delay-seconds or an HTTP-date) as a pause in ms, clamped to
 * [1 s, maxMs]. Missing, garbage, 0 and dates in the past give 1 s: a 0 ms pause is refused by
 * Redis and would spend an attempt, and a huge one (a proxy's `86400`) would stop a queue for a day.
 */
export function parseRetryAfterMs(value: string | null | undefined, maxMs: number, now = Date.now()): number {
  const trimmed = value?.trim() ?? '';
  let ms: number | undefined;
  if (/^\d+(\.\d+)?$/.test(trimmed)) ms = Number(trimmed) * 1000;
  // IMF-fixdate only (`Wed, 21 Oct 2026 07:28:00 GMT`): V8's lenient Date.parse would take anything.
  else if (/^[A-Za-z]{3}, \d{2} [A-Za-z]{3} \d{4} \d{2}:\d{2}:\d{2} GMT$/.test(trimmed)) {
    const date = Date.parse(trimmed);
    if (Number.isFinite(date)) ms = date - now;
  }
  if (ms === undefined || !Number.isFinite(ms)) return MIN_PAUSE_MS;
  return Math.min(Math.max(MIN_PAUSE_MS, maxMs), Math.max(MIN_PAUSE_MS, Math.ceil(ms)));
}

/** What the guard needs to know about the queue it protects; the pauses come from settings. */
export interface UpstreamPolicy {
  /** Cap on a pause from `Retry-After` (UPSTREAM_MAX_PAUSE_SECONDS). */
  maxPauseMs: number;
  /** How long to pause while the upstream rejects our credentials before trying again. */
  authPauseMs: number;
}

export interface UpstreamGuardDeps {
  upstream: Upstream;
  /** How the log names the key ("the API credentials", "the API key"). */
  credentialName: string;
  /** What a pause stops, for the log ("lookups", "deliveries"). */
  pausedWork: string;
  policy: UpstreamPolicy;
  credentials: CredentialsStatus;
  metrics: WorkerMetrics;
  /** The queue's outcome counter (transitions or deliveries). */
  count: (
    outcome: 'throttled' | 'credentials_rejected' | 'retried' | 'failed_permanent' | 'breaker_open',
  ) => void;
  /** Pauses the whole queue, across processes, without spending an attempt. */
  pauseQueue: (ms: number) => Promise<void>;
  /** The outage breaker (Klaviyo, KLAVIYO_BREAKER_ENABLED): fed every answer, consulted before each request. */
  breaker?: Pick<KlaviyoBreaker, 'admit' | 'record' | 'state'>;
}

export interface UpstreamGuard {
  (
    failure: UpstreamFailure,
    log: Logger,
    /**
     * The request that failed, for the log: `name` as in "klaviyo delivery failed", `subject` as in
     * "klaviyo refused the event permanently" (default: `name`); `probe` when it was the breaker's
     * probe (see `admit`).
     */
    request: { name: string; subject?: string; probe?: boolean },
    fields?: Record<string, unknown>,
  ): Promise<never>;
  /**
   * Before a request: while the breaker is open, pauses the queue and throws RateLimitError (no
   * attempt spent); else says whether this attempt is the breaker's probe (it must report: the
   * guard on a failure, `answered` otherwise). Without a breaker: never a probe.
   */
  admit(holder: string, log: Logger): Promise<{ probe: boolean }>;
  /** An answer that is not a failure ('ok'), or a probe that ends without an answer ('neutral'). */
  answered(result: 'ok' | 'neutral', probe: boolean): Promise<void>;
}

/**
 * 429 pauses the queue for Retry-After and 401/403 pause it slowly, neither spending an attempt
 * (BullMQ's RateLimitError puts the job back); 5xx, timeouts and resets retry with backoff, or,
 * once they opened the breaker, pause the queue like a 429 until a probe finds the upstream back;
 * other 4xx fail the job permanently. Always throws.
 */
export function createUpstreamGuard(deps: UpstreamGuardDeps): UpstreamGuard {
  const { upstream, breaker } = deps;
  /** The breaker is open: the queue pauses, this job goes back without spending an attempt. */
  async function holdForBreaker(waitMs: number): Promise<never> {
    await deps.pauseQueue(waitMs);
    throw new RateLimitError();
  }
  const guard = async (
    failure: UpstreamFailure,
    log: Logger,
    { name: request, subject = request, probe = false }: { name: string; subject?: string; probe?: boolean },
    fields: Record<string, unknown> = {},
  ): Promise<never> => {
    await breaker?.record(failure.kind === 'retryable' ? 'failure' : 'neutral', { probe });
    switch (failure.kind) {
      case 'rate_limited': {
        const pauseMs = parseRetryAfterMs(failure.retryAfter, deps.policy.maxPauseMs);
        deps.metrics.throttled.inc({ upstream });
        deps.count('throttled');
        log.warn(
          { ...fields, retryAfterMs: pauseMs, request },
          `${upstream} rate limit hit; pausing ${deps.pausedWork}`,
        );
        await deps.pauseQueue(pauseMs);
        throw new RateLimitError();
      }
      case 'auth': {
        deps.credentials.reject();
        deps.count('credentials_rejected');
        log.error(
          { ...fields, status: failure.status, request },
          `${upstream} rejected ${deps.credentialName}; pausing ${deps.pausedWork} and retrying slowly`,
        );
        await deps.pauseQueue(deps.policy.authPauseMs);
        throw new RateLimitError();
      }
      case 'retryable': {
        deps.count('retried');
        const reason = redactEmails(failure.reason);
        if (breaker && breaker.state() !== 'closed') {
          log.warn(
            { ...fields, status: failure.status, reason, probe },
            `${upstream} ${request} failed; the ${upstream} breaker is open, pausing ${deps.pausedWork} until a probe succeeds`,
          );
          return holdForBreaker(MIN_PAUSE_MS);
        }
        log.warn(
          { ...fields, status: failure.status, reason },
          `${upstream} ${request} failed; will retry with backoff`,
        );
        throw new Error(`${upstream}: ${reason}`);
      }
      case 'permanent': {
        deps.count('failed_permanent');
        const reason = redactEmails(failure.reason);
        log.error(
          { ...fields, status: failure.status, code: failure.code, reason },
          `${upstream} refused the ${subject} permanently`,
        );
        throw new UnrecoverableError(`${upstream} ${failure.status}: ${reason}`);
      }
      default:
        throw new Error(`unexpected ${upstream} outcome ${JSON.stringify(failure satisfies never)}`);
    }
  };
  return Object.assign(guard, {
    async admit(holder: string, log: Logger) {
      if (!breaker) return { probe: false };
      const admission = await breaker.admit(holder);
      if (admission === 'send') return { probe: false };
      if (admission === 'probe') {
        log.info(`${upstream} breaker open; this attempt probes ${upstream}`);
        return { probe: true };
      }
      deps.count('breaker_open');
      return holdForBreaker(admission.wait);
    },
    async answered(result: 'ok' | 'neutral', probe: boolean) {
      await breaker?.record(result, { probe });
    },
  });
}
