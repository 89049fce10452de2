import { type ChildProcess, spawn, spawnSync } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Redis } from 'ioredis';
import { freePort, sleep } from './ports.js';
import { trackChild } from './processes.js';

export interface RedisServer {
  url: string;
  port: number;
  /** The data folder (AOF lives here, so a restart after kill recovers acknowledged writes). */
  dir: string;
  /** SIGKILL: no chance to flush anything beyond what AOF already has. */
  kill(): Promise<void>;
  /** Starts again on the same port and data folder. */
  restart(): Promise<void>;
  /** Stops and removes the data folder. */
  stop(): Promise<void>;
}

export interface RedisServerOptions {
  port?: number;
  /** AOF with `appendfsync always`, like production, so a kill -9 loses nothing acknowledged. */
  appendonly?: boolean;
  /** `requirepass` (and `masterauth`, for a cluster node); the URL then carries it. */
  password?: string;
  extraArgs?: string[];
}

export function hasRedisServer(): boolean {
  return spawnSync('redis-server', ['--version'], { stdio: 'ignore' }).status === 0;
}

async function waitUntilAnswering(url: string, timeoutMs = 10_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (Date.now() < deadline) {
    const client = new Redis(url, { lazyConnect: true, maxRetriesPerRequest: 0, retryStrategy: () => null });
    client.on('error', () => {});
    try {
      await client.connect();
      // A server loading its AOF answers LOADING errors to PING until done.
      await client.ping();
      client.disconnect();
      return;
    } catch {
      client.disconnect();
      await sleep(50);
    }
  }
  throw new Error(`redis-server at ${url} did not answer within ${timeoutMs} ms`);
}

/** Starts a throwaway `redis-server` on a free loopback port. */
export async function startRedisServer(options: RedisServerOptions = {}): Promise<RedisServer> {
  const port = options.port ?? (await freePort());
  const dir = mkdtempSync(join(tmpdir(), 'gk-redis-'));
  const auth = options.password ? `:${encodeURIComponent(options.password)}@` : '';
  const url = `redis://${auth}127.0.0.1:${port}`;
  const args = [
    '--port',
    String(port),
    '--bind',
    '127.0.0.1',
    '--dir',
    dir,
    '--save',
    '',
    '--maxmemory-policy',
    'noeviction',
    '--appendonly',
    options.appendonly === false ? 'no' : 'yes',
    '--appendfsync',
    'always',
    ...(options.password ? ['--requirepass', options.password, '--masterauth', options.password] : []),
    ...(options.extraArgs ?? []),
  ];
  let child: ChildProcess | undefined;
  const launch = async () => {
    child = trackChild(spawn('redis-server', args, { stdio: 'ignore' }));
    await waitUntilAnswering(url);
  };
  const kill = async () => {
    const c = child;
    if (!c || c.exitCode !== null || c.signalCode !== null) return;
    const exited = new Promise((resolve) => c.once('exit', resolve));
    c.kill('SIGKILL');
    await exited;
  };
  await launch();
  return {
    url,
    port,
    dir,
    kill,
    restart: launch,
    stop: async () => {
      await kill();
      rmSync(dir, { recursive: true, force: true });
    },
  };
}
