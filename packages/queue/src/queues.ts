import { Queue } from 'bullmq';
import type { RedisConnection } from './connection.js';
import type { CustomerChangeJobData, DeliveryJobData, TransitionJobData } from './jobs.js';
import { customerChangeJobOptions, deliveryJobOptions, transitionJobOptions } from './jobs.js';
import { QueueName } from './names.js';

export interface BridgeQueues {
  transitions: Queue<TransitionJobData>;
  deliveries: Queue<DeliveryJobData>;
  customerChanges: Queue<CustomerChangeJobData>;
}

/** Opens every queue on one shared connection (BullMQ duplicates it where it needs to block). */
export function createQueues(connection: RedisConnection, prefix: string): BridgeQueues {
  return {
    transitions: new Queue<TransitionJobData>(QueueName.transitions, {
      connection,
      prefix,
      defaultJobOptions: transitionJobOptions,
    }),
    deliveries: new Queue<DeliveryJobData>(QueueName.deliveries, {
      connection,
      prefix,
      defaultJobOptions: deliveryJobOptions,
    }),
    customerChanges: new Queue<CustomerChangeJobData>(QueueName.customerChanges, {
      connection,
      prefix,
      defaultJobOptions: customerChangeJobOptions,
    }),
  };
}

export async function closeQueues(queues: BridgeQueues): Promise<void> {
  await Promise.allSettled(Object.values(queues).map((queue) => queue.close()));
}

/** The queue of a name (for tools that take a queue name from the operator). */
export function queueByName(queues: BridgeQueues, name: QueueName): Queue {
  const queue = Object.values(queues).find((q) => q.name === name);
  if (!queue) throw new Error(`no queue named ${name}`);
  return queue as Queue;
}
