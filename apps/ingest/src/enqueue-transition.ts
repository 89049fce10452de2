import type { Transition } from '@gk/domain';
import { transitionJobId } from '@gk/queue';
import type { Queue } from 'bullmq';

export interface EnqueueResult {
  outcome: 'accepted' | 'duplicate';
  jobId: string;
}

/**
 * Stores a transition as a `transitions` job; resolves only once Redis has acknowledged it.
 *
 * The job id is derived from Gladly's event id, so a redelivery never makes a second job: BullMQ's
 * add script sees the key exists and stores nothing. It still answers with the job id and hands
 * back a Job built locally from our arguments, so `add` alone cannot tell new from duplicate.
 * The stored job keeps the `timestamp` of the add that created it, so we read it back: our own
 * timestamp means this call created it, another one means it was already there. Unlike an
 * existence check before the add, this has no window in which two concurrent deliveries both see
 * "absent"; only two adds in the same millisecond would both say accepted, and either way there
 * is exactly one job.
 */
export async function enqueueTransition(
  queue: Queue<Transition>,
  transition: Transition,
): Promise<EnqueueResult> {
  const jobId = transitionJobId(transition.eventId);
  const added = await queue.add(transition.gladlyType, transition, { jobId });
  const stored = await queue.getJob(jobId);
  // Gone already would mean it was created and removed in between: ours, if anyone's.
  const outcome = stored && stored.timestamp !== added.timestamp ? 'duplicate' : 'accepted';
  return { outcome, jobId };
}
