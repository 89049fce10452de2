import { randomUUID } from 'node:crypto';
import { performance } from 'node:perf_hooks';
import { setTimeout as sleep } from 'node:timers/promises';
import { type AppliedMark, hashEmail } from '@gk/domain';
import {
  BULK_MAX_BYTES,
  BULK_MAX_EVENTS,
  bulkEventBytes,
  type KlaviyoEventInput,
  validateEventInput,
} from '@gk/klaviyo';
import { DeliveryJobData, transitionJobId } from '@gk/queue';
import type { Logger } from '@gk/runtime';
import { type Job, type Queue, RateLimitError, UnrecoverableError, type Worker } from 'bullmq';
import { statusClass } from '../metrics.js';
import type { BulkRateLimit } from '../state/bulk-rate.js';

import type { BulkMetrics } from './bulk-metrics.js';
import {
  acquireFor,
  DEFAULT_LEASE_SAFETY_MS,
  type DeliveriesDeps,
  type DeliveryResult,
  eventInputFor,
  MIN_REQUEST_MS,
  markOf,
  profileGate,
  UNANSWERED_HOLD_MS,
} from './deliveries.js';
import { createUpstreamGuard, type UpstreamFailure } from './upstream-guard.js';

export interface BulkDeliveriesDeps extends DeliveriesDeps {
  /** `bulk`: every delivery goes in bulk requests; `auto`: only while more than `minBacklog` wait. */
  mode: 'auto' | 'bulk';
  minBacklog: number;
  /** The deliveries queue (its counts, and the queue-wide pause). */
  queue: Queue;
  /** A BullMQ worker without a processor on the deliveries queue: jobs are fetched by hand. */
  fetcher: Worker;
  /** The job lock the fetcher takes (WORKER_LOCK_DURATION_MS), renewed while a batch runs. */
  lockDurationMs: number;
  rate: BulkRateLimit;
  bulkMetrics: BulkMetrics;
  /** Batches in flight per worker process (default 1: a second adds little and costs memory). */
  inFlight?: number;
  /** How often an idle consumer looks at the queue again (default 250 ms). */
  idleMs?: number;
}

/** One delivery of a batch, leased and ready to send. */
interface Leased {
  job: Job<DeliveryJobData>;
  /** The job's lock token and the per-email lease holder. */
  token: string;
  data: DeliveryJobData;
  mark: AppliedMark;
  input: KlaviyoEventInput;
  backfill: boolean;
  bytes: number;
  log: Logger;
}

/** Room left in 5 MB for the request's envelope beyond the events' own bytes. */
const ENVELOPE_MARGIN_BYTES = 64 * 1024;
/** getNextJob calls sent at once while filling a batch. */
const FETCH_PARALLEL = 50;

/**
 * Delivers with Klaviyo's Bulk Create Events: up to 1,000 deliveries per request, taken from the
 * deliveries queue by hand (BullMQ's worker hands out one job at a time). Every promise of the
 * single path holds per delivery: each takes its email's fenced lease and claim exactly as a
 * single delivery does (so a batch never carries two events for one email, and never repeats a
 * profile + metric + unique_id); an event older than the newest known goes as backfill without
 * profile properties; a job completes only after the request carrying it got 202; a request
 * ends before its emails' leases do, and the jobs' locks are renewed meanwhile. Failures are per request: 429 and 401/403 pause the queue and
 * put the jobs back without spending attempts, 5xx and no answer retry every job with backoff,
 * any other 4xx is bisected until the events Klaviyo refuses are found, which fail permanently
 * while the rest are sent.
 */
