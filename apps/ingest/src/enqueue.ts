/**
 * The add-once path of the webhook, for other entry points that store Gladly events (the worker's
 * reconciliation): the same job ids and options, so an event that already arrived is a no-op.
 */
export { enqueueCustomerChange } from './enqueue-customer-change.js';
export { addJobOnce, type EnqueueResult, enqueueTransition } from './enqueue-transition.js';
