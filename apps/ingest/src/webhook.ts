import { readGladlyEvent, redactEmails } from '@gk/domain';
import { customerChangeJob, transitionJob } from '@gk/queue';
import type { Logger } from '@gk/runtime';
import type { Request, RequestHandler } from 'express';
import { type Authenticator, basicChallenge, WEBHOOK_REALM } from './auth.js';
import { createJsonBodyReader } from './json-body.js';
import type { IngestMetrics, WebhookOutcome } from './metrics.js';
import { fieldErrors, type Problem, problemFromError, problems, sendProblem } from './problem.js';
import type { JobStore } from './store/job-store.js';

/** Gladly's webhook bodies are a few hundred bytes; 64 KiB is the contract's ceiling. */
export const WEBHOOK_BODY_LIMIT_BYTES = 64 * 1024;

/** Seconds a client should wait before retrying after a 503. */
export const RETRY_AFTER_SECONDS = 10;

const JSON_TYPES = ['application/json', 'application/*+json'];

/** What the request log line says about a webhook (see request-log.ts). */
export interface WebhookLogFields {
  eventId?: string;
  type: string;
  outcome: WebhookOutcome;
  jobId?: string;
}

/** The 200 answers: small JSON saying what became of the event. */
export type WebhookAnswer =
  | { status: 'accepted' | 'duplicate' | 'spooled'; id: string; jobId: string }
  | { status: 'ignored'; id: string; type: string }
  | { status: 'pong'; id: string };

export interface WebhookDeps {
  authenticate: Authenticator;
  metrics: IngestMetrics;
  /** The request log's logger for this request (its lines carry the request's id). */
  logFor: (req: Request) => Logger;
  now: () => Date;
  /**
   * Stores each job in Redis, or in the local spool when Redis does not (store/job-store.ts).
   * Customer webhooks (profile updated, merged) go to their own queue: the worker drops its cached
   * lookups for them.
   */
  store: JobStore;
}

const readJsonBody = createJsonBodyReader(WEBHOOK_BODY_LIMIT_BYTES);

/**
 * `POST /webhooks/gladly`. Checks run cheapest and least revealing first: credentials (before
 * reading anything), media type (before reading the body), size and JSON syntax (while
 * reading), then the payload. Malformed input always ends in a 4xx, never a 5xx.
 */
export function createWebhookHandler(deps: WebhookDeps): RequestHandler {
  return async (req, res) => {
    const record = (fields: WebhookLogFields) => {
      deps.metrics.webhooksReceived.inc({ type: fields.type, outcome: fields.outcome });
      res.locals.webhook = fields;
    };
    const reply = (fields: WebhookLogFields, body: WebhookAnswer) => {
      record(fields);
      res.status(200).json(body);
    };
    const reject = (fields: WebhookLogFields, problem: Problem, headers: Record<string, string> = {}) => {
      record(fields);
      sendProblem(res, problem, headers);
    };

    if (!deps.authenticate(req.headers)) {
      return reject({ type: 'unknown', outcome: 'rejected_auth' }, problems.unauthorized(), {
        'WWW-Authenticate': basicChallenge(WEBHOOK_REALM),
      });
    }
    if (!req.is(JSON_TYPES)) {
      return reject({ type: 'unknown', outcome: 'rejected_media_type' }, problems.unsupportedMediaType());
    }
    try {
      await readJsonBody(req, res);
    } catch (err) {
      const problem = problemFromError(err);
      const outcome: WebhookOutcome =
        problem.status === 413
          ? 'rejected_too_large'
          : problem.status === 415
            ? 'rejected_media_type'
            : problem.status < 500
              ? 'rejected_invalid'
              : 'error';
      return reject({ type: 'unknown', outcome }, problem);
    }

    const reading = readGladlyEvent(req.body, deps.now());
    if (reading.kind === 'malformed') {
      return reject(
        { type: typeLabelOf(reading.rawType), outcome: 'rejected_invalid' },
        problems.invalidPayload(fieldErrors(reading.error)),
      );
    }
    const { id, type } = reading;
    // The log names the event by its id; Gladly's ids are opaque tokens, but the schema takes
    // any string, and an address must never reach a log line.
    const loggedId = id.includes('@') ? redactEmails(id) : id;
    const label = typeLabelOf(type);

    if (reading.kind === 'ping') {
      // Gladly sends PING when a webhook is enabled or its URL changes, and keeps the webhook off unless it gets a 200.
      return reply({ eventId: loggedId, type: label, outcome: 'pong' }, { status: 'pong', id });
    }
    if (reading.kind === 'ignored') {
      // Acknowledged so Gladly never deactivates the webhook over events the bridge does not use.
      return reply({ eventId: loggedId, type: label, outcome: 'ignored' }, { status: 'ignored', id, type });
    }
    if (reading.kind === 'invalid') {
      return reject(
        { eventId: loggedId, type: label, outcome: 'rejected_invalid' },
        problems.invalidPayload(fieldErrors(reading.error)),
      );
    }

    try {
      const result = await deps.store.store(
        reading.kind === 'transition' ? transitionJob(reading.transition) : customerChangeJob(reading.change),
      );
      return reply(
        { eventId: loggedId, type: label, outcome: result.outcome, jobId: result.jobId },
        {
          status: result.outcome,
          id,
          jobId: result.jobId,
        },
      );
    } catch (err) {
      const what = reading.kind === 'transition' ? 'transition' : 'customer change';
      deps
        .logFor(req)
        .warn({ err: errorSummary(err), eventId: loggedId }, `could not store ${what}, answering 503`);
      return reject({ eventId: loggedId, type: label, outcome: 'unavailable' }, problems.unavailable(), {
        'Retry-After': String(RETRY_AFTER_SECONDS),
      });
    }
  };
}

/** Gladly's types look like `CONVERSATION/CREATED`; anything else counts as `other` (bounded metric labels). */
function typeLabelOf(type: unknown): string {
  if (typeof type !== 'string') return 'unknown';
  return /^[A-Z][A-Z_]{0,40}(\/[A-Z_]{1,40})?$/.test(type) ? type : 'other';
}

/** Enough to diagnose a Redis failure, without stack or payload. */
function errorSummary(err: unknown): { message: string; code?: string } {
  if (!(err instanceof Error)) return { message: String(err) };
  const code = (err as { code?: unknown }).code;
  return typeof code === 'string' ? { message: err.message, code } : { message: err.message };
}
