import { performance } from 'node:perf_hooks';
import { BulkBodyError, buildBulkCreateEventsBody } from './bulk-body.js';
import { classifyKlaviyoFailure, classifyKlaviyoResponse, type KlaviyoOutcome } from './classify.js';
import { buildCreateEventBody, DEFAULT_KLAVIYO_REVISION, type KlaviyoEventInput } from './event-body.js';
import { buildProfileLookupUrl, classifyProfileLookup, type ProfileLookupOutcome } from './profiles.js';
import { DeadlinePassedError, sendRequest } from './send.js';

export interface KlaviyoClientOptions {
  /** e.g. `https://a.klaviyo.com` */
  baseUrl: string;
  /** Private key with events:write. */
  apiKey: string;
  /** Default {@link DEFAULT_KLAVIYO_REVISION}. */
  revision?: string;
  /** Default 10 s. */
  timeoutMs?: number;
}

export interface CreateEventOptions {
  /**
   * When the request must have ended, on the `performance.now()` clock (monotonic: it runs on
   * while the process is frozen). The worker passes the end of its per-email lease minus a
   * margin. Checked synchronously just before the request starts: once it has passed, nothing is
   * sent and the outcome is retryable (`deadline passed before sending`); otherwise the request's
   * timeout is cut to end by it.
   */
  deadline?: number;
}

export interface KlaviyoClient {
  /** Never rejects: every answer and every failure becomes a {@link KlaviyoOutcome}. */
  createEvent(
    input: KlaviyoEventInput,
    options?: CreateEventOptions,
  ): Promise<KlaviyoOutcome & { durationMs: number }>;
  /**
   * Bulk Create Events (`POST /api/event-bulk-create-jobs`): up to {@link BULK_MAX_EVENTS}
   * events in one request, same contract as createEvent. `delivered` (202) means only that
   * Klaviyo queued the job: there is no status to poll, so validate each input first
   * ({@link validateEventInput}). A batch Klaviyo would refuse whole (too many events, a repeated
   * unique_id for one profile and metric) is `permanent` without a request. The caller keeps the
   * body under {@link BULK_MAX_BYTES} ({@link bulkEventBytes}).
   */
  createEventsBulk(
    inputs: readonly KlaviyoEventInput[],
    options?: CreateEventOptions,
  ): Promise<KlaviyoOutcome & { durationMs: number }>;
  /**
   * Whether a profile with this email exists (Get Profiles filtered by email; the key needs
   * `profiles:read`). Never rejects: failures are outcomes, as for createEvent.
   */
  lookupProfile(email: string): Promise<ProfileLookupOutcome & { durationMs: number }>;
}

const DEFAULT_TIMEOUT_MS = 10_000;
const JSON_API = 'application/vnd.api+json';

export function createKlaviyoClient(options: KlaviyoClientOptions): KlaviyoClient {
  const baseUrl = options.baseUrl.replace(/\/+$/, '');
  const eventsUrl = `${baseUrl}/api/events`;
  const bulkUrl = `${baseUrl}/api/event-bulk-create-jobs`;
  const timeoutMs = options.timeoutMs ?? DEFAULT_TIMEOUT_MS;
  const headers = {
    authorization: `Klaviyo-API-Key ${options.apiKey}`,
    revision: options.revision ?? DEFAULT_KLAVIYO_REVISION,
    accept: JSON_API,
    'content-type': JSON_API,
  };

  /**
   * One POST, classified. `body` is built inside the guard: a batch Klaviyo would refuse whole
   * (BulkBodyError) becomes a permanent 400 outcome without a request: the method never rejects.
   */
  async function post(
    url: string,
    body: () => string,
    options: CreateEventOptions,
  ): Promise<KlaviyoOutcome & { durationMs: number }> {
    const started = performance.now();
    let outcome: KlaviyoOutcome;
    const left = options.deadline === undefined ? timeoutMs : options.deadline - performance.now();
    if (left <= 0) {
      return { kind: 'retryable', reason: 'deadline passed before sending', notSent: true, durationMs: 0 };
    }
    let text: string;
    try {
      text = body();
    } catch (err) {
      // The 400 Klaviyo would answer, decided here.
      const reason = err instanceof BulkBodyError ? err.message : String(err);
      return { kind: 'permanent', status: 400, reason: `not sent: ${reason}`, durationMs: 0 };
    }
    try {
      // Not fetch: the request must leave only after a last synchronous look at the deadline
      // (see sendRequest). No redirects: a redirected POST would lose the event.
      const answer = await sendRequest(url, {
        method: 'POST',
        headers,
        body: text,
        timeoutMs: Math.min(timeoutMs, Math.ceil(left)),
        ...(options.deadline === undefined ? {} : { deadline: options.deadline }),
      });
      outcome = classifyKlaviyoResponse({
        status: answer.status,
        headers: answer.headers,
        body: parseJson(answer.text),
      });
    } catch (err) {
      outcome =
        err instanceof DeadlinePassedError
          ? { kind: 'retryable', reason: 'deadline passed before sending', notSent: true }
          : classifyKlaviyoFailure(err);
    }
    return { ...outcome, durationMs: performance.now() - started };
  }

  return {
    createEvent(input, options = {}) {
      return post(eventsUrl, () => JSON.stringify(buildCreateEventBody(input)), options);
    },

    createEventsBulk(inputs, options = {}) {
      return post(bulkUrl, () => JSON.stringify(buildBulkCreateEventsBody(inputs)), options);
    },

    async lookupProfile(email) {
      const started = performance.now();
      let outcome: ProfileLookupOutcome;
      try {
        const response = await fetch(buildProfileLookupUrl(baseUrl, email), {
          method: 'GET',
          headers: { authorization: headers.authorization, revision: headers.revision, accept: JSON_API },
          redirect: 'manual',
          signal: AbortSignal.timeout(timeoutMs),
        });
        const text = await response.text();
        outcome = classifyProfileLookup({
          status: response.status,
          headers: response.headers,
          body: parseJson(text),
        });
      } catch (err) {
        // A failed request never says "delivered"; narrow the type for the compiler.
        const failure = classifyKlaviyoFailure(err);
        outcome = failure.kind === 'delivered' ? { kind: 'retryable', reason: 'no answer' } : failure;
      }
      return { ...outcome, durationMs: performance.now() - started };
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
