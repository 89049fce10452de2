import type { z } from 'zod';
import {
  type CustomerChange,
  type CustomerChangeType,
  isCustomerChangeType,
  parseCustomerChange,
} from './gladly-customer.js';
import {
  GladlyConversationEvent,
  GladlyWebhookEnvelope,
  isTransitionType,
  PING_TYPE,
  type TransitionType,
} from './gladly-webhook.js';
import { type Transition, toTransition } from './transition.js';

/**
 * What one Gladly event (a webhook body, or a line of the Events API) means to the bridge. The
 * webhook and the backfill both read events through this, so they accept and refuse the same.
 */
export type GladlyEventReading =
  /** Not even an `{ id, type }` envelope. `rawType` is whatever `type` was, for a metric label. */
  | { kind: 'malformed'; error: z.ZodError; rawType: unknown }
  | { kind: 'ping'; id: string; type: string }
  /** A type the bridge does not use: acknowledged, nothing stored. */
  | { kind: 'ignored'; id: string; type: string }
  /** A type the bridge uses, with a payload that does not have the documented shape. */
  | { kind: 'invalid'; id: string; type: string; error: z.ZodError }
  | { kind: 'transition'; id: string; type: TransitionType; transition: Transition }
  | { kind: 'customer_change'; id: string; type: CustomerChangeType; change: CustomerChange };

const envelopeIdentity = GladlyWebhookEnvelope.pick({ id: true, type: true });

/**
 * Checks run cheapest first: the envelope's id and type (all a PING or an ignored type needs),
 * then the full payload of a type the bridge uses.
 */
export function readGladlyEvent(body: unknown, receivedAt: Date): GladlyEventReading {
  const identity = envelopeIdentity.safeParse(body);
  if (!identity.success) {
    const rawType = typeof body === 'object' && body !== null ? (body as { type?: unknown }).type : undefined;
    return { kind: 'malformed', error: identity.error, rawType };
  }
  const { id, type } = identity.data;
  if (type === PING_TYPE) return { kind: 'ping', id, type };
  if (isTransitionType(type)) {
    const event = GladlyConversationEvent.safeParse(body);
    if (!event.success) return { kind: 'invalid', id, type, error: event.error };
    return { kind: 'transition', id, type, transition: toTransition({ ...event.data, type }, receivedAt) };
  }
  if (isCustomerChangeType(type)) {
    const parsed = parseCustomerChange(body, type, receivedAt);
    if (!parsed.success) return { kind: 'invalid', id, type, error: parsed.error };
    return { kind: 'customer_change', id, type, change: parsed.change };
  }
  return { kind: 'ignored', id, type };
}
