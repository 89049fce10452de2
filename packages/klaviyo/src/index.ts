export {
  buildCreateSegmentBody,
  classifyProbe,
  createSegment,
  describeFailure,
  findSegmentsByName,
  isSuppressionDefinition,
  type KlaviyoAccountOptions,
  KlaviyoApiError,
  type KlaviyoScope,
  type KlaviyoSegment,
  listMetricNames,
  type ProbeOutcome,
  probeKlaviyoScope,
  profilePropertyPath,
  quoteFilterValue,
  suppressionSegmentDefinition,
} from './account.js';
export {
  BULK_ENVELOPE_BYTES,
  BULK_MAX_BYTES,
  BULK_MAX_EVENTS,
  BulkBodyError,
  buildBulkCreateEventsBody,
  bulkEventBytes,
  validateEventInput,
} from './bulk-body.js';
export {
  classifyKlaviyoFailure,
  classifyKlaviyoResponse,
  type KlaviyoHttpAnswer,
  type KlaviyoOutcome,
} from './classify.js';
export {
  type CreateEventOptions,
  createKlaviyoClient,
  type KlaviyoClient,
  type KlaviyoClientOptions,
} from './client.js';
export {
  buildCreateEventBody,
  buildEventProperties,
  CONVERSATION_ID_PROPERTY,
  DEFAULT_KLAVIYO_REVISION,
  type KlaviyoEventInput,
} from './event-body.js';
export {
  buildProfileLookupUrl,
  classifyProfileLookup,
  type ProfileLookupOutcome,
} from './profiles.js';
