import { performance } from 'node:perf_hooks';
import { type AppliedMark, hashEmail } from '@gk/domain';
import type { KlaviyoClient, KlaviyoEventInput } from '@gk/klaviyo';
import { DeliveryJobData, transitionJobId } from '@gk/queue';
import type { Logger } from '@gk/runtime';
import { DelayedError, type Job, UnrecoverableError } from 'bullmq';
import { statusClass, type WorkerMetrics } from '../metrics.js';
import type { KlaviyoBreaker } from '../state/breaker.js';
import type { CredentialsStatus } from '../state/credentials.js';
import type { EmailState, HeldLeaseResult } from '../state/email-state.js';
import type { KlaviyoProfileCheck } from '../state/profile-check.js';
import { createUpstreamGuard, type UpstreamGuard, type UpstreamPolicy } from './upstream-guard.js';

export type DeliveryResult =
  | { outcome: 'delivered' | 'delivered_backfill'; status: number }
  /** KLAVIYO_CREATE_PROFILES=false and Klaviyo has no profile with this email. */
  | { outcome: 'skipped_no_profile' };

/** What the deliveries processor is configured with (not the app's config: no API key here). */
export interface DeliveriesSettings {
  metricStarted: string;
  metricClosed: string;
  profileProperty: string;
  includeConversationId: boolean;
  upstream: UpstreamPolicy;
  /**
   * A request must end this long before the per-email lease does (Redis' clock and ours, the
   * time the lease script took): when less than this plus a request's worth is left, the attempt
   * sends nothing and tries again.
   */
  leaseSafetyMs?: number;
}

export interface DeliveriesDeps {
  settings: DeliveriesSettings;
  klaviyo: KlaviyoClient;
  emailState: EmailState;
  logger: Logger;
  metrics: WorkerMetrics;
  credentials: CredentialsStatus;
  /** Pauses the whole deliveries queue, across processes, without spending an attempt. */
  pauseQueue: (ms: number) => Promise<void>;
  /** How long a delivery waits before trying again for an email whose lease is taken. */
  leaseWaitMs?: () => number;
  /** The key of the email pseudonyms (logs, Redis keys): see PseudonymKey. */
  pseudonymKey: () => Promise<string>;
  /** Set when KLAVIYO_CREATE_PROFILES=false: only emails with a Klaviyo profile are sent. */
  profileCheck?: KlaviyoProfileCheck;
  /** The Klaviyo outage breaker (KLAVIYO_BREAKER_ENABLED); the guard consults and feeds it. */
  breaker?: KlaviyoBreaker;
}

/** The Klaviyo event of a delivery: history only (`backfill`) when it must not flip the profile. */
export function eventInputFor(
  d: DeliveryJobData,
  settings: DeliveriesSettings,
  backfill: boolean,
): KlaviyoEventInput {
  const value = d.kind === 'started';
  return {
    email: d.email,
    metricName: value ? settings.metricStarted : settings.metricClosed,
    propertyName: settings.profileProperty,
    value,
    uniqueId: d.eventId,
    time: d.occurredAt,
    backfill,
    ...(settings.includeConversationId ? { conversationId: d.conversationId } : {}),
  };
}

/** The ordering mark of a delivery's transition. */
export const markOf = (d: DeliveryJobData): AppliedMark => ({ occurredAt: d.occurredAt, eventId: d.eventId });

/**
 * Takes the email's lease for `holder` and, in the same Redis step, records the delivery's
 * transition for its conversation at this address and decides flip or history (see acquireHeld).
 */
export function acquireFor(
  emailState: EmailState,
  d: DeliveryJobData,
  holder: string,
): Promise<HeldLeaseResult> {
  return emailState.acquireHeld(d.email, holder, markOf(d), {
    conversationId: d.conversationId,
    kind: d.kind,
    customerId: d.resolvedCustomerId,
    ...(d.release ? { release: true } : {}),
  });
}

export const DEFAULT_LEASE_SAFETY_MS = 1_000;
/** How long the lease is kept after a request got no answer (Klaviyo may still apply it). */
export const UNANSWERED_HOLD_MS = 2_000;
/** Less time than this left on the lease is not worth a request (it would time out anyway). */
export const MIN_REQUEST_MS = 250;

/**
 * KLAVIYO_CREATE_PROFILES=false: whether Klaviyo knows the email (`skip` when it does not; counted
 * and logged). Before the lease, so an unknown email is skipped without holding others up. A
 * failed lookup goes to the guard, which throws.
 */
