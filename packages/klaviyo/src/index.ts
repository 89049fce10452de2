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
  classifyKlaviyoFailure,
  classifyKlaviyoResponse,
  DEFAULT_RETRY_AFTER_MS,
  type KlaviyoHttpAnswer,
  type KlaviyoOutcome,
  MAX_RETRY_AFTER_MS,
  parseRetryAfterMs,
} from './classify.js';
export { createKlaviyoClient, type KlaviyoClient, type KlaviyoClientOptions } from './client.js';
export {
  buildCreateEventBody,
  CONVERSATION_ID_PROPERTY,
  DEFAULT_KLAVIYO_REVISION,
  type KlaviyoEventInput,
} from './event-body.js';
export {
  buildProfileLookupUrl,
  classifyProfileLookup,
  type ProfileLookupOutcome,
} from './profiles.js';
