import { Queue } from 'bullmq';
import type { RedisConnection } from './connection.js';
import type { DeliveryJobData, TransitionJobData } from './jobs.js';
import { deliveryJobOptions, transitionJobOptions } from './jobs.js';
import { QueueName } from './names.js';

export interface BridgeQueues {
  transitions: Queue<TransitionJobData>;
  deliveries: Queue<DeliveryJobData>;
}

/** Opens both queues on one shared connection (BullMQ duplicates it where it needs to block). */
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
  };
}

export async function closeQueues(queues: BridgeQueues): Promise<void> {
  await Promise.allSettled([queues.transitions.close(), queues.deliveries.close()]);
}
