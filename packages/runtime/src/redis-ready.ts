import type { Cluster, Redis } from 'ioredis';

/**
 * For command-line tools: resolves once the connection is ready; rejects after `timeoutMs`, or at
 * the third connection error in a row (ioredis retries after 200, 400 ms…: a third refusal is
 * not a blip), with the last error's message.
 */
export function waitForRedis(connection: Redis | Cluster, timeoutMs: number): Promise<void> {
  if (connection.status === 'ready') return Promise.resolve();
  return new Promise((resolve, reject) => {
    let lastError = '';
    let errors = 0;
    const onError = (err: Error) => {
      lastError = err.message;
      errors += 1;
      if (errors >= 3) finish(new Error(lastError));
    };
    const finish = (err?: Error) => {
      clearTimeout(timer);
      connection.off('ready', onReady);
      connection.off('error', onError);
      if (err) reject(err);
      else resolve();
    };
    const timer = setTimeout(
      () => finish(new Error(lastError || `no answer within ${timeoutMs} ms`)),
      timeoutMs,
    );
    const onReady = () => finish();
    connection.once('ready', onReady);
    connection.on('error', onError);
  });
}
