import { z } from 'zod';
import { type GladlyConversationEvent, TRANSITION_TYPES, type TransitionType } from './gladly-webhook.js';

/** One conversation state change of one Gladly customer, as the bridge stores it. */
export const Transition = z.object({
  /** Gladly's webhook event id: unique per event, reused verbatim as Klaviyo's `unique_id`. */
  eventId: z.string().min(1),
  kind: z.enum(['started', 'closed']),
  gladlyType: z.enum(Object.keys(TRANSITION_TYPES) as [TransitionType, ...TransitionType[]]),
  customerId: z.string().min(1),
  conversationId: z.string().min(1),
  /** Gladly's event timestamp (ISO-8601): orders transitions per email and is Klaviyo's `time`. */
  occurredAt: z.iso.datetime({ offset: true }),
  /** When the bridge received it (ISO-8601). */
  receivedAt: z.iso.datetime({ offset: true }),
});
export type Transition = z.infer<typeof Transition>;

export function toTransition(
  event: GladlyConversationEvent & { type: TransitionType },
  receivedAt: Date,
): Transition {
  return {
    eventId: event.id,
    kind: TRANSITION_TYPES[event.type],
    gladlyType: event.type,
    customerId: event.content.customerId,
    conversationId: event.content.conversationId,
    occurredAt: new Date(event.timestamp).toISOString(),
    receivedAt: receivedAt.toISOString(),
  };
}
