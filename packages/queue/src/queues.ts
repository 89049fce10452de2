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

/**
 * Closes every queue. A queue still opening (BullMQ checks the server version as it opens) is
 * given a moment to finish first: on a Redis Cluster, quitting the connection under that check
 * aborts it with an error no one can catch, which would crash a short-lived CLI on its way out.
 */
export async function closeQueues(queues: BridgeQueues, openingTimeoutMs = 2_000): Promise<void> {
  await Promise.allSettled(
    Object.values(queues).map(async (queue) => {
      let timer: NodeJS.Timeout | undefined;
      const timeout = new Promise<void>((resolve) => {
        timer = setTimeout(resolve, openingTimeoutMs);
        timer.unref();
      });
      await Promise.race([queue.waitUntilReady().catch(() => {}), timeout]);
      clearTimeout(timer);
      await queue.close();
    }),
  );
}

/** The queue of a name (for tools that take a queue name from the operator). */
export function queueByName(queues: BridgeQueues, name: QueueName): Queue {
  const queue = Object.values(queues).find((q) => q.name === name);
  if (!queue) throw new Error(`no queue named ${name}`);
  return queue as Queue;
}
