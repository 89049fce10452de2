import type { CustomerChange } from '@gk/domain';
import { customerChangeJobId } from '@gk/queue';
import type { Queue } from 'bullmq';
import type { EnqueueResult } from './enqueue-transition.js';

/**
 * Stores a customer change (it makes the worker drop cached customer lookups) as a
 * `customer-changes` job; resolves once Redis has acknowledged it. The job id derives from
 * Gladly's event id, so a redelivery stores nothing new. These are rare (a profile edit, a merge),
 * so the plain check-then-add is enough to tell new from duplicate; a race between two deliveries
 * of one event can only make both answer "accepted", never store two jobs.
 */
export async function enqueueCustomerChange(
  queue: Queue<CustomerChange>,
  change: CustomerChange,
): Promise<EnqueueResult> {
  const jobId = customerChangeJobId(change.eventId);
  const existing = await queue.getJob(jobId);
  if (existing) return { outcome: 'duplicate', jobId };
  await queue.add(change.gladlyType, change, { jobId });
  return { outcome: 'accepted', jobId };
}
