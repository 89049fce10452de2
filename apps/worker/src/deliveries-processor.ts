import { hashEmail, isStale, redactEmails } from '@gk/domain';
import type { KlaviyoClient, KlaviyoOutcome } from '@gk/klaviyo';
import { DeliveryJobData, transitionJobId } from '@gk/queue';
import type { Logger } from '@gk/runtime';
import { DelayedError, type Job, RateLimitError, UnrecoverableError } from 'bullmq';
import type { WorkerConfig } from './config.js';
import type { CredentialsStatus } from './credentials.js';
import type { EmailState } from './email-state.js';
import { statusClass, type WorkerMetrics } from './metrics.js';
import type { KlaviyoProfileCheck } from './profile-check.js';

export type DeliveryResult =
  | { outcome: 'delivered' | 'delivered_backfill'; status: number }
  /** KLAVIYO_CREATE_PROFILES=false and Klaviyo has no profile with this email. */
  | { outcome: 'skipped_no_profile' };

type KlaviyoFailure = Exclude<KlaviyoOutcome, { kind: 'delivered' }>;

export interface DeliveriesDeps {
  klaviyo: KlaviyoClient;
  emailState: EmailState;
  logger: Logger;
  metrics: WorkerMetrics;
  credentials: CredentialsStatus;
  event: WorkerConfig['klaviyo'];
  /** Pauses the whole deliveries queue, across processes, without spending an attempt. */
  pauseQueue: (ms: number) => Promise<void>;
  emailHashKey: string;
  authPauseMs?: number;
  /** How long a delivery waits before trying again for an email whose lease is taken. */
  leaseWaitMs?: () => number;
  /** Set when KLAVIYO_CREATE_PROFILES=false: only emails with a Klaviyo profile are sent. */
  profileCheck?: KlaviyoProfileCheck;
}

/**
 * Sends one Klaviyo event for one email. Per email, one delivery at a time (a Redis lease; the
 * other waits in the delayed set, spending no attempt), and a transition older than the newest
 * one applied is sent as backfill without profile properties, so it never flips the profile.
 */
