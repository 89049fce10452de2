/** Needed for `backfill` on Create Event; older revisions reject the attribute. */
export const DEFAULT_KLAVIYO_REVISION = '2026-07-15';

/** The conversation id's key in event properties, when the bridge is configured to send it. */
export const CONVERSATION_ID_PROPERTY = 'Gladly Conversation ID';

export interface KlaviyoEventInput {
  email: string;
  metricName: string;
  /** e.g. `In Gladly Conversation` */
  propertyName: string;
  value: boolean;
  /** Klaviyo records only the first event per profile + metric + unique_id. */
  uniqueId: string;
  /** ISO-8601 */
  time: string;
  /** A stale transition: recorded for history without flows and without touching the profile. */
  backfill: boolean;
  conversationId?: string;
}

/**
 * The JSON:API body of `POST /api/events` (see fixtures/klaviyo/create-event.json).
 * A backfilled event carries `backfill: true` and no profile properties: a transition older
 * than one already applied must never flip the profile back.
 */
export function buildCreateEventBody(input: KlaviyoEventInput): unknown {
  const properties = buildEventProperties(input);
  const profileAttributes: Record<string, unknown> = { email: input.email };
  if (!input.backfill) profileAttributes.properties = { [input.propertyName]: input.value };
  return {
    data: {
      type: 'event',
      attributes: {
        properties,
        time: input.time,
        unique_id: input.uniqueId,
        ...(input.backfill ? { backfill: true } : {}),
        metric: { data: { type: 'metric', attributes: { name: input.metricName } } },
        profile: { data: { type: 'profile', attributes: profileAttributes } },
      },
    },
  };
}

/** An event's own `properties`, the same for Create Event and Bulk Create Events. */
export function buildEventProperties(input: KlaviyoEventInput): Record<string, unknown> {
  const properties: Record<string, unknown> = { [input.propertyName]: input.value };
  if (input.conversationId !== undefined) properties[CONVERSATION_ID_PROPERTY] = input.conversationId;
  return properties;
}
