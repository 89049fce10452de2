import { QueueName } from '@gk/queue';
import type { Redis } from 'ioredis';
import { round } from './stats.js';

/** `used_memory` from INFO memory: what Redis has allocated for data and its own structures. */
export async function usedMemory(redis: Redis): Promise<number> {
  const info = await redis.info('memory');
  const match = /^used_memory:(\d+)\r?$/m.exec(info);
  if (!match?.[1]) throw new Error('INFO memory has no used_memory');
  return Number(match[1]);
}

/** Redis server CPU time so far (used_cpu_user + used_cpu_sys from INFO cpu), in ms. */
export async function redisCpuMs(redis: Redis): Promise<number> {
  const info = await redis.info('cpu');
  const field = (name: string) => {
    const match = new RegExp(`^${name}:([\\d.]+)\\r?$`, 'm').exec(info);
    if (!match?.[1]) throw new Error(`INFO cpu has no ${name}`);
    return Number(match[1]);
  };
  return (field('used_cpu_user') + field('used_cpu_sys')) * 1000;
}

export interface RetainedBytes {
  /** How many such keys were found. */
  count: number;
  /** Their MEMORY USAGE, plus their share of the queue's completed set, divided by count. */
  bytesPerItem: number;
}

export interface RedisMemoryBreakdown {
  transition: RetainedBytes;
  delivery: RetainedBytes;
  /** The per-email ordering mark (kept 30 days). */
  emailState: RetainedBytes;
  /** Both queues' event streams: capped by BullMQ (about 10,000 entries each), so not per job. */
  eventStreamsBytes: number;
}

const QUEUE_KEYS = new Set([
  'completed',
  'failed',
  'events',
  'meta',
  'id',
  'marker',
  'wait',
  'paused',
  'active',
  'delayed',
  'prioritized',
  'stalled',
  'stalled-check',
  'limiter',
  'pc',
  'de',
]);

async function memoryUsage(redis: Redis, key: string): Promise<number> {
  return Number((await redis.call('MEMORY', 'USAGE', key, 'SAMPLES', '0')) ?? 0);
}

async function scanKeys(redis: Redis, pattern: string): Promise<string[]> {
  const keys: string[] = [];
  let cursor = '0';
  do {
    const [next, batch] = await redis.scan(cursor, 'MATCH', pattern, 'COUNT', 1000);
    cursor = next;
    keys.push(...batch);
  } while (cursor !== '0');
  return keys;
}

/**
 * What a retained completed job costs, by kind: MEMORY USAGE of each job hash, plus the queue's
 * completed set divided among its members. Keys belong to queues under `prefix` (BullMQ layout
 * `prefix:queue:jobId`) and to the worker's email state (`prefix:state:email:…`).
 */
export async function redisMemoryBreakdown(redis: Redis, prefix: string): Promise<RedisMemoryBreakdown> {
  const perQueue = async (queue: string): Promise<RetainedBytes> => {
    const keys = await scanKeys(redis, `${prefix}:${queue}:*`);
    const jobKeys = keys.filter((k) => {
      const rest = k.slice(`${prefix}:${queue}:`.length);
      return !rest.includes(':') && !QUEUE_KEYS.has(rest);
    });
    let bytes = 0;
    for (const key of jobKeys) bytes += await memoryUsage(redis, key);
    bytes += await memoryUsage(redis, `${prefix}:${queue}:completed`);
    return { count: jobKeys.length, bytesPerItem: jobKeys.length ? round(bytes / jobKeys.length, 0) : 0 };
  };
  const stateKeys = await scanKeys(redis, `${prefix}:state:email:*:applied`);
  let stateBytes = 0;
  for (const key of stateKeys) stateBytes += await memoryUsage(redis, key);
  return {
    transition: await perQueue(QueueName.transitions),
    delivery: await perQueue(QueueName.deliveries),
    emailState: {
      count: stateKeys.length,
      bytesPerItem: stateKeys.length ? round(stateBytes / stateKeys.length, 0) : 0,
    },
    eventStreamsBytes:
      (await memoryUsage(redis, `${prefix}:${QueueName.transitions}:events`)) +
      (await memoryUsage(redis, `${prefix}:${QueueName.deliveries}:events`)),
  };
}