export async function profileGate(
  deps: Pick<DeliveriesDeps, 'profileCheck' | 'metrics'>,
  email: string,
  guard: UpstreamGuard,
  log: Logger,
  /** This delivery is the breaker's probe: a lookup's answer reports for it. */
  probe = false,
): Promise<'send' | 'skip'> {
  if (!deps.profileCheck) return 'send';
  const check = await deps.profileCheck.check(email);
  if (check.kind === 'failed') {
    const { outcome } = check;
    return guard(
      outcome,
      log,
      { name: 'profile lookup', probe },
      { status: outcome.status, durationMs: Math.round(outcome.durationMs) },
    );
  }
  if (check.source === 'klaviyo') await guard.answered('ok', probe);
  deps.metrics.profileChecks.inc({ source: check.source, result: check.kind });
  if (check.kind === 'exists') return 'send';
  deps.metrics.deliveries.inc({ outcome: 'skipped_no_profile' });
  log.info(
    { outcome: 'skipped_no_profile', source: check.source },
    'no Klaviyo profile has this email; not sent (KLAVIYO_CREATE_PROFILES=false)',
  );
  return 'skip';
}

/**
 * Sends one Klaviyo event for one email. Per email, one delivery at a time (a fenced Redis lease;
 * the other waits in the delayed set, spending no attempt), and a transition older than the newest
 * one applied is sent as backfill without profile properties, so it never flips the profile.
 *
 * The lease is taken, the newest mark read and this transition claimed as the mark (when newer),
 * in one Redis step immediately before the request, and the request's deadline ends before the
 * lease does: an attempt frozen past its lease (its email may meanwhile have been delivered a
 * newer transition) finds the deadline passed and sends nothing; an attempt killed or frozen after
 * Klaviyo recorded its event has already claimed it, so an older transition after the lease
 * lapses goes as backfill. A claim Klaviyo is known not to have recorded (a 4xx answer, no
 * request) is withdrawn. What remains is stated in docs/reliability.md.
 */
