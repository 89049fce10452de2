import { maskEmail, redactEmails } from '@gk/domain';
import { type BridgeQueues, type QueueName, queueByName } from '@gk/queue';
import type { Job, Queue } from 'bullmq';
import type { QueueSelection } from './args.js';

/**
 * The states an operator asks about; `prioritized` is unused by the bridge but shown if non-zero.
 * BullMQ 6 has no `paused` job state (a paused queue's jobs stay `waiting`): whether the queue is
 * paused is its own field.
 */
export const JOB_STATES = ['waiting', 'active', 'delayed', 'prioritized', 'failed', 'completed'] as const;
export type JobCounts = Record<(typeof JOB_STATES)[number], number> & { paused: boolean };

/** A failed job as the CLI shows it: no email in clear, ever. */
export interface FailedJobView {
  queue: QueueName;
  id: string;
  eventId?: string;
  gladlyType?: string;
  customerId?: string;
  /** Deliveries only, masked (`r***@example.com`). */
  email?: string;
  attempts: number;
  reason: string;
  failedAt?: string;
}

export interface FailedList {
  /** Failed jobs per selected queue. */
  totals: Partial<Record<QueueName, number>>;
  /** How many matched `--reason` (every failed job when no pattern was given). */
  matched: number;
  jobs: FailedJobView[];
}

export interface RetryReport {
  retried: { queue: QueueName; id: string }[];
  /** Ids that could not be retried, with why (not found, not failed, changed meanwhile). */
  refused: { id: string; queue?: QueueName; why: string }[];
}

const PAGE = 200;
const RETRY_BATCH = 50;

type AnyJob = Job<Record<string, unknown>>;

function queueOf(queues: BridgeQueues, name: QueueName) {
  return queueByName(queues, name) as unknown as Queue<Record<string, unknown>>;
}

export async function countJobs(queues: BridgeQueues, selection: QueueSelection) {
  const result: Partial<Record<QueueName, JobCounts>> = {};
  for (const name of selection) {
    const queue = queueOf(queues, name);
    const [counts, paused] = await Promise.all([queue.getJobCounts(...JOB_STATES), queue.isPaused()]);
    result[name] = {
      ...(Object.fromEntries(JOB_STATES.map((s) => [s, counts[s] ?? 0])) as Omit<JobCounts, 'paused'>),
      paused,
    };
  }
  return result;
}

const str = (v: unknown): string | undefined => (typeof v === 'string' ? v : undefined);

export function viewFailedJob(queue: QueueName, job: AnyJob): FailedJobView {
  const data = job.data ?? {};
  const eventId = str(data.eventId);
  const gladlyType = str(data.gladlyType);
  const customerId = str(data.customerId);
  const email = str(data.email);
  return {
    queue,
    id: job.id ?? '(no id)',
    ...(eventId ? { eventId } : {}),
    ...(gladlyType ? { gladlyType } : {}),
    ...(customerId ? { customerId } : {}),
    ...(email ? { email: maskEmail(email) } : {}),
    attempts: job.attemptsMade,
    // The worker already masks emails in reasons; this is the net for anything older or foreign.
    reason: redactEmails(job.failedReason ?? '(no reason recorded)'),
    ...(job.finishedOn ? { failedAt: new Date(job.finishedOn).toISOString() } : {}),
  };
}

/** Every failed job of a queue, newest first, page by page. */
async function* failedJobs(queues: BridgeQueues, name: QueueName): AsyncGenerator<AnyJob> {
  const queue = queueOf(queues, name);
  const seen = new Set<string>();
  for (let start = 0; ; start += PAGE) {
    const page = (await queue.getFailed(start, start + PAGE - 1)) as AnyJob[];
    for (const job of page) {
      // A job retried by someone else meanwhile shifts the pages; never yield one twice.
      if (!job?.id || seen.has(job.id)) continue;
      seen.add(job.id);
      yield job;
    }
    if (page.length < PAGE) return;
  }
}

export async function listFailed(
  queues: BridgeQueues,
  selection: QueueSelection,
  options: { reason?: RegExp; limit: number },
): Promise<FailedList> {
  const totals: FailedList['totals'] = {};
  const jobs: FailedJobView[] = [];
  let matched = 0;
  for (const name of selection) {
    totals[name] = await queueOf(queues, name).getFailedCount();
    for await (const job of failedJobs(queues, name)) {
      const view = viewFailedJob(name, job);
      if (options.reason && !options.reason.test(view.reason)) continue;
      matched += 1;
      if (jobs.length < options.limit) jobs.push(view);
      // Without a pattern the total is known already: stop reading once the page is full.
      else if (!options.reason) break;
    }
  }
  if (!options.reason) matched = Object.values(totals).reduce((a, b) => a + b, 0);
  return { totals, matched, jobs };
}

async function retryJob(name: QueueName, job: AnyJob, report: RetryReport): Promise<void> {
  try {
    // A fresh set of attempts: a delivery that used them all up would otherwise get one try.
    await job.retry('failed', { resetAttemptsMade: true, resetAttemptsStarted: true });
    report.retried.push({ queue: name, id: job.id ?? '' });
  } catch (err) {
    report.refused.push({ id: job.id ?? '', queue: name, why: (err as Error).message });
  }
}

async function inBatches<T>(items: T[], run: (item: T) => Promise<void>): Promise<void> {
  for (let i = 0; i < items.length; i += RETRY_BATCH) {
    await Promise.all(items.slice(i, i + RETRY_BATCH).map(run));
  }
}

export async function retryFailed(
  queues: BridgeQueues,
  selection: QueueSelection,
  target: { ids: string[] } | { all: true } | { reason: RegExp },
): Promise<RetryReport> {
  const report: RetryReport = { retried: [], refused: [] };
  if ('ids' in target) {
    for (const id of [...new Set(target.ids)]) {
      let found = false;
      for (const name of selection) {
        const job = (await queueOf(queues, name).getJob(id)) as AnyJob | undefined;
        if (!job) continue;
        found = true;
        const state = await job.getState();
        if (state === 'failed') await retryJob(name, job, report);
        else report.refused.push({ id, queue: name, why: `not failed (it is ${state})` });
        break;
      }
      if (!found) report.refused.push({ id, why: `no such job in ${selection.join(' or ')}` });
    }
    return report;
  }
  for (const name of selection) {
    const chosen: AnyJob[] = [];
    for await (const job of failedJobs(queues, name)) {
      if ('reason' in target && !target.reason.test(redactEmails(job.failedReason ?? ''))) continue;
      chosen.push(job);
    }
    await inBatches(chosen, (job) => retryJob(name, job, report));
  }
  return report;
}
