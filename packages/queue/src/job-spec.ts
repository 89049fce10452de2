import type { Transition } from '@gk/domain';
import { Job, type JobsOptions } from 'bullmq';
import type { z } from 'zod';
import {
  CustomerChangeJobData,
  customerChangeJobId,
  customerChangeJobOptions,
  DeliveryJobData,
  deliveryJobId,
  deliveryJobOptions,
  TransitionJobData,
  transitionJobId,
  transitionJobOptions,
} from './jobs.js';
import { QueueName } from './names.js';
import { type BridgeQueues, queueByName } from './queues.js';

/**
 * One job on its whole way to Redis: which queue, under which name and deterministic id, with
 * which payload and options. The webhook, the backfill, the ingest's spool relay and the worker's
 * fan-out all build it here, so a job id is worked out in one place and every producer adds a
 * job the same way.
 */
export interface JobSpec<T = unknown> {
  queue: QueueName;
  name: string;
  jobId: string;
  data: T;
  /** The queue's default options (attempts, backoff, retention); the job id is added on add. */
  options: JobsOptions;
}

export function transitionJob(transition: Transition): JobSpec<TransitionJobData> {
  return {
    queue: QueueName.transitions,
    name: transition.gladlyType,
    jobId: transitionJobId(transition.eventId),
    data: transition,
    options: transitionJobOptions,
  };
}

export function customerChangeJob(change: CustomerChangeJobData): JobSpec<CustomerChangeJobData> {
  return {
    queue: QueueName.customerChanges,
    name: change.gladlyType,
    jobId: customerChangeJobId(change.eventId),
    data: change,
    options: customerChangeJobOptions,
  };
}

/**
 * One delivery of a transition to one email address (found under `resolvedCustomerId`); its id
 * carries the address's pseudonym under `pseudonymKey`.
 */
export function deliveryJob(
  transition: Transition,
  email: string,
  resolvedCustomerId: string,
  pseudonymKey: string,
): JobSpec<DeliveryJobData> {
  return {
    queue: QueueName.deliveries,
    name: 'deliver',
    jobId: deliveryJobId(transition.eventId, email, pseudonymKey),
    data: { ...transition, email, resolvedCustomerId },
    options: deliveryJobOptions,
  };
}

/** What BullMQ's `add`/`addBulk` take for a spec. */
export function bulkJob<T>(spec: JobSpec<T>): {
  name: string;
  data: T;
  opts: JobsOptions & { jobId: string };
} {
  return { name: spec.name, data: spec.data, opts: { ...spec.options, jobId: spec.jobId } };
}

const payloadSchemas: Record<QueueName, z.ZodType> = {
  [QueueName.transitions]: TransitionJobData,
  [QueueName.deliveries]: DeliveryJobData,
  [QueueName.customerChanges]: CustomerChangeJobData,
};
const defaultOptions: Record<QueueName, JobsOptions> = {
  [QueueName.transitions]: transitionJobOptions,
  [QueueName.deliveries]: deliveryJobOptions,
  [QueueName.customerChanges]: customerChangeJobOptions,
};

/** What is written down for a spec (the spool, its dead-letter file): the options are the queue's own. */
export type StoredJobSpec = Omit<JobSpec, 'options'>;

export function storedJobSpec(spec: JobSpec): StoredJobSpec {
  return { queue: spec.queue, name: spec.name, jobId: spec.jobId, data: spec.data };
}

export type JobSpecReading = { ok: true; spec: JobSpec } | { ok: false; reason: string };

/**
 * Reads a spec written down earlier (by this version or another): a queue this version knows,
 * a name, an id and a payload its schema accepts; the options are this version's defaults.
 * Anything else can never be stored as written, and says why (never the payload: it may hold
 * customer data).
 */
export function readJobSpec(raw: unknown): JobSpecReading {
  if (typeof raw !== 'object' || raw === null) return { ok: false, reason: 'not an object' };
  const { queue, name, jobId, data } = raw as Record<string, unknown>;
  const known = Object.values(QueueName).find((q) => q === queue);
  if (!known) return { ok: false, reason: `unknown queue ${JSON.stringify(String(queue)).slice(0, 60)}` };
  if (typeof name !== 'string' || name.length === 0) return { ok: false, reason: 'no job name' };
  if (typeof jobId !== 'string' || jobId.length === 0 || jobId.includes(':') || /^\d+$/.test(jobId)) {
    return { ok: false, reason: 'no valid job id' };
  }
  const payload = payloadSchemas[known].safeParse(data);
  if (!payload.success) {
    const fields = payload.error.issues.map((i) => i.path.join('.') || '(payload)').slice(0, 5);
    return { ok: false, reason: `payload does not match the ${known} schema (${fields.join(', ')})` };
  }
  return {
    ok: true,
    spec: { queue: known, name, jobId, data: payload.data, options: defaultOptions[known] },
  };
}

export interface AddResult {
  outcome: 'accepted' | 'duplicate';
  jobId: string;
}

/** The ioredis client behind BullMQ's adapter has every command; the adapter type declares only its own. */
type WithExists = { exists(key: string): Promise<number> };

/**
 * Adds a spec's job unless its id is there already; resolves once Redis has acknowledged it.
 *
 * The job id is deterministic, so a redelivery never makes a second job: BullMQ's add script sees
 * the key exists and stores nothing. To tell new from duplicate, an EXISTS on the job's key is
 * written just before the add on the same connection: Redis answers a connection's commands in
 * order, so both travel in one round trip and the EXISTS sees the state right before this add.
 * Within one process concurrent adds of one id are told apart exactly (one accepted, the rest
 * duplicate); two processes adding the same id within the same microseconds could both answer
 * accepted, and either way Redis holds exactly one job. (A MULTI would close that last window but
 * costs more CPU per webhook than the rest of the store: ioredis builds a Pipeline object with
 * every BullMQ script on it for each MULTI.)
 */
export async function addJobOnce(queues: BridgeQueues, spec: JobSpec): Promise<AddResult> {
  const queue = queueByName(queues, spec.queue);
  const client = await queue.getBackend().client;
  // What queue.add does, minus the Job bookkeeping we do not need.
  const job = new Job(queue, spec.name, spec.data, { ...spec.options, jobId: spec.jobId }, spec.jobId);
  const existed = (client as unknown as WithExists).exists(queue.toKey(spec.jobId));
  const added = job.addJob(client);
  const [count] = await Promise.all([existed, added]);
  return { outcome: count === 1 ? 'duplicate' : 'accepted', jobId: spec.jobId };
}