export function createDeliveriesProcessor(deps: DeliveriesDeps) {
  const { settings } = deps;
  const leaseWaitMs = deps.leaseWaitMs ?? (() => 100 + Math.floor(Math.random() * 200));
  const leaseSafetyMs = settings.leaseSafetyMs ?? DEFAULT_LEASE_SAFETY_MS;
  const guard = createUpstreamGuard({
    upstream: 'klaviyo',
    credentialName: 'the API key',
    pausedWork: 'deliveries',
    policy: settings.upstream,
    credentials: deps.credentials,
    metrics: deps.metrics,
    count: (outcome) => deps.metrics.deliveries.inc({ outcome }),
    pauseQueue: deps.pauseQueue,
    ...(deps.breaker ? { breaker: deps.breaker } : {}),
  });

  /** Back to the delayed set without spending an attempt. */
  async function tryAgainSoon(job: Job, token: string | undefined): Promise<never> {
    await job.moveToDelayed(Date.now() + leaseWaitMs(), token);
    throw new DelayedError();
  }

  return async function processDelivery(job: Job<DeliveryJobData>, token?: string): Promise<DeliveryResult> {
    const parsed = DeliveryJobData.safeParse(job.data);
    if (!parsed.success) throw new UnrecoverableError(`invalid delivery payload: ${parsed.error.message}`);
    const d = parsed.data;
    // The lease holder is this attempt: BullMQ's lock token is new for every attempt, so a re-run
    // of this job after a stall is another holder than the frozen original.
    const holder = token ?? `${job.id}:${job.attemptsMade}:${job.processedOn ?? 0}`;
    // Correlation ids: Gladly's event id and the transition job it came from tie this line to
    // the ingest's webhook line and the fan-out line; the email only ever as a keyed hash.
    const log = deps.logger.child({
      eventId: d.eventId,
      transitionJobId: transitionJobId(d.eventId),
      jobId: job.id,
      emailHash: hashEmail(d.email, await deps.pseudonymKey()),
      attempt: job.attemptsMade + 1,
    });
    // While the breaker is open this pauses the queue and puts the job back (no attempt spent).
    const { probe } = await guard.admit(holder, log);
    try {
      return await deliver(d, log, holder, probe, job, token);
    } finally {
      // A probe that ended without reporting an answer (lease taken, cache hit, an error) lets
      // the next probe go; one that reported already is not reported twice.
      // Its lock lapses by itself if Redis is away; the job's own error matters more.
      if (probe) await guard.answered('neutral', true).catch(() => {});
    }
  };

  async function deliver(
    d: DeliveryJobData,
    log: Logger,
    holder: string,
    probe: boolean,
    job: Job<DeliveryJobData>,
    token: string | undefined,
  ): Promise<DeliveryResult> {
    if ((await profileGate(deps, d.email, guard, log, probe)) === 'skip')
      return { outcome: 'skipped_no_profile' };

    // One Redis call takes the lease, reads the newest mark applied to this email, records this
    // transition for its conversation at this address and decides whether it flips the profile
    // (the address is "in conversation" while any conversation that reached it is open) or goes
    // as history; a flip claims the mark and the profile value. The lease's end is counted from
    // before the call was sent, so it is never later than Redis' own.
    const leaseEndsAt = performance.now() + deps.emailState.leaseMs;
    const mark = markOf(d);
    const lease = await acquireFor(deps.emailState, d, holder);
    if (!lease.acquired) {
      deps.metrics.deliveries.inc({ outcome: 'waited_for_lease' });
      log.debug('another delivery for this email is running; waiting');
      return tryAgainSoon(job, token);
    }
    let released = false;
    /**
     * Klaviyo did not record the event: its claim and the held changes it made (this attempt's
     * or an earlier one's) are put back.
     */
    const withdrawClaim = async () => {
      await deps.emailState.withdrawHeld(d.email, holder, mark, d.conversationId);
      released = true;
    };
    try {
      const stale = lease.backfill;
      const deadline = leaseEndsAt - leaseSafetyMs;
      if (deadline - performance.now() < MIN_REQUEST_MS) {
        // Frozen (or starved) between taking the lease and sending: the lease may be gone and a
        // newer transition delivered meanwhile, so send nothing and start over.
        deps.metrics.deliveries.inc({ outcome: 'lease_lost' });
        log.warn('the email lease ran out before the request could start; trying again');
        await withdrawClaim();
        return await tryAgainSoon(job, token);
      }
      const answer = await deps.klaviyo.createEvent(eventInputFor(d, settings, stale), { deadline });
      deps.metrics.upstreamDuration.observe(
        { upstream: 'klaviyo', status_class: statusClass(answer.status) },
        answer.durationMs / 1000,
      );
      const fields = { status: answer.status, durationMs: Math.round(answer.durationMs), backfill: stale };

      if (answer.kind !== 'delivered') {
        const unanswered = answer.kind === 'retryable' && answer.status === undefined && !answer.notSent;
        if (unanswered && !stale) {
          // No answer (timeout, reset): Klaviyo may have recorded the event, or may still. The
          // claim stays, so an older transition goes as backfill, and the lease is kept a little
          // longer, so a newer one does not overtake a request still under way.
          await deps.emailState.hold(d.email, holder, UNANSWERED_HOLD_MS);
          released = true;
        } else if (answer.kind !== 'retryable' || answer.notSent) {
          // A 4xx (a refusal, 429, credentials), or no request at all: Klaviyo has not recorded
          // it. A 5xx keeps the claim: a gateway may answer one for a request that went through.
          await withdrawClaim();
        }
        // Awaited here, inside the try: the lease is released only after the failure is handled,
        // and the rejection is never left without a handler while the finally block runs.
        return await guard(answer, log, { name: 'delivery', subject: 'event', probe }, fields);
      }
      deps.credentials.accept();
      await guard.answered('ok', probe);
      // One Redis call stores the mark (if newer; a backfill sets nothing, so it only drops a
      // claim an earlier attempt of it made), drops the transition's claim, keeps its held
      // changes for good and lets go of the lease; its failure fails the job (a retry is
      // harmless: Klaviyo dedupes by unique_id).
      await deps.emailState.settleHeld(d.email, holder, mark, stale ? 'backfill' : 'applied');
      released = true;
      const outcome = stale ? 'delivered_backfill' : 'delivered';
      deps.metrics.deliveries.inc({ outcome });
      deps.metrics.lag.observe(Math.max(0, Date.now() - Date.parse(d.occurredAt)) / 1000);
      log.info({ ...fields, outcome }, 'delivered to klaviyo');
      return { outcome, status: answer.status };
    } finally {
      if (!released) await deps.emailState.release(d.email, holder).catch(() => {});
    }
  }
}
