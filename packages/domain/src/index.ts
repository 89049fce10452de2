export * from './emails.js';
export * from './gladly-webhook.js';
export * from './ordering.js';
export * from './transition.js';
