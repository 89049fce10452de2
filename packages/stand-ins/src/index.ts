export type { InjectedFault } from './faults.js';
export {
  type GladlyEventRecord,
  type GladlyEventsRequestRecord,
  type GladlyLookupRecord,
  type GladlyMergeInput,
  type GladlyStandIn,
  type GladlyStandInOptions,
  startGladlyStandIn,
} from './gladly-stand-in.js';
export {
  GLADLY_RETRY_OFFSETS_MS,
  type GladlyDeliveryRecord,
  type GladlySenderOptions,
  GladlyWebhooks,
  type GladlyWebhookView,
} from './gladly-webhooks.js';
export type { StartOptions } from './http-server.js';
export { hasScope, KLAVIYO_SCOPES } from './klaviyo-account.js';
export {
  KLAVIYO_BULK_RATE_LIMIT,
  KLAVIYO_EVENTS_RATE_LIMIT,
  type KlaviyoProfileView,
  type KlaviyoRateLimit,
  type KlaviyoRecordedEvent,
  type KlaviyoSegmentRecord,
  type KlaviyoStandIn,
  type KlaviyoStandInOptions,
  startKlaviyoStandIn,
} from './klaviyo-stand-in.js';
export {
  BACKFILL_MIN_REVISION,
  BULK_MIN_REVISION,
  type KlaviyoErrorObject,
} from './klaviyo-validation.js';
