import { CustomerChangeJobData } from '@gk/queue';
import type { Logger } from '@gk/runtime';
import { type Job, UnrecoverableError } from 'bullmq';
import type { WorkerMetrics } from '../metrics.js';
import type { CustomerCache } from '../state/customer-cache.js';

export type CustomerChangeResult = { outcome: 'invalidated'; customerIds: string[]; entriesDropped: number };

export interface CustomerChangesDeps {
  customerCache: CustomerCache;
  logger: Logger;
  metrics: WorkerMetrics;
}

/**
 * A Gladly customer changed (profile updated or deleted, two customers merged): drop what the
 * cache holds for the customers named, so the next transition looks them up again. Runs even
 * with the cache off, so entries left from when it was on never outlive a change.
 */
export function createCustomerChangesProcessor(deps: CustomerChangesDeps) {
  return async function processCustomerChange(
    job: Job<CustomerChangeJobData>,
  ): Promise<CustomerChangeResult> {
    const parsed = CustomerChangeJobData.safeParse(job.data);
    if (!parsed.success)
      throw new UnrecoverableError(`invalid customer change payload: ${parsed.error.message}`);
    const change = parsed.data;
    const entriesDropped = await deps.customerCache.invalidate(change.customerIds);
    deps.metrics.customerCache.invalidations.inc(change.customerIds.length);
    deps.logger.info(
      {
        eventId: change.eventId,
        jobId: job.id,
        type: change.gladlyType,
        customerIds: change.customerIds,
        entriesDropped,
      },
      'customer changed; cached lookups dropped',
    );
    return { outcome: 'invalidated', customerIds: change.customerIds, entriesDropped };
  };
}
