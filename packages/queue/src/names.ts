/**
 * The queues of the bridge. Nobody else spells these names. `customer-changes` carries Gladly's
 * customer webhooks (profile updated, merged) to the worker, which drops its cached lookups.
 */
export const QueueName = {
  transitions: 'transitions',
  deliveries: 'deliveries',
  customerChanges: 'customer-changes',
} as const;
export type QueueName = (typeof QueueName)[keyof typeof QueueName];

export const DEFAULT_QUEUE_PREFIX = 'gk';

/**
 * BullMQ's key prefix. On a Redis Cluster every key of a queue must hash to one slot, so the
 * prefix is wrapped in a hash tag (`{gk}`), which BullMQ then puts in front of every key.
 */
export function queuePrefix(prefix: string, cluster: boolean): string {
  if (!cluster || /\{[^}]+\}/.test(prefix)) return prefix;
  return `{${prefix}}`;
}
