import { hashEmail, normalizeEmails } from '@gk/domain';
import { bulkJob, CustomerChangeJobData, type DeliveryJobData, deliveryJob } from '@gk/queue';
import type { Logger } from '@gk/runtime';
import { type Job, type Queue, UnrecoverableError } from 'bullmq';
import type { WorkerMetrics } from '../metrics.js';
import type { ConversationState } from '../state/conversations.js';
import type { CustomerCache } from '../state/customer-cache.js';

export type CustomerChangeResult = {
  outcome: 'invalidated';
  customerIds: string[];
  entriesDropped: number;
  /** A merge that named both conversations: the source's addresses now belong to the destination. */
  conversationsJoined?: { inherited: number; closed: number };
};

export interface CustomerChangesDeps {
  customerCache: CustomerCache;
  conversations: ConversationState;
  deliveries: Queue<DeliveryJobData>;
  /** The key of the email pseudonyms (delivery job ids, logs): see PseudonymKey. */
  pseudonymKey: () => Promise<string>;
  logger: Logger;
  metrics: WorkerMetrics;
}

/**
 * A Gladly customer changed (profile updated or deleted, two customers merged): drop what the
 * cache holds for the customers named, so the next transition looks them up again. Runs even
 * with the cache off, so entries left from when it was on never outlive a change.
 *
 * A merge that names the source and destination conversations joins them: the destination
 * inherits the addresses the source opened, so closing it closes those too. This queue runs
 * apart from the transitions, so the destination may be closed already: then its close is sent
 * to the inherited addresses now (same job ids as a fan-out would give: never twice).
 */
export function createCustomerChangesProcessor(deps: CustomerChangesDeps) {
  return async function processCustomerChange(
    job: Job<CustomerChangeJobData>,
  ): Promise<CustomerChangeResult> {
    const parsed = CustomerChangeJobData.safeParse(job.data);
    if (!parsed.success)
      throw new UnrecoverableError(`invalid customer change payload: ${parsed.error.message}`);
    const change = parsed.data;
    const log = deps.logger.child({ eventId: change.eventId, jobId: job.id, type: change.gladlyType });

    let joined: CustomerChangeResult['conversationsJoined'];
    const source = change.merge?.sourceConversationId;
    const destination = change.merge?.destinationConversationId;
    if (source && destination && source !== destination) {
      const { inherited, closedBy } = await deps.conversations.merge(source, destination);
      const addresses = normalizeEmails(inherited).emails;
      const pseudonymKey = await deps.pseudonymKey();
      let closed = 0;
      if (closedBy && addresses.length > 0) {
        const jobs = addresses.map((email) =>
          bulkJob(deliveryJob(closedBy.transition, email, closedBy.resolvedCustomerId, pseudonymKey)),
        );
        await deps.deliveries.addBulk(jobs);
        closed = jobs.length;
      }
      joined = { inherited: addresses.length, closed };
      log.info(
        {
          sourceConversationId: source,
          destinationConversationId: destination,
          inherited: addresses.map((e) => hashEmail(e, pseudonymKey)),
          ...(closedBy ? { closedBy: closedBy.transition.eventId } : {}),
        },
        closed > 0
          ? 'conversations merged after the destination closed; its close sent to the inherited addresses'
          : 'conversations merged; the destination inherits the addresses the source opened',
      );
    }

    const entriesDropped = await deps.customerCache.invalidate(change.customerIds);
    deps.metrics.customerCache.invalidations.inc(change.customerIds.length);
    log.info({ customerIds: change.customerIds, entriesDropped }, 'customer changed; cached lookups dropped');
    return {
      outcome: 'invalidated',
      customerIds: change.customerIds,
      entriesDropped,
      ...(joined ? { conversationsJoined: joined } : {}),
    };
  };
}
