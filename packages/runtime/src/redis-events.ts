import type { Cluster, Redis } from 'ioredis';
import type { Logger } from 'pino';

/**
 * ioredis emits 'error' on every failed reconnect attempt (several a second while Redis is
 * down); unhandled, that would crash the process, logged each time it would flood the log.
 * This logs each change instead: connection lost, the first error of the outage (it says why),
 * and the recovery. Only an error's code and message are logged, neither carries the URL's password.
 */
export function watchRedisConnection(connection: Redis | Cluster, logger: Logger): void {
  let up = false;
  let everUp = false;
  let errorLogged = false;
  connection.on('ready', () => {
    if (everUp && !up) logger.info('redis reachable again');
    up = true;
    everUp = true;
    errorLogged = false;
  });
  connection.on('close', () => {
    if (!up) return;
    up = false;
    logger.warn('redis connection lost');
  });
  connection.on('error', (err: Error) => {
    if (errorLogged) return;
    errorLogged = true;
    const code = (err as { code?: unknown }).code;
    logger.warn(
      { err: { message: err.message, ...(typeof code === 'string' ? { code } : {}) } },
      'redis unreachable',
    );
  });
}
