import type { Logger } from 'pino';

export interface ShutdownOptions {
  logger: Logger;
  /** Hard deadline: the process exits 1 if the orderly steps have not finished by then. */
  deadlineMs: number;
  /** Runs once, on the first SIGTERM or SIGINT. */
  shutdown: () => Promise<void>;
  exit?: (code: number) => void;
}

/** Wires SIGTERM/SIGINT to one orderly shutdown with a hard, unref()'d deadline. */
export function handleShutdownSignals(options: ShutdownOptions): void {
  const exit = options.exit ?? ((code: number) => process.exit(code));
  let started = false;
  const onSignal = (signal: NodeJS.Signals) => {
    if (started) return;
    started = true;
    options.logger.info({ signal }, 'shutting down');
    const timer = setTimeout(() => {
      options.logger.error({ deadlineMs: options.deadlineMs }, 'shutdown deadline passed, exiting');
      options.logger.flush?.();
      exit(1);
    }, options.deadlineMs);
    timer.unref();
    options
      .shutdown()
      .then(() => {
        options.logger.info('shutdown complete');
        options.logger.flush?.();
        exit(0);
      })
      .catch((err: unknown) => {
        options.logger.error({ err }, 'shutdown failed');
        options.logger.flush?.();
        exit(1);
      });
  };
  process.once('SIGTERM', onSignal);
  process.once('SIGINT', onSignal);
}
