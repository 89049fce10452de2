import { hashEmail, normalizeEmails, redactEmails } from '@gk/domain';
import { type CustomerEmailsResult, type GladlyClient, GladlyError } from '@gk/gladly';
import { bulkJob, type DeliveryJobData, deliveryJob, TransitionJobData } from '@gk/queue';
import type { Logger } from '@gk/runtime';
import { type Job, type Queue, RateLimitError, UnrecoverableError } from 'bullmq';
import type { CredentialsStatus } from './credentials.js';
import type { CustomerCache } from './customer-cache.js';
import { statusClass, type WorkerMetrics } from './metrics.js';

export type TransitionResult =
  | { outcome: 'fanned_out'; customerId: string; deliveries: number; invalidEmails: number }
  | { outcome: 'customer_not_found'; customerId: string }
  | { outcome: 'no_email'; customerId: string; invalidEmails: number };

export interface TransitionsDeps {
  gladly: GladlyClient;
  /** Lookups kept in Redis for GLADLY_CUSTOMER_CACHE_TTL_SECONDS (off at 0). */
  customerCache: CustomerCache;
  deliveries: Queue<DeliveryJobData>;
  logger: Logger;
  metrics: WorkerMetrics;
  credentials: CredentialsStatus;
  /** Pauses the whole transitions queue, across processes, without spending an attempt. */
  pauseQueue: (ms: number) => Promise<void>;
  emailHashKey: string;
  /** How long to pause while Gladly rejects our credentials before trying again. */
  authPauseMs?: number;
}

/**
 * Looks up the customer's emails (in the cache, else in Gladly) and fans out one delivery per
 * distinct valid email.
 * Delivery job ids are derived from (event id, email) and added in one pipeline (BullMQ's addBulk:
 * not atomic), so a retried transition, even one that crashed halfway through the fan-out, adds
 * only the deliveries still missing and never a second one.
 */
export function createTransitionsProcessor(deps: TransitionsDeps) {
  const authPauseMs = deps.authPauseMs ?? 30_000;

  /** The cache only saves lookups: a failure to store is logged, never fails the transition. */
  async function cacheLookup(customerId: string, lookup: CustomerEmailsResult, ticket: string, log: Logger) {
    if (!deps.customerCache.enabled) return;
    try {
      const stored = await deps.customerCache.write(customerId, lookup, ticket);
      if (!stored) {
        deps.metrics.customerCache.staleWritesSkipped.inc();
        log.debug('customer changed during the lookup; result not cached');
      }
    } catch (err) {
      log.warn({ err: (err as Error).message }, 'could not cache the customer lookup');
    }
  }
  return async function processTransition(job: Job<TransitionJobData>): Promise<TransitionResult> {
    const parsed = TransitionJobData.safeParse(job.data);
    if (!parsed.success) throw new UnrecoverableError(`invalid transition payload: ${parsed.error.message}`);
    const t = parsed.data;
    const log = deps.logger.child({
      eventId: t.eventId,
      jobId: job.id,
      customerId: t.customerId,
      attempt: job.attemptsMade + 1,
    });

    const cached = await deps.customerCache.read(t.customerId);
    let lookup: CustomerEmailsResult;
    if (cached.hit) {
      deps.metrics.customerCache.hits.inc();
      lookup = cached.value;
    } else {
      if (deps.customerCache.enabled) deps.metrics.customerCache.misses.inc();
      const started = performance.now();
      try {
        lookup = await deps.gladly.getCustomerEmails(t.customerId);
        deps.metrics.upstreamDuration.observe(
          { upstream: 'gladly', status_class: lookup.status === 'found' ? '2xx' : '4xx' },
          (performance.now() - started) / 1000,
        );
      } catch (err: unknown) {
        const status = err instanceof GladlyError ? err.status : undefined;
        deps.metrics.upstreamDuration.observe(
          { upstream: 'gladly', status_class: statusClass(status) },
          (performance.now() - started) / 1000,
        );
        if (err instanceof GladlyError && err.kind === 'rate_limited') {
          deps.metrics.throttled.inc({ upstream: 'gladly' });
          deps.metrics.transitions.inc({ outcome: 'throttled' });
          const ms = err.retryAfterMs ?? 1_000;
          log.warn({ retryAfterMs: ms }, 'gladly rate limit hit; pausing lookups');
          await deps.pauseQueue(ms);
          throw new RateLimitError();
        }
        if (err instanceof GladlyError && err.kind === 'auth') {
          deps.credentials.reject();
          deps.metrics.transitions.inc({ outcome: 'credentials_rejected' });
          log.error({ status }, 'gladly rejected the API credentials; pausing lookups and retrying slowly');
          await deps.pauseQueue(authPauseMs);
          throw new RateLimitError();
        }
        deps.metrics.transitions.inc({ outcome: 'retried' });
        log.warn({ status, err: redactEmails((err as Error).message) }, 'gladly lookup failed; will retry');
        throw err;
      }
      deps.credentials.accept();
      await cacheLookup(t.customerId, lookup, cached.ticket, log);
    }

    if (lookup.status === 'not_found') {
      deps.metrics.transitions.inc({ outcome: 'customer_not_found' });
      log.warn('customer not found in Gladly; nothing to send');
      return { outcome: 'customer_not_found', customerId: lookup.customerId };
    }

    const { emails, invalid } = normalizeEmails(lookup.emails);
    if (invalid.length > 0) {
      deps.metrics.invalidEmails.inc(invalid.length);
      log.warn(
        { invalidEmails: invalid.map((e) => hashEmail(e, deps.emailHashKey)) },
        'skipped invalid email addresses',
      );
    }
    if (emails.length === 0) {
      deps.metrics.transitions.inc({ outcome: 'no_email' });
      log.warn({ resolvedCustomerId: lookup.customerId }, 'customer has no valid email; nothing to send');
      return { outcome: 'no_email', customerId: lookup.customerId, invalidEmails: invalid.length };
    }

    const jobs = emails.map((email) => bulkJob(deliveryJob(t, email, lookup.customerId)));
    await deps.deliveries.addBulk(jobs);
    deps.metrics.transitions.inc({ outcome: 'fanned_out' });
    log.info(
      {
        resolvedCustomerId: lookup.customerId,
        deliveries: jobs.map((j) => j.opts.jobId),
        mergeHops: lookup.hops,
        cache: cached.hit ? 'hit' : deps.customerCache.enabled ? 'miss' : 'off',
      },
      'transition fanned out',
    );
    return {
      outcome: 'fanned_out',
      customerId: lookup.customerId,
      deliveries: jobs.length,
      invalidEmails: invalid.length,
    };
  };
}
