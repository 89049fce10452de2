import type { Transition } from '@gk/domain';
import { transitionJobId } from '@gk/queue';
import { Job, type Queue } from 'bullmq';

export interface EnqueueResult {
  outcome: 'accepted' | 'duplicate';
  jobId: string;
}

/** The ioredis client behind BullMQ's adapter has every command; the adapter type declares only its own. */
type WithExists = { exists(key: string): Promise<number> };

/**
 * Stores a transition as a `transitions` job; resolves only once Redis has acknowledged it.
 *
 * The job id is derived from Gladly's event id, so a redelivery never makes a second job: BullMQ's
 * add script sees the key exists and stores nothing. To tell new from duplicate, an EXISTS on the
 * job's key is written just before the add on the same connection: Redis answers a connection's
 * commands in order, so both travel in one round trip and the EXISTS sees the state right before
 * this add. Within one ingest, concurrent deliveries of one event are told apart exactly (one
 * accepted, the rest duplicate); two ingest replicas adding the same event within the same
 * microseconds could both answer accepted, and either way Redis holds exactly one job.
 * (A MULTI would close that last window but costs more CPU per webhook than the rest of the
 * store: ioredis builds a Pipeline object with every BullMQ script on it for each MULTI.)
 */
export async function enqueueTransition(
  queue: Queue<Transition>,
  transition: Transition,
): Promise<EnqueueResult> {
  return addJobOnce(queue, transition.gladlyType, transition, transitionJobId(transition.eventId));
}

/**
 * Adds a job under a given id to any queue with the queue's default options, telling new from
 * duplicate as described above. The spool's relay uses it too, so a relayed entry is stored exactly
 * as the webhook would have stored it.
 */
export async function addJobOnce<T>(
  queue: Queue<T>,
  name: string,
  data: T,
  jobId: string,
): Promise<EnqueueResult> {
  const client = await queue.getBackend().client;
  // What queue.add does, minus the Job bookkeeping we do not need: the queue's defaults, our id.
  const job = new Job<T>(queue, name, data, { ...queue.defaultJobOptions, jobId }, jobId);
  const existed = (client as unknown as WithExists).exists(queue.toKey(jobId));
  const added = job.addJob(client);
  const [count] = await Promise.all([existed, added]);
  return { outcome: count === 1 ? 'duplicate' : 'accepted', jobId };
}
