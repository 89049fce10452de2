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