export function createBulkDeliveries(deps: BulkDeliveriesDeps) {
  const { settings, fetcher, queue, bulkMetrics } = deps;
  const leaseWaitMs = deps.leaseWaitMs ?? (() => 100 + Math.floor(Math.random() * 200));
  const leaseSafetyMs = settings.leaseSafetyMs ?? DEFAULT_LEASE_SAFETY_MS;
  const idleMs = deps.idleMs ?? 250;
  let closing = false;
  let loops: Promise<void>[] = [];
  const wake = new AbortController();

  const guardFor = (events: number) =>
    createUpstreamGuard({
      upstream: 'klaviyo',
      credentialName: 'the API key',
      pausedWork: 'deliveries',
      policy: settings.upstream,
      credentials: deps.credentials,
      metrics: deps.metrics,
      count: (outcome) => deps.metrics.deliveries.inc({ outcome }, events),
      pauseQueue: deps.pauseQueue,
      ...(deps.breaker ? { breaker: deps.breaker } : {}),
    });

  /** A job move whose lock may be gone (a stall): the stalled checker has it then; never throws. */
  async function move(
    what: string,
    owner: { readonly log: Logger },
    step: () => Promise<unknown>,
  ): Promise<void> {
    try {
      await step();
    } catch (err) {
      owner.log.warn(
        { err: { message: (err as Error).message } },
        `bulk: could not ${what}; the job is retried`,
      );
    }
  }

  /** Ends a job the way the guard's throw says: put back (429, credentials) or failed/retried. */
  async function settleByError(item: { job: Job; token: string; log: Logger }, err: unknown): Promise<void> {
    if (err instanceof RateLimitError)
      return move('put the job back', item, () => item.job.moveToWait(item.token));
    const error = err instanceof Error ? err : new Error(String(err));
    if (error instanceof UnrecoverableError || item.job.attemptsMade + 1 >= (item.job.opts.attempts ?? 1)) {
      deps.metrics.jobsFailed.inc({ queue: queue.name });
    }
    return move('fail the job', item, () => item.job.moveToFailed(error, item.token, false));
  }

  /** Back to the delayed set without spending an attempt (its email is busy, or time ran out). */
  const later = (item: { job: Job; token: string; log: Logger }) =>
    move('delay the job', item, () => item.job.moveToDelayed(Date.now() + leaseWaitMs(), item.token));

  /**
   * Whether a batch is worth fetching: in `bulk`, any job waiting or delayed (a delayed job whose
   * time has come is moved to wait only by a fetch); in `auto`, more than `minBacklog` waiting.
   */
  async function worthFetching(): Promise<boolean> {
    const c = await queue.getJobCounts('wait', 'prioritized', 'delayed');
    const waiting = (c.wait ?? 0) + (c.prioritized ?? 0);
    return deps.mode === 'bulk' ? waiting + (c.delayed ?? 0) > 0 : waiting > deps.minBacklog;
  }

  async function fetchJobs(max: number): Promise<{ job: Job<DeliveryJobData>; token: string }[]> {
    const jobs: { job: Job<DeliveryJobData>; token: string }[] = [];
    while (jobs.length < max && !closing) {
      // One first (an idle queue costs one call), then many at once.
      const n = jobs.length === 0 ? 1 : Math.min(FETCH_PARALLEL, max - jobs.length);
      const fetched = await Promise.all(
        Array.from({ length: n }, async () => {
          const token = `bulk:${randomUUID()}`;
          const job = (await fetcher.getNextJob(token, { block: false })) as Job<DeliveryJobData> | undefined;
          return job ? { job, token } : undefined;
        }),
      );
      const got = fetched.filter((f) => f !== undefined);
      jobs.push(...got);
      if (got.length < n) break;
    }
    return jobs;
  }

  /** Leases one fetched job's email (as a single delivery would); null when it was settled here. */
  async function lease(f: { job: Job<DeliveryJobData>; token: string }): Promise<Leased | null> {
    const { job, token } = f;
    const parsed = DeliveryJobData.safeParse(job.data);
    if (!parsed.success) {
      const bare = { job, token, log: deps.logger.child({ jobId: job.id }) };
      await settleByError(bare, new UnrecoverableError(`invalid delivery payload: ${parsed.error.message}`));
      return null;
    }
    const d = parsed.data;
    const key = await deps.pseudonymKey();
    // The job's logger is made only when something is logged about it: a batch of 1,000 that
    // goes through logs one line, and 1,000 child loggers would be garbage the drain pays for.
    let log: Logger | undefined;
    const item = {
      job,
      token,
      get log(): Logger {
        log ??= deps.logger.child({
          eventId: d.eventId,
          transitionJobId: transitionJobId(d.eventId),
          jobId: job.id,
          emailHash: hashEmail(d.email, key),
          attempt: job.attemptsMade + 1,
          bulk: true,
        });
        return log;
      },
    };
    try {
      if (deps.profileCheck && (await profileGate(deps, d.email, guardFor(1), item.log)) === 'skip') {
        const result: DeliveryResult = { outcome: 'skipped_no_profile' };
        await move('complete the job', item, () => job.moveToCompleted(result, token, false));
        return null;
      }
    } catch (err) {
      await settleByError(item, err);
      return null;
    }
    const mark = markOf(d);
    const leased = await acquireFor(deps.emailState, d, token);
    if (!leased.acquired) {
      deps.metrics.deliveries.inc({ outcome: 'waited_for_lease' });
      await later(item);
      return null;
    }
    const input = eventInputFor(d, settings, leased.backfill);
    const invalid = validateEventInput(input);
    if (invalid) {
      // Klaviyo would accept the request and drop this event unseen (a bulk 202 is asynchronous):
      // refused here, permanently, as Klaviyo's 400 would refuse it in single mode.
      await deps.emailState.withdrawHeld(d.email, token, mark, d.conversationId);
      deps.metrics.deliveries.inc({ outcome: 'failed_permanent' });
      item.log.error({ reason: invalid }, 'klaviyo would refuse the event; not sent');
      await settleByError(item, new UnrecoverableError(`invalid event: ${invalid}`));
      return null;
    }
    return Object.defineProperties(
      { job, token, data: d, mark, input, backfill: leased.backfill, bytes: bulkEventBytes(input) },
      { log: { get: () => item.log, enumerable: true } },
    ) as Leased;
  }

  /** Klaviyo did not record these: their claims and held changes are put back, leases released. */
  async function withdraw(items: readonly Leased[]): Promise<void> {
    await Promise.all(
      items.map((i) =>
        deps.emailState.withdrawHeld(i.data.email, i.token, i.mark, i.data.conversationId).catch(() => false),
      ),
    );
  }

  async function delivered(items: readonly Leased[], status: number): Promise<void> {
    deps.credentials.accept();
    await Promise.all(
      items.map(async (i) => {
        await deps.emailState.settleHeld(i.data.email, i.token, i.mark, i.backfill ? 'backfill' : 'applied');
        const outcome = i.backfill ? 'delivered_backfill' : 'delivered';
        deps.metrics.deliveries.inc({ outcome });
        deps.metrics.lag.observe(Math.max(0, Date.now() - Date.parse(i.data.occurredAt)) / 1000);
        const result: DeliveryResult = { outcome, status };
        await move('complete the job', i, () => i.job.moveToCompleted(result, i.token, false));
      }),
    );
  }

  /** Waits for a bulk request's token, but not past `deadline`: false when time ran out. */
  async function token(deadline: number): Promise<boolean> {
    for (;;) {
      const wait = await deps.rate.take();
      if (wait === 0) return true;
      if (performance.now() + wait > deadline - MIN_REQUEST_MS) return false;
      await sleep(wait);
    }
  }

  /**
   * Sends `items` in one request (the caller took its rate token) and settles every one of them;
   * a 4xx other than 429 and 401/403 is bisected. Never throws.
   */
  async function send(items: Leased[], deadline: number, log: Logger, probe = false): Promise<void> {
    if (items.length === 0) return;
    if (deadline - performance.now() < MIN_REQUEST_MS) {
      deps.metrics.deliveries.inc({ outcome: 'lease_lost' }, items.length);
      log.warn(
        { events: items.length },
        'bulk: the job locks ran out before the request could start; trying again',
      );
      await withdraw(items);
      await Promise.all(items.map(later));
      return;
    }
    const answer = await deps.klaviyo.createEventsBulk(
      items.map((i) => i.input),
      { deadline },
    );
    deps.metrics.upstreamDuration.observe(
      { upstream: 'klaviyo', status_class: statusClass(answer.status) },
      answer.durationMs / 1000,
    );
    bulkMetrics.requests.inc({ outcome: answer.kind });
    const fields = { status: answer.status, durationMs: Math.round(answer.durationMs), events: items.length };
    if (answer.kind === 'delivered') {
      await guardFor(items.length).answered('ok', probe);
      bulkMetrics.events.observe(items.length);
      await delivered(items, answer.status);
      log.info(fields, 'delivered to klaviyo in bulk');
      return;
    }
    if (answer.kind === 'permanent' && items.length > 1) {
      // Klaviyo refuses the whole request for one bad event: halve until the bad ones are alone.
      log.warn(
        { ...fields, code: answer.code },
        'klaviyo refused a bulk request; bisecting to find the refused events',
      );
      const half = Math.ceil(items.length / 2);
      for (const part of [items.slice(0, half), items.slice(half)]) {
        if (await token(deadline)) await send(part, deadline, log);
        else {
          deps.metrics.deliveries.inc({ outcome: 'lease_lost' }, part.length);
          await withdraw(part);
          await Promise.all(part.map(later));
        }
      }
      return;
    }
    await failed(items, answer, fields, log, probe);
  }

  /** Every job of a request that failed as a whole: as a single delivery would fail, per job. */
  async function failed(
    items: readonly Leased[],
    answer: UpstreamFailure & { notSent?: boolean },
    fields: Record<string, unknown>,
    log: Logger,
    probe: boolean,
  ): Promise<void> {
    const unanswered = answer.kind === 'retryable' && answer.status === undefined && !answer.notSent;
    await Promise.all(
      items.map(async (i) => {
        if (unanswered && !i.backfill) {
          // Klaviyo may have recorded it (or still may): the claim stays, the lease a little longer.
          await deps.emailState.hold(i.data.email, i.token, UNANSWERED_HOLD_MS).catch(() => {});
        } else if (answer.kind !== 'retryable' || answer.notSent) {
          await deps.emailState
            .withdrawHeld(i.data.email, i.token, i.mark, i.data.conversationId)
            .catch(() => false);
        } else {
          // A 5xx keeps the claim (a gateway may answer one for a request that went through).
          await deps.emailState.release(i.data.email, i.token).catch(() => {});
        }
      }),
    );
    const subject = items.length === 1 ? 'event' : 'bulk request';
    const err = await guardFor(items.length)(
      answer,
      items[0]?.log ?? log,
      { name: 'bulk delivery', subject, probe },
      fields,
    ).catch((e: unknown) => e);
    await Promise.all(items.map((i) => settleByError(i, err)));
  }

  /**
   * One batch: the breaker's word, fetch, take a request's token, lease, send; everything taken
   * is settled here. While the breaker is open nothing is fetched; its probe is a batch of one.
   */
  async function batch(log: Logger, holder: string): Promise<number> {
    const admission = deps.breaker ? await deps.breaker.admit(holder) : 'send';
    if (typeof admission === 'object') {
      await sleep(admission.wait, undefined, { signal: wake.signal }).catch(() => {});
      return -1;
    }
    const probe = admission === 'probe';
    try {
      return await fetchAndSend(log, probe);
    } finally {
      // A probe that ended without an answer (nothing to fetch, lease taken) lets the next one go.
      if (probe)
        await guardFor(1)
          .answered('neutral', true)
          .catch(() => {});
    }
  }

  async function fetchAndSend(log: Logger, probe: boolean): Promise<number> {
    const fetched = await fetchJobs(probe ? 1 : BULK_MAX_EVENTS);
    if (fetched.length === 0) return 0;
    // The jobs' locks are kept alive while the batch runs (BullMQ's worker does this for the jobs
    // it hands out; these were fetched by hand). A worker frozen past a lock loses the job to the
    // stalled checker; its re-run then waits for the email's lease, which outlives the lock.
    const renew = setInterval(
      () => {
        for (const f of fetched) f.job.extendLock(f.token, deps.lockDurationMs).catch(() => 0);
      },
      Math.max(250, Math.floor(deps.lockDurationMs / 2)),
    );
    try {
      return await leaseAndSend(fetched, log, probe);
    } finally {
      clearInterval(renew);
    }
  }

  async function leaseAndSend(
    fetched: { job: Job<DeliveryJobData>; token: string }[],
    log: Logger,
    probe: boolean,
  ): Promise<number> {
    // Before the leases are taken: the request must end before the first of them does, exactly
    // as a single delivery's request must (a request cut off sooner could still be applied by
    // Klaviyo after a newer transition for the same address went out).
    const leaseEndsAt = performance.now() + deps.emailState.leaseMs;
    const deadline = leaseEndsAt - leaseSafetyMs;
    if (!(await token(deadline))) {
      await Promise.all(fetched.map((f) => later({ ...f, log })));
      return fetched.length;
    }
    const leased = (await Promise.all(fetched.map(lease))).filter((l): l is Leased => l !== null);
    let bytes = ENVELOPE_MARGIN_BYTES;
    const cut = leased.findIndex((l) => {
      bytes += l.bytes;
      return bytes > BULK_MAX_BYTES;
    });
    const now = cut === -1 ? leased : leased.slice(0, cut);
    const rest = cut === -1 ? [] : leased.slice(cut);
    if (rest.length > 0) {
      // Over 5 MB (huge properties): the rest go back untouched, for the next request.
      await withdraw(rest);
      await Promise.all(rest.map((r) => move('put the job back', r, () => r.job.moveToWait(r.token))));
    }
    await send(now, deadline, log, probe);
    return fetched.length;
  }

  async function loop(n: number): Promise<void> {
    const log = deps.logger.child({ bulkLoop: n });
    const holder = `bulk-loop:${randomUUID()}`;
    while (!closing) {
      try {
        if (!(await worthFetching()) || (await batch(log, holder)) === 0) {
          await sleep(idleMs, undefined, { signal: wake.signal }).catch(() => {});
        }
      } catch (err) {
        log.error({ err: { message: (err as Error).message } }, 'bulk delivery loop failed; retrying in 1 s');
        await sleep(1_000, undefined, { signal: wake.signal }).catch(() => {});
      }
    }
  }

  return {
    run(): void {
      if (loops.length > 0) return;
      const n = Math.max(1, deps.inFlight ?? 1);
      loops = Array.from({ length: n }, (_, i) => loop(i));
    },
    /** Lets the batches in flight finish (their requests end before the job locks do). */
    async close(): Promise<void> {
      closing = true;
      wake.abort();
      await Promise.all(loops);
    },
  };
}

export type BulkDeliveries = ReturnType<typeof createBulkDeliveries>;
