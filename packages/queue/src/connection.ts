import { Cluster, type ClusterNode, Redis, type RedisOptions } from 'ioredis';

export type RedisConnection = Redis | Cluster;

export interface RedisTarget {
  /**
   * `redis://…` of a single server. With `clusterNodes`, only its user, password and scheme
   * (`rediss://` = TLS) are used, for every node: managed clusters require AUTH and often TLS.
   */
  url: string;
  /** `host:port` of cluster nodes; when non-empty, a Redis Cluster is used. */
  clusterNodes?: readonly string[] | undefined;
}

function parseClusterNodes(nodes: readonly string[]): ClusterNode[] {
  return nodes.map((node) => {
    const i = node.lastIndexOf(':');
    return { host: node.slice(0, i), port: Number(node.slice(i + 1)) };
  });
}

/** What every cluster node connection takes from REDIS_URL: credentials and TLS, never the host. */
export function clusterNodeAuth(url: string): Pick<RedisOptions, 'username' | 'password' | 'tls'> {
  let parsed: URL;
  try {
    parsed = new URL(url);
  } catch {
    return {};
  }
  return {
    ...(parsed.username ? { username: decodeURIComponent(parsed.username) } : {}),
    ...(parsed.password ? { password: decodeURIComponent(parsed.password) } : {}),
    ...(parsed.protocol === 'rediss:' ? { tls: {} } : {}),
  };
}

export function isClusterTarget(target: RedisTarget): boolean {
  return (target.clusterNodes?.length ?? 0) > 0;
}

function connect(target: RedisTarget, options: RedisOptions): RedisConnection {
  if (target.clusterNodes && isClusterTarget(target)) {
    // Options that ioredis reads on the Cluster itself, not per node: the offline queue (the
    // producer must fail fast), auto-pipelining (grouped per node), and how it reconnects after
    // losing every node. Node connections never reconnect by themselves: the Cluster refreshes
    // its slot map and opens new ones.
    const {
      enableOfflineQueue = true,
      enableAutoPipelining = false,
      retryStrategy,
      ...nodeOptions
    } = options;
    const auth = clusterNodeAuth(target.url);
    return new Cluster(parseClusterNodes(target.clusterNodes), {
      redisOptions: { ...auth, ...nodeOptions },
      // With TLS, connect to the addresses the cluster announces as they are: certificates of
      // managed clusters (ElastiCache, …) name them, and a resolved IP would fail the check.
      ...(auth.tls
        ? {
            dnsLookup: (address: string, callback: (err: null, address: string) => void) =>
              callback(null, address),
          }
        : {}),
      enableOfflineQueue,
      enableAutoPipelining,
      ...(retryStrategy ? { clusterRetryStrategy: retryStrategy } : {}),
    });
  }
  return new Redis(target.url, options);
}

/**
 * For the ingest: a command fails at once while Redis is unreachable instead of waiting in an
 * offline queue, so the webhook answers 503 quickly (Gladly gives up after 15 s).
 */
export function createProducerConnection(target: RedisTarget, name = 'producer'): RedisConnection {
  return connect(target, {
    connectionName: `gk-${name}`,
    enableAutoPipelining: true,
    enableOfflineQueue: false,
    maxRetriesPerRequest: 1,
    connectTimeout: 1_000,
    commandTimeout: 1_500,
    retryStrategy: (times) => Math.min(times * 200, 2_000),
  });
}

/**
 * For BullMQ workers: blocking commands must never time out on the client side (BullMQ guards
 * its blocking reads with its own timer, on a duplicate of this connection). Commands of our own
 * go on a state connection instead.
 */
export function createWorkerConnection(target: RedisTarget, name = 'worker'): RedisConnection {
  return connect(target, {
    connectionName: `gk-${name}`,
    maxRetriesPerRequest: null,
    enableReadyCheck: true,
    retryStrategy: (times) => Math.min(times * 200, 2_000),
  });
}

/**
 * For the worker's own, non-blocking commands (per-email lease and marks, caches, readiness):
 * each command fails after `commandTimeoutMs` instead of waiting for a Redis that does not answer
 * (a hung server, a cluster master that is away), so a delivery fails and is retried, and a
 * shutdown is never held up by it.
 */
export function createStateConnection(
  target: RedisTarget,
  name = 'state',
  commandTimeoutMs = 5_000,
): RedisConnection {
  return connect(target, {
    connectionName: `gk-${name}`,
    maxRetriesPerRequest: 2,
    connectTimeout: 2_000,
    commandTimeout: commandTimeoutMs,
    retryStrategy: (times) => Math.min(times * 200, 2_000),
  });
}
