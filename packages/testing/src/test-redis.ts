import { clusterHandle } from './redis-cluster.js';
import { hasRedisServer, startRedisServer } from './redis-server.js';

/** Where a test's clients connect: the shape of `RedisTarget` in @gk/queue. */
export interface TestRedisTarget {
  url: string;
  /** Non-empty on a cluster: `host:port` of its nodes. */
  clusterNodes: string[];
}

export interface TestRedis {
  /** A single server's URL; on a cluster, the URL of its first node (for node-level commands only). */
  url: string;
  /** Pass to createProducerConnection / createWorkerConnection: a single server or the cluster. */
  target: TestRedisTarget;
  /** What a built service needs in its env to reach this Redis: REDIS_URL or REDIS_CLUSTER_NODES. */
  env: Record<string, string>;
  cluster: boolean;
  /** Where it came from: env (REDIS_URL / REDIS_CLUSTER_NODES), a throwaway `redis-server`, or Testcontainers. */
  source: 'env' | 'env-cluster' | 'redis-server' | 'testcontainers';
  stop(): Promise<void>;
}

/** The nodes of the cluster the tests are told to use (REDIS_CLUSTER_NODES), or none. */
export function testClusterNodes(env: NodeJS.ProcessEnv = process.env): string[] {
  return (env.REDIS_CLUSTER_NODES ?? '')
    .split(',')
    .map((s) => s.trim())
    .filter(Boolean);
}

function single(url: string, source: TestRedis['source'], stop: () => Promise<void>): TestRedis {
  return { url, target: { url, clusterNodes: [] }, env: { REDIS_URL: url }, cluster: false, source, stop };
}

/**
 * The one way tests get a shared Redis: the Redis Cluster in `REDIS_CLUSTER_NODES` when set (CI
 * runs the integration suite once more against a local 3-master cluster); else `REDIS_URL`;
 * else a throwaway `redis-server` on a free port; else a Testcontainers Redis when a Docker
 * engine answers. Tests that share a server isolate themselves with `uniquePrefix()` (hash-tagged,
 * so a queue's keys share a slot on a cluster). Tests that kill Redis use startRedisServer() or
 * startRedisCluster().
 */
export async function useTestRedis(): Promise<TestRedis> {
  const nodes = testClusterNodes();
  if (nodes.length > 0) {
    const { target, env } = clusterHandle(nodes, [], undefined, async () => {});
    return { url: target.url, target, env, cluster: true, source: 'env-cluster', stop: async () => {} };
  }
  const fromEnv = process.env.REDIS_URL;
  if (fromEnv) return single(fromEnv, 'env', async () => {});
  if (hasRedisServer()) {
    const server = await startRedisServer();
    return single(server.url, 'redis-server', server.stop);
  }
  try {
    const { RedisContainer } = await import('@testcontainers/redis');
    const container = await new RedisContainer('redis:7-alpine').start();
    return single(container.getConnectionUrl(), 'testcontainers', async () => {
      await container.stop();
    });
  } catch (err) {
    throw new Error(
      `No Redis for tests: set REDIS_URL, install redis-server (apt-get install redis-server), or run a Docker engine. (${String(err)})`,
    );
  }
}
