import { z } from 'zod';

/**
 * Gladly webhook types the bridge turns into transitions. CREATED and REOPENED both mean the
 * customer is now in an open conversation; CLOSED means that conversation ended.
 */
export const TRANSITION_TYPES = {
  'CONVERSATION/CREATED': 'started',
  'CONVERSATION/REOPENED': 'started',
  'CONVERSATION/CLOSED': 'closed',
} as const;

export type TransitionType = keyof typeof TRANSITION_TYPES;
export type TransitionKind = (typeof TRANSITION_TYPES)[TransitionType];

export const PING_TYPE = 'PING';

export function isTransitionType(type: string): type is TransitionType {
  return Object.hasOwn(TRANSITION_TYPES, type);
}

/** An ISO-8601 timestamp with a time zone (Gladly sends UTC with a `Z`). */
const isoTimestamp = z.iso.datetime({ offset: true, message: 'must be an ISO-8601 date-time' });

/** Every webhook carries these: enough to acknowledge a PING or an ignored type. */
export const GladlyWebhookEnvelope = z.object({
  id: z.string().trim().min(1, 'must be a non-empty string').max(200),
  type: z.string().trim().min(1, 'must be a non-empty string').max(200),
  timestamp: isoTimestamp,
});
export type GladlyWebhookEnvelope = z.infer<typeof GladlyWebhookEnvelope>;

/** A conversation webhook: the customer and conversation it is about. */
export const GladlyConversationEvent = GladlyWebhookEnvelope.extend({
  initiator: z.object({ id: z.string().optional(), type: z.string().optional() }).loose().optional(),
  content: z
    .object({
      customerId: z.string().trim().min(1, 'must be a non-empty string').max(200),
      conversationId: z.string().trim().min(1, 'must be a non-empty string').max(200),
      context: z.unknown().optional(),
    })
    .loose(),
});
export type GladlyConversationEvent = z.infer<typeof GladlyConversationEvent>;
