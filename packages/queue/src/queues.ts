import { Queue } from 'bullmq';
import {
  createProducerConnection,
  createWorkerConnection,
  isClusterTarget,
  type RedisConnection,
  type RedisTarget,
} from './connection.js';
import type { CustomerChangeJobData, DeliveryJobData, TransitionJobData } from './jobs.js';
import { customerChangeJobOptions, deliveryJobOptions, transitionJobOptions } from './jobs.js';
import { QueueName, queuePrefix } from './names.js';

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

/** Where the bridge's queues live: a server or a cluster, and the key prefix (as configured). */
export interface BridgeRedisSettings extends RedisTarget {
  /** QUEUE_PREFIX as configured; hash-tagged here when on a cluster. */
  prefix: string;
}

export interface BridgeConnection {
  connection: RedisConnection;
  /** The prefix BullMQ uses (hash-tagged on a cluster). */
  prefix: string;
  cluster: boolean;
}

/**
 * The one way every process connects to the bridge's Redis: a producer connection (commands fail
 * fast while Redis is away: the ingest, the CLIs) or a worker connection (blocking commands never
 * time out), a server or a cluster, and the prefix every queue and state key uses.
 */
export function openBridgeConnection(
  settings: BridgeRedisSettings,
  role: 'producer' | 'worker',
  name?: string,
): BridgeConnection {
  const cluster = isClusterTarget(settings);
  const target = { url: settings.url, clusterNodes: settings.clusterNodes };
  const connection =
    role === 'producer' ? createProducerConnection(target, name) : createWorkerConnection(target, name);
  return { connection, prefix: queuePrefix(settings.prefix, cluster), cluster };
}

export interface OpenedBridgeQueues extends BridgeConnection {
  queues: BridgeQueues;
  /** Closes the queues, then the connection. */
  close(): Promise<void>;
}

/** openBridgeConnection plus every queue on it: what the ingest and the CLIs use. */
export function openBridgeQueues(
  settings: BridgeRedisSettings,
  role: 'producer' | 'worker',
  name?: string,
): OpenedBridgeQueues {
  const opened = openBridgeConnection(settings, role, name);
  const queues = createQueues(opened.connection, opened.prefix);
  return {
    ...opened,
    queues,
    close: async () => {
      await closeQueues(queues);
      await opened.connection.quit().catch(() => opened.connection.disconnect());
    },
  };
}
