import { z } from 'zod';
import { GladlyWebhookEnvelope } from './gladly-webhook.js';

/**
 * Gladly webhook types that change which emails a customer id resolves to, so the worker drops
 * its cached lookup for the customers they name. CUSTOMER_PROFILE/MERGED is Gladly's deprecated
 * spelling of CUSTOMER/MERGED (same `content` ids), still sent to older webhooks.
 */
export const CUSTOMER_CHANGE_TYPES = [
  'CUSTOMER_PROFILE/UPDATED',
  'CUSTOMER_PROFILE/DELETED',
  'CUSTOMER/MERGED',
  'CUSTOMER_PROFILE/MERGED',
] as const;
export type CustomerChangeType = (typeof CUSTOMER_CHANGE_TYPES)[number];

export function isCustomerChangeType(type: string): type is CustomerChangeType {
  return (CUSTOMER_CHANGE_TYPES as readonly string[]).includes(type);
}

const customerId = () => z.string().trim().min(1, 'must be a non-empty string').max(200);
const initiator = z.object({ id: z.string().optional(), type: z.string().optional() }).loose().optional();

/** CUSTOMER_PROFILE/UPDATED and /DELETED: `content.customerId` is the profile concerned. */
export const GladlyCustomerProfileEvent = GladlyWebhookEnvelope.extend({
  initiator,
  content: z.object({ customerId: customerId() }).loose(),
});
export type GladlyCustomerProfileEvent = z.infer<typeof GladlyCustomerProfileEvent>;

/**
 * CUSTOMER/MERGED: `sourceCustomerId` was merged into `destinationCustomerId` (the survivor).
 * Gladly also names the conversations merged "if applicable", so those are optional here.
 */
export const GladlyCustomerMergedEvent = GladlyWebhookEnvelope.extend({
  initiator,
  content: z
    .object({
      sourceCustomerId: customerId(),
      destinationCustomerId: customerId(),
      sourceConversationId: z.string().optional(),
      destinationConversationId: z.string().optional(),
    })
    .loose(),
});
export type GladlyCustomerMergedEvent = z.infer<typeof GladlyCustomerMergedEvent>;

/** A change to one or two customers, as the bridge stores it for the worker's cache. */
export const CustomerChange = z.object({
  /** Gladly's webhook event id (redeliveries collapse on it). */
  eventId: z.string().min(1),
  gladlyType: z.enum(CUSTOMER_CHANGE_TYPES),
  /** Every customer id whose cached emails are now stale (a merge names both). */
  customerIds: z.array(z.string().min(1)).min(1).max(2),
  /**
   * A merge only: who was merged into whom, and the conversations Gladly joined (when it names
   * them). The worker moves what the source conversation opened to the destination one, so
   * closing the destination closes those addresses too. Optional: jobs stored before it existed
   * carry only `customerIds`.
   */
  merge: z
    .object({
      sourceCustomerId: z.string().min(1),
      destinationCustomerId: z.string().min(1),
      sourceConversationId: z.string().min(1).optional(),
      destinationConversationId: z.string().min(1).optional(),
    })
    .optional(),
  occurredAt: z.iso.datetime({ offset: true }),
  receivedAt: z.iso.datetime({ offset: true }),
});
export type CustomerChange = z.infer<typeof CustomerChange>;

type ChangeParse = { success: true; change: CustomerChange } | { success: false; error: z.ZodError };

/** Validates a customer webhook of a known change type; the error names the bad field. */
export function parseCustomerChange(body: unknown, type: CustomerChangeType, receivedAt: Date): ChangeParse {
  const toChange = (
    event: GladlyWebhookEnvelope,
    ids: string[],
    merge?: CustomerChange['merge'],
  ): ChangeParse => ({
    success: true,
    change: {
      eventId: event.id,
      gladlyType: type,
      customerIds: [...new Set(ids)],
      ...(merge ? { merge } : {}),
      occurredAt: new Date(event.timestamp).toISOString(),
      receivedAt: receivedAt.toISOString(),
    },
  });
  if (type === 'CUSTOMER/MERGED' || type === 'CUSTOMER_PROFILE/MERGED') {
    const parsed = GladlyCustomerMergedEvent.safeParse(body);
    if (!parsed.success) return { success: false, error: parsed.error };
    const { sourceCustomerId, destinationCustomerId, sourceConversationId, destinationConversationId } =
      parsed.data.content;
    const conversation = (id: string | undefined) => (id && id.trim() !== '' ? id.trim() : undefined);
    const source = conversation(sourceConversationId);
    const destination = conversation(destinationConversationId);
    return toChange(parsed.data, [sourceCustomerId, destinationCustomerId], {
      sourceCustomerId,
      destinationCustomerId,
      ...(source ? { sourceConversationId: source } : {}),
      ...(destination ? { destinationConversationId: destination } : {}),
    });
  }
  const parsed = GladlyCustomerProfileEvent.safeParse(body);
  if (!parsed.success) return { success: false, error: parsed.error };
  return toChange(parsed.data, [parsed.data.content.customerId]);
}
