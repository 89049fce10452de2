import type { Cluster, Redis } from 'ioredis';
import type { Logger } from 'pino';
import { withTimeout } from './readiness.js';

/**
 * Readiness check: null when Redis answers in time. With `probeKey`, an EXISTS on that key instead
 * of a PING: on a cluster a PING goes to any node, while the EXISTS reaches the master serving the
 * key's slot, so a key beside the queues' (same hash tag) tests the node the bridge depends on.
 */
export function redisReachable(
  connection: Redis | Cluster,
  timeoutMs = 1_000,
  probeKey?: string,
): () => Promise<string | null> {
  return async () => {
    try {
      await withTimeout<unknown>(
        probeKey === undefined ? connection.ping() : connection.exists(probeKey),
        timeoutMs,
        'timed out',
      );
      return null;
    } catch (err) {
      return `redis unreachable (${err instanceof Error ? err.message : String(err)})`;
    }
  };
}

/**
 * The queues are the durable outbox only if Redis keeps what it acknowledged: AOF on and no
 * eviction. Managed services may refuse CONFIG GET; then we say we could not tell.
 */
export async function warnIfRedisNotDurable(connection: Redis | Cluster, logger: Logger): Promise<void> {
  try {
    // A cluster knows its masters only once it has read the slot map; each master is checked.
    const cluster = 'nodes' in connection;
    if (cluster && connection.status !== 'ready') {
      await new Promise((resolve) => connection.once('ready', resolve));
    }
    const nodes = cluster ? connection.nodes('master') : [connection];
    const problems = new Set<string>();
    for (const node of nodes) {
      const aof = (await node.config('GET', 'appendonly')) as string[];
      const policy = (await node.config('GET', 'maxmemory-policy')) as string[];
      if (aof[1] !== 'yes')
        problems.add('appendonly is not yes (acknowledged jobs are lost if Redis restarts)');
      if (policy[1] !== 'noeviction')
        problems.add(`maxmemory-policy is ${policy[1]}, not noeviction (jobs may be evicted)`);
    }
    if (problems.size > 0) logger.warn({ problems: [...problems] }, 'redis is not configured for durability');
  } catch (err) {
    logger.info(
      { err: (err as Error).message },
      'could not read redis persistence settings (CONFIG GET refused?)',
    );
  }
}
