export * from './emails.js';
export * from './gladly-customer.js';
export * from './gladly-event.js';
export * from './gladly-webhook.js';
export * from './ordering.js';
export * from './transition.js';
