import { createServer } from 'node:net';

/** A TCP port that was free a moment ago on 127.0.0.1. */
export function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const server = createServer();
    server.unref();
    server.once('error', reject);
    server.listen(0, '127.0.0.1', () => {
      const address = server.address();
      const port = typeof address === 'object' && address ? address.port : 0;
      server.close(() => resolve(port));
    });
  });
}

export function sleep(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms));
}

/** Polls `probe` until it returns a truthy value or the deadline passes. */
export async function waitFor<T>(
  probe: () => Promise<T> | T,
  { timeoutMs = 10_000, intervalMs = 50, what = 'condition' } = {},
): Promise<NonNullable<T>> {
  const deadline = Date.now() + timeoutMs;
  let last: unknown;
  while (Date.now() < deadline) {
    try {
      const value = await probe();
      if (value) return value as NonNullable<T>;
    } catch (err) {
      last = err;
    }
    await sleep(intervalMs);
  }
  throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}${last ? `: ${String(last)}` : ''}`);
}

/**
 * A prefix no other test file shares, so files can share one Redis server safely. It is a hash
 * tag (`{…}`), as BullMQ needs on a Redis Cluster (every key of a queue in one slot), so the same
 * tests run on a single server and on a cluster. At most 32 characters (QUEUE_PREFIX's limit).
 */
export function uniquePrefix(name: string): string {
  const id = `${process.pid}-${Math.random().toString(36).slice(2, 8)}`;
  const label = name.replace(/[^A-Za-z0-9_-]/g, '-').slice(0, 30 - 'test--'.length - id.length);
  return `{test-${label}-${id}}`;
}
