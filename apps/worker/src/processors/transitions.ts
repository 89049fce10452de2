import { emailKey, hashEmail, normalizeEmails } from '@gk/domain';
import type { CustomerEmailsResult, GladlyClient } from '@gk/gladly';
import {
  bulkJob,
  type DeliveryJobData,
  deliveryJob,
  legacyDeliveryJobId,
  TransitionJobData,
} from '@gk/queue';
import type { Logger } from '@gk/runtime';
import { type Job, type Queue, UnrecoverableError } from 'bullmq';
import { statusClass, type WorkerMetrics } from '../metrics.js';
import type { ConversationState } from '../state/conversations.js';
import type { CredentialsStatus } from '../state/credentials.js';
import type { CustomerCache } from '../state/customer-cache.js';
import { createUpstreamGuard, type UpstreamPolicy } from './upstream-guard.js';

export type TransitionResult =
  | {
      outcome: 'fanned_out';
      customerId: string;
      deliveries: number;
      invalidEmails: number;
      /** A close: addresses its conversation opened that the customer no longer has. */
      remembered?: number;
    }
  | { outcome: 'customer_not_found'; customerId: string }
  | { outcome: 'no_email'; customerId: string; invalidEmails: number };

/** What the transitions processor is configured with (not the app's config: no credentials here). */
export interface TransitionsSettings {
  upstream: UpstreamPolicy;
}

export interface TransitionsDeps {
  settings: TransitionsSettings;
  gladly: GladlyClient;
  /** Lookups kept in Redis for GLADLY_CUSTOMER_CACHE_TTL_SECONDS (off at 0). */
  customerCache: CustomerCache;
  /** Which addresses each conversation opened: a close reaches them too. */
  conversations: ConversationState;
  deliveries: Queue<DeliveryJobData>;
  logger: Logger;
  metrics: WorkerMetrics;
  credentials: CredentialsStatus;
  /** Pauses the whole transitions queue, across processes, without spending an attempt. */
  pauseQueue: (ms: number) => Promise<void>;
  /** The key of the email pseudonyms (delivery job ids, logs): see PseudonymKey. */
  pseudonymKey: () => Promise<string>;
}

/**
 * Looks up the customer's emails (in the cache, else in Gladly) and fans out one delivery per
 * distinct valid email. A start (created, reopened) is remembered under its conversation with
 * the addresses it reached; a close goes to the current addresses and every address its
 * conversation opened (or inherited through a merge), so an address removed mid-conversation,
 * or left behind by a merge, is closed too. Both are recorded before the deliveries are added.
 * Delivery job ids are derived from (event id, email) and added in one pipeline (BullMQ's addBulk:
 * not atomic), so a retried transition, even one that crashed halfway through the fan-out, adds
 * only the deliveries still missing and never a second one.
 */
export function createTransitionsProcessor(deps: TransitionsDeps) {
  const { settings } = deps;
  const guard = createUpstreamGuard({
    upstream: 'gladly',
    credentialName: 'the API credentials',
    pausedWork: 'lookups',
    policy: settings.upstream,
    credentials: deps.credentials,
    metrics: deps.metrics,
    // A lookup never fails permanently (an answer the client does not understand is retried), so
    // the transitions counter has no such outcome.
    count: (outcome) =>
      deps.metrics.transitions.inc({ outcome: outcome === 'failed_permanent' ? 'retried' : outcome }),
    pauseQueue: deps.pauseQueue,
  });

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
  /** The emails whose delivery of `eventId` exists under its pre-keyed-pseudonym job id. */
  async function legacyDeliveries(eventId: string, emails: string[]): Promise<Set<string>> {
    const found = await Promise.all(
      emails.map(async (email) =>
        (await deps.deliveries.getJobState(legacyDeliveryJobId(eventId, email))) === 'unknown' ? null : email,
      ),
    );
    return new Set(found.filter((e): e is string => e !== null));
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
      const outcome = await deps.gladly.getCustomerEmails(t.customerId);
      deps.metrics.upstreamDuration.observe(
        {
          upstream: 'gladly',
          status_class:
            outcome.kind === 'answered'
              ? outcome.customer.status === 'found'
                ? '2xx'
                : '4xx'
              : statusClass(outcome.status),
        },
        outcome.durationMs / 1000,
      );
      if (outcome.kind !== 'answered') return guard(outcome, log, { name: 'lookup' });
      lookup = outcome.customer;
      deps.credentials.accept();
      await cacheLookup(t.customerId, lookup, cached.ticket, log);
    }

    const resolvedCustomerId = lookup.customerId;
    let current: string[] = [];
    let invalid: string[] = [];
    const pseudonymKey = await deps.pseudonymKey();
    if (lookup.status === 'found') {
      ({ emails: current, invalid } = normalizeEmails(lookup.emails));
      if (invalid.length > 0) {
        deps.metrics.invalidEmails.inc(invalid.length);
        log.warn(
          { invalidEmails: invalid.map((e) => hashEmail(e, pseudonymKey)) },
          'skipped invalid email addresses',
        );
      }
    }
    // Recorded before the deliveries exist: a close fanned out after this finds these addresses.
    let remembered: string[] = [];
    if (current.length > 0 || t.kind === 'closed') {
      const known = await deps.conversations.recordFanOut(t, current, resolvedCustomerId);
      if (t.kind === 'closed') {
        const have = new Set(current.map(emailKey));
        remembered = normalizeEmails(known).emails.filter((e) => !have.has(emailKey(e)));
      }
    }
    const emails = [...current, ...remembered];

    if (emails.length === 0 && lookup.status === 'not_found') {
      deps.metrics.transitions.inc({ outcome: 'customer_not_found' });
      log.warn('customer not found in Gladly; nothing to send');
      return { outcome: 'customer_not_found', customerId: lookup.customerId };
    }
    if (emails.length === 0) {
      deps.metrics.transitions.inc({ outcome: 'no_email' });
      log.warn({ resolvedCustomerId }, 'customer has no valid email; nothing to send');
      return { outcome: 'no_email', customerId: resolvedCustomerId, invalidEmails: invalid.length };
    }

    // A fan-out run before (killed halfway, or by a version before keyed pseudonyms) may have
    // added some deliveries under the unkeyed ids that version used: those are not added again.
    const legacy = (job.attemptsStarted ?? 0) > 1 ? await legacyDeliveries(t.eventId, emails) : new Set();
    const jobs = emails
      .filter((email) => !legacy.has(email))
      .map((email) => bulkJob(deliveryJob(t, email, resolvedCustomerId, pseudonymKey)));
    if (jobs.length > 0) await deps.deliveries.addBulk(jobs);
    deps.metrics.transitions.inc({ outcome: 'fanned_out' });
    log.info(
      {
        resolvedCustomerId,
        deliveries: jobs.map((j) => j.opts.jobId),
        mergeHops: lookup.status === 'found' ? lookup.hops : undefined,
        cache: cached.hit ? 'hit' : deps.customerCache.enabled ? 'miss' : 'off',
        ...(remembered.length > 0 ? { remembered: remembered.length } : {}),
        ...(lookup.status === 'not_found' ? { customerNotFound: true } : {}),
      },
      'transition fanned out',
    );
    return {
      outcome: 'fanned_out',
      customerId: resolvedCustomerId,
      deliveries: jobs.length,
      invalidEmails: invalid.length,
      ...(remembered.length > 0 ? { remembered: remembered.length } : {}),
    };
  };
}
