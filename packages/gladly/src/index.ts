export {
  classifyGladlyResponse,
  type GladlyAnswer,
  type GladlyHttpAnswer,
  parseRetryAfterMs,
} from './classify.js';
export {
  type CustomerEmailsResult,
  createGladlyClient,
  type GladlyClient,
  type GladlyClientOptions,
} from './client.js';
export { GladlyError, type GladlyErrorDetails, type GladlyErrorKind } from './errors.js';
export {
  buildEventsUrl,
  classifyEventsFailure,
  EVENTS_WINDOW_MS,
  type GladlyEventsClientOptions,
  type GladlyEventsQuery,
  streamGladlyEvents,
} from './events.js';
export {
  BRIDGE_WEBHOOK_EVENTS,
  createGladlyWebhooksClient,
  type GladlyWebhook,
  type GladlyWebhookInput,
  type GladlyWebhooksClient,
  type GladlyWebhooksClientOptions,
  missingWebhookEvents,
} from './webhooks.js';
