import type { RedisConnection } from '@gk/queue';
import type { Logger } from '@gk/runtime';

/**
 * ioredis emits 'error' on every failed reconnect attempt (several a second while Redis is
 * down); unhandled, that would crash the process, logged each time it would flood the log.
 * This logs the first error of an outage and the recovery, once each. Only the error's code and
 * message are logged: neither carries the URL's password.
 */
export function watchRedisConnection(connection: RedisConnection, logger: Logger): void {
  let state: 'unknown' | 'up' | 'down' = 'unknown';
  connection.on('error', (err: Error) => {
    if (state === 'down') return;
    state = 'down';
    const code = (err as { code?: unknown }).code;
    logger.warn(
      { err: { message: err.message, code: typeof code === 'string' ? code : undefined } },
      'redis unreachable',
    );
  });
  connection.on('ready', () => {
    if (state === 'down') logger.info('redis reachable again');
    state = 'up';
  });
}
