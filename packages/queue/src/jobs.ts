import { createHash } from 'node:crypto';
import { CustomerChange, emailKey, hashEmail, Transition } from '@gk/domain';
import type { JobsOptions } from 'bullmq';
import { z } from 'zod';

/** Payload of a `transitions` job: exactly the transition the ingest accepted. */
export const TransitionJobData = Transition;
export type TransitionJobData = Transition;

/** Payload of a `deliveries` job: one transition for one email address. */
export const DeliveryJobData = Transition.extend({
  email: z.string().min(1),
  /** The customer id the email was found under (differs from customerId after a merge). */
  resolvedCustomerId: z.string().min(1),
  /**
   * An operator's close (`npm run jobs -- profiles stuck --close`): lets go of every conversation
   * holding the address. Absent on every delivery the fan-out makes.
   */
  release: z.boolean().optional(),
});
export type DeliveryJobData = z.infer<typeof DeliveryJobData>;

/** Payload of a `customer-changes` job: the customers whose cached emails are stale. */
export const CustomerChangeJobData = CustomerChange;
export type CustomerChangeJobData = CustomerChange;

/**
 * BullMQ job ids may not contain `:` (its key separator) and may not be all digits (those are
 * taken for its own counter ids). Gladly event ids are opaque strings, so any id that is not
 * plainly safe is hashed; a safe one is kept readable for operators.
 */
function safeIdPart(raw: string): string {
  if (/^[A-Za-z0-9_-]{1,100}$/.test(raw) && !/^\d+$/.test(raw)) return raw;
  return `h${createHash('sha256').update(raw).digest('hex').slice(0, 32)}`;
}

/** The same Gladly event id always gives the same transition job id (redeliveries collapse). */
export function transitionJobId(eventId: string): string {
  return `t-${safeIdPart(eventId)}`;
}

/** The same Gladly event id always gives the same customer-change job id. */
export function customerChangeJobId(eventId: string): string {
  return `c-${safeIdPart(eventId)}`;
}

/**
 * One delivery per (Gladly event, email): a retried fan-out adds nothing new. The email part is
 * its keyed pseudonym (`pseudonymKey`: the worker's email hash key), so the dashboard and Redis
 * show ids no list of candidate addresses can be matched against.
 */
export function deliveryJobId(eventId: string, email: string, pseudonymKey: string): string {
  return `d-${safeIdPart(eventId)}-${hashEmail(email, pseudonymKey)}`;
}

/**
 * The id versions before keyed pseudonyms gave a delivery (an unkeyed SHA-256 of the address): a
 * fan-out run again after an upgrade looks for it, so a delivery queued by them is not doubled.
 */
export function legacyDeliveryJobId(eventId: string, email: string): string {
  const emailPart = createHash('sha256').update(emailKey(email)).digest('hex').slice(0, 24);
  return `d-${safeIdPart(eventId)}-${emailPart}`;
}

const HOUR = 3600;

/**
 * Completed jobs are the dedupe memory for redeliveries: Gladly retries for about an hour and
 * its Events API lets us backfill the last 24 h, so keep them 48 h to cover both with margin.
 * Failed jobs stay for 14 days for an operator to inspect and retry.
 */
export const COMPLETED_RETENTION_SECONDS = 48 * HOUR;
export const FAILED_RETENTION_SECONDS = 14 * 24 * HOUR;

/**
 * Retries use full-jitter exponential backoff capped at 10 min (mean ≈ 5 min once capped), so
 * 400 attempts span about 32 h: a Gladly or Klaviyo outage of 24 h is ridden out with margin.
 * 429s and rejected credentials do not spend attempts (the worker re-queues those itself).
 */
export const RETRY_ATTEMPTS = 400;

export const transitionJobOptions: JobsOptions = {
  attempts: RETRY_ATTEMPTS,
  backoff: { type: 'bridge' },
  removeOnComplete: { age: COMPLETED_RETENTION_SECONDS },
  removeOnFail: { age: FAILED_RETENTION_SECONDS },
};

export const deliveryJobOptions: JobsOptions = {
  attempts: RETRY_ATTEMPTS,
  backoff: { type: 'bridge' },
  removeOnComplete: { age: COMPLETED_RETENTION_SECONDS },
  removeOnFail: { age: FAILED_RETENTION_SECONDS },
};

/**
 * A customer change only drops cache entries: cheap and idempotent, so retried briefly and
 * kept like transitions (a Gladly redelivery within the retention finds it as a duplicate).
 */
export const customerChangeJobOptions: JobsOptions = {
  attempts: 50,
  backoff: { type: 'bridge' },
  removeOnComplete: { age: COMPLETED_RETENTION_SECONDS },
  removeOnFail: { age: FAILED_RETENTION_SECONDS },
};
