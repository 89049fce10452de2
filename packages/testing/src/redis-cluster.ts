import { spawnSync } from 'node:child_process';
import { Redis } from 'ioredis';
import { sleep } from './ports.js';
import { type RedisServer, startRedisServer } from './redis-server.js';
import type { TestRedisTarget } from './test-redis.js';

export interface RedisCluster {
  /** `host:port` of every master, as REDIS_CLUSTER_NODES takes them. */
  nodes: string[];
  servers: RedisServer[];
  target: TestRedisTarget;
  /** What a service needs in its env to use this cluster. */
  env: Record<string, string>;
  /** Index of the master serving `key`'s hash slot (`{tag}` honoured). */
  masterFor(key: string): Promise<number>;
  /** Stops every node and removes their data. */
  stop(): Promise<void>;
}

export interface RedisClusterOptions {
  masters?: number;
  /**
   * How long a silent master may be before the others mark it failed. A master killed and
   * restarted within this time is never marked failed, so the rest of the cluster keeps serving.
   */
  nodeTimeoutMs?: number;
  /** Every node requires it (AUTH); the cluster's env passes it in REDIS_URL, as for a managed cluster. */
  password?: string;
}

async function clusterOk(url: string): Promise<boolean> {
  const client = new Redis(url, { lazyConnect: true, maxRetriesPerRequest: 0, retryStrategy: () => null });
  client.on('error', () => {});
  try {
    await client.connect();
    const info = String(await client.call('CLUSTER', 'INFO'));
    return /cluster_state:ok/.test(info);
  } catch {
    return false;
  } finally {
    client.disconnect();
  }
}

/** Waits until every node says cluster_state:ok (all 16384 slots served). */
export async function waitForClusterOk(urls: readonly string[], timeoutMs = 20_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (Date.now() < deadline) {
    const states = await Promise.all(urls.map(clusterOk));
    if (states.every(Boolean)) return;
    await sleep(50);
  }
  throw new Error(`redis cluster ${urls.join(',')} did not reach cluster_state:ok within ${timeoutMs} ms`);
}

/**
 * A throwaway Redis Cluster of `masters` masters (default 3, no replicas) on free loopback ports,
 * each with AOF (`appendfsync always`) and noeviction like production. A node can be killed and
 * restarted through `servers[i]`: it keeps its data folder (AOF and nodes.conf), so it rejoins
 * with the same slots and what it had acknowledged.
 */
export async function startRedisCluster(options: RedisClusterOptions = {}): Promise<RedisCluster> {
  const masters = options.masters ?? 3;
  const nodeTimeout = String(options.nodeTimeoutMs ?? 5_000);
  const servers: RedisServer[] = [];
  try {
    for (let i = 0; i < masters; i++) {
      servers.push(
        await startRedisServer({
          ...(options.password ? { password: options.password } : {}),
          extraArgs: [
            '--cluster-enabled',
            'yes',
            '--cluster-config-file',
            'nodes.conf',
            '--cluster-node-timeout',
            nodeTimeout,
          ],
        }),
      );
    }
    const nodes = servers.map((s) => `127.0.0.1:${s.port}`);
    const created = spawnSync(
      'redis-cli',
      [
        ...(options.password ? ['-a', options.password, '--no-auth-warning'] : []),
        '--cluster',
        'create',
        ...nodes,
        '--cluster-replicas',
        '0',
        '--cluster-yes',
      ],
      { encoding: 'utf8' },
    );
    if (created.status !== 0) {
      throw new Error(`redis-cli --cluster create failed: ${created.stderr || created.stdout}`);
    }
    await waitForClusterOk(servers.map((s) => s.url));
    return clusterHandle(nodes, servers, options.password, async () => {
      await Promise.all(servers.map((s) => s.stop()));
    });
  } catch (err) {
    await Promise.all(servers.map((s) => s.stop()));
    throw err;
  }
}

/** The handle for a cluster given by its nodes (one started here, or REDIS_CLUSTER_NODES). */
export function clusterHandle(
  nodes: string[],
  servers: RedisServer[],
  password: string | undefined,
  stop: () => Promise<void>,
): RedisCluster {
  const auth = password ? `:${encodeURIComponent(password)}@` : '';
  // REDIS_URL's host is not used on a cluster; its credentials are, for every node.
  const url = `redis://${auth}${nodes[0]}`;
  const target: TestRedisTarget = { url, clusterNodes: nodes };
  return {
    nodes,
    servers,
    target,
    env: { REDIS_CLUSTER_NODES: nodes.join(','), ...(password ? { REDIS_URL: url } : {}) },
    async masterFor(key) {
      const client = new Redis(url, { maxRetriesPerRequest: 1 });
      client.on('error', () => {});
      try {
        const slot = Number(await client.call('CLUSTER', 'KEYSLOT', key));
        const ranges = (await client.call('CLUSTER', 'SLOTS')) as [number, number, [string, number]][];
        const owner = ranges.find(([from, to]) => slot >= from && slot <= to)?.[2];
        const index = owner ? nodes.indexOf(`${owner[0]}:${owner[1]}`) : -1;
        if (index < 0) throw new Error(`no master of ${nodes.join(',')} serves slot ${slot}`);
        return index;
      } finally {
        client.disconnect();
      }
    },
    stop,
  };
}
