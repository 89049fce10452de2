import type { Cluster, Redis } from 'ioredis';
import type { Logger } from 'pino';
import { withTimeout } from './readiness.js';

/** What a Redis failure is called where anyone may read it, keyed by a Node or Redis error code. */
const REDIS_PROBLEMS: ReadonlyArray<[RegExp, string]> = [
  [/ECONNREFUSED/, 'connection refused'],
  [/ENOTFOUND|EAI_AGAIN/, 'host not found'],
  [/ETIMEDOUT|timed out|did not acknowledge|did not answer/i, 'no answer in time'],
  [/ECONNRESET|EPIPE|Connection is closed|isn't writeable|max retries per request/i, 'not connected'],
  [/NOAUTH|WRONGPASS|NOPERM|Authentication/i, 'authentication refused'],
  [/^LOADING/, 'loading its data'],
  [/^OOM/, 'out of memory (maxmemory reached)'],
  [/^READONLY/, 'read-only replica'],
  [/^MISCONF/, 'cannot persist (MISCONF)'],
  [/CLUSTERDOWN|startup nodes|slots cache|TRYAGAIN/i, 'cluster unavailable'],
];

/**
 * A short, fixed description of a Redis failure for `/readyz` and other answers that may be
 * public: never the raw error text, which names Redis' host and port (`connect ECONNREFUSED
 * 10.0.3.7:6379`, `getaddrinfo ENOTFOUND redis-master.internal`). The raw error goes to the logs.
 */
export function describeRedisError(err: unknown): string {
  const text =
    err instanceof Error ? `${(err as NodeJS.ErrnoException).code ?? ''} ${err.message}` : String(err);
  for (const [pattern, description] of REDIS_PROBLEMS) {
    if (pattern.test(text.trim())) return description;
  }
  return 'error (details in the logs)';
}

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
      return `redis unreachable (${describeRedisError(err)})`;
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