export function createDeliveriesProcessor(deps: DeliveriesDeps) {
  const authPauseMs = deps.authPauseMs ?? 30_000;
  const leaseWaitMs = deps.leaseWaitMs ?? (() => 100 + Math.floor(Math.random() * 200));

  /**
   * What every Klaviyo answer other than success means, for Create Event and Get Profiles alike:
   * 429 pauses the queue for Retry-After and 401/403 pause it slowly, without spending an attempt;
   * 5xx and network errors retry with backoff; other 4xx fail the delivery permanently.
   */
  async function failOn(
    answer: KlaviyoFailure,
    log: Logger,
    fields: Record<string, unknown>,
    request: 'event' | 'profile lookup',
  ): Promise<never> {
    const on = request === 'event' ? '' : ' on the profile lookup';
    switch (answer.kind) {
      case 'rate_limited': {
        deps.metrics.throttled.inc({ upstream: 'klaviyo' });
        deps.metrics.deliveries.inc({ outcome: 'throttled' });
        log.warn(
          { ...fields, retryAfterMs: answer.retryAfterMs },
          `klaviyo rate limit hit${on}; pausing deliveries`,
        );
        await deps.pauseQueue(answer.retryAfterMs);
        throw new RateLimitError();
      }
      case 'auth': {
        deps.credentials.reject();
        deps.metrics.deliveries.inc({ outcome: 'credentials_rejected' });
        log.error(fields, `klaviyo rejected the API key${on}; pausing deliveries and retrying slowly`);
        await deps.pauseQueue(authPauseMs);
        throw new RateLimitError();
      }
      case 'retryable': {
        deps.metrics.deliveries.inc({ outcome: 'retried' });
        const reason = redactEmails(answer.reason);
        const failed = request === 'event' ? 'delivery' : 'profile lookup';
        log.warn({ ...fields, reason }, `klaviyo ${failed} failed; will retry with backoff`);
        throw new Error(`klaviyo: ${reason}`);
      }
      case 'permanent': {
        deps.metrics.deliveries.inc({ outcome: 'failed_permanent' });
        const reason = redactEmails(answer.reason);
        log.error({ ...fields, code: answer.code, reason }, `klaviyo refused the ${request} permanently`);
        throw new UnrecoverableError(`klaviyo ${answer.status}: ${reason}`);
      }
      default:
        throw new Error(`unexpected klaviyo outcome ${JSON.stringify(answer satisfies never)}`);
    }
  }
  return async function processDelivery(job: Job<DeliveryJobData>, token?: string): Promise<DeliveryResult> {
    const parsed = DeliveryJobData.safeParse(job.data);
    if (!parsed.success) throw new UnrecoverableError(`invalid delivery payload: ${parsed.error.message}`);
    const d = parsed.data;
    const holder = job.id ?? `${d.eventId}`;
    // Correlation ids: Gladly's event id and the transition job it came from tie this line to
    // the ingest's webhook line and the fan-out line; the email only ever as a keyed hash.
    const log = deps.logger.child({
      eventId: d.eventId,
      transitionJobId: transitionJobId(d.eventId),
      jobId: job.id,
      emailHash: hashEmail(d.email, deps.emailHashKey),
      attempt: job.attemptsMade + 1,
    });

    if (deps.profileCheck) {
      // Before the lease: an email Klaviyo does not know is skipped without holding it up.
      const check = await deps.profileCheck.check(d.email);
      if (check.kind === 'failed') {
        const { outcome } = check;
        await failOn(
          outcome,
          log,
          { status: outcome.status, durationMs: Math.round(outcome.durationMs) },
          'profile lookup',
        );
      } else {
        deps.metrics.profileChecks.inc({ source: check.source, result: check.kind });
        if (check.kind === 'absent') {
          deps.metrics.deliveries.inc({ outcome: 'skipped_no_profile' });
          log.info(
            { outcome: 'skipped_no_profile', source: check.source },
            'no Klaviyo profile has this email; not sent (KLAVIYO_CREATE_PROFILES=false)',
          );
          return { outcome: 'skipped_no_profile' };
        }
      }
    }

    // One Redis call takes the lease and reads the newest mark applied to this email.
    const lease = await deps.emailState.acquire(d.email, holder);
    if (!lease.acquired) {
      deps.metrics.deliveries.inc({ outcome: 'waited_for_lease' });
      log.debug('another delivery for this email is running; waiting');
      await job.moveToDelayed(Date.now() + leaseWaitMs(), token);
      throw new DelayedError();
    }
    let released = false;
    try {
      const stale = isStale({ occurredAt: d.occurredAt, eventId: d.eventId }, lease.newest);
      const value = d.kind === 'started';
      const answer = await deps.klaviyo.createEvent({
        email: d.email,
        metricName: value ? deps.event.metricStarted : deps.event.metricClosed,
        propertyName: deps.event.profileProperty,
        value,
        uniqueId: d.eventId,
        time: d.occurredAt,
        backfill: stale,
        ...(deps.event.includeConversationId ? { conversationId: d.conversationId } : {}),
      });
      deps.metrics.upstreamDuration.observe(
        { upstream: 'klaviyo', status_class: statusClass(answer.status) },
        answer.durationMs / 1000,
      );
      const fields = { status: answer.status, durationMs: Math.round(answer.durationMs), backfill: stale };

      switch (answer.kind) {
        case 'delivered': {
          deps.credentials.accept();
          if (!stale) {
            // One Redis call stores the mark and lets go of the lease; its failure fails the job
            // (a retry is harmless: Klaviyo dedupes by unique_id).
            await deps.emailState.markAppliedAndRelease(d.email, holder, {
              occurredAt: d.occurredAt,
              eventId: d.eventId,
            });
            released = true;
          }
          const outcome = stale ? 'delivered_backfill' : 'delivered';
          deps.metrics.deliveries.inc({ outcome });
          deps.metrics.lag.observe(Math.max(0, Date.now() - Date.parse(d.occurredAt)) / 1000);
          log.info({ ...fields, outcome }, 'delivered to klaviyo');
          return { outcome, status: answer.status };
        }
        default:
          // Awaited here, inside the try: the lease is released only after the failure is handled,
          // and the rejection is never left without a handler while the finally block runs.
          return await failOn(answer, log, fields, 'event');
      }
    } finally {
      if (!released) await deps.emailState.release(d.email, holder).catch(() => {});
    }
  };
}
