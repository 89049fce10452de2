import { hasRedisServer, startRedisServer } from './redis-server.js';

export interface TestRedis {
  url: string;
  /** Where it came from: `REDIS_URL`, a throwaway `redis-server`, or a Testcontainers container. */
  source: 'env' | 'redis-server' | 'testcontainers';
  stop(): Promise<void>;
}

/**
 * The one way tests get a Redis: `REDIS_URL` when set; else a throwaway `redis-server` on a
 * free port; else a Testcontainers Redis when a Docker engine answers. Tests that share a
 * server isolate themselves with `uniquePrefix()`. Tests that kill Redis use startRedisServer().
 */
export async function useTestRedis(): Promise<TestRedis> {
  const fromEnv = process.env.REDIS_URL;
  if (fromEnv) return { url: fromEnv, source: 'env', stop: async () => {} };
  if (hasRedisServer()) {
    const server = await startRedisServer();
    return { url: server.url, source: 'redis-server', stop: server.stop };
  }
  try {
    const { RedisContainer } = await import('@testcontainers/redis');
    const container = await new RedisContainer('redis:7-alpine').start();
    return {
      url: container.getConnectionUrl(),
      source: 'testcontainers',
      stop: async () => {
        await container.stop();
      },
    };
  } catch (err) {
    throw new Error(
      `No Redis for tests: set REDIS_URL, install redis-server (apt-get install redis-server), or run a Docker engine. (${String(err)})`,
    );
  }
}
