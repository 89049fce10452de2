import type { Logger } from 'pino';

/** One step of an orderly shutdown, with its own bound. */
export interface ShutdownStep {
  /** Named in the log when the step is still pending at its bound. */
  name: string;
  /** How long the step may take before it is forced. */
  timeoutMs: number;
  run: () => Promise<void> | void;
  /**
   * What forcing the step means (`worker.close(true)`, `disconnect()`, dropping sockets). Itself
   * given at most {@link FORCE_TIMEOUT_MS}; the shutdown then goes on with the next step.
   */
  force?: () => Promise<void> | void;
}

export interface ShutdownOptions {
  logger: Logger;
  /**
   * Hard deadline: the process exits 1 if the steps have not finished by then. The steps' bounds
   * (plus their forcing) should add up to well under it, so it never fires.
   */
  deadlineMs: number;
  /** Run in order, once, on the first SIGTERM or SIGINT. */
  steps?: readonly ShutdownStep[];
  /** A single unbounded step (simple processes); `steps` is preferred. */
  shutdown?: () => Promise<void>;
  exit?: (code: number) => void;
}

/** How long forcing a step may take before the shutdown moves on regardless. */
export const FORCE_TIMEOUT_MS = 1_000;

type Settled = 'done' | 'timeout';

async function within(work: () => Promise<void> | void, ms: number): Promise<Settled | Error> {
  let timer: NodeJS.Timeout | undefined;
  const late = new Promise<Settled>((resolve) => {
    timer = setTimeout(() => resolve('timeout'), ms);
    timer.unref();
  });
  try {
    const run = Promise.resolve()
      .then(work)
      .then((): Settled => 'done');
    return await Promise.race([run, late]);
  } catch (err) {
    return err instanceof Error ? err : new Error(String(err));
  } finally {
    clearTimeout(timer);
  }
}

/**
 * Runs the steps in order, each within its bound. A step past its bound is logged by name and
 * forced; a step that fails is logged; either way the next step runs. Resolves with the names
 * of the steps that had to be forced or failed (empty when everything closed in order).
 */
export async function runShutdownSteps(steps: readonly ShutdownStep[], logger: Logger): Promise<string[]> {
  const troubled: string[] = [];
  for (const step of steps) {
    const started = Date.now();
    const result = await within(step.run, step.timeoutMs);
    if (result === 'done') {
      logger.debug({ step: step.name, ms: Date.now() - started }, 'shutdown step done');
      continue;
    }
    troubled.push(step.name);
    if (result instanceof Error) {
      logger.warn({ step: step.name, err: result.message }, 'shutdown step failed; going on');
      continue;
    }
    logger.warn(
      { step: step.name, timeoutMs: step.timeoutMs },
      `shutdown step "${step.name}" still pending after ${step.timeoutMs} ms; forcing it`,
    );
    if (step.force) {
      const forced = await within(step.force, FORCE_TIMEOUT_MS);
      if (forced !== 'done') {
        logger.warn(
          { step: step.name, err: forced instanceof Error ? forced.message : 'timeout' },
          'forcing the step did not finish either; going on',
        );
      }
    }
  }
  return troubled;
}

/** Wires SIGTERM/SIGINT to one orderly shutdown with bounded steps and a hard, unref()'d deadline. */
export function handleShutdownSignals(options: ShutdownOptions): void {
  const exit = options.exit ?? ((code: number) => process.exit(code));
  const steps: readonly ShutdownStep[] =
    options.steps ??
    (options.shutdown ? [{ name: 'shutdown', timeoutMs: options.deadlineMs, run: options.shutdown }] : []);
  let started = false;
  let pending = '';
  const onSignal = (signal: NodeJS.Signals) => {
    if (started) return;
    started = true;
    options.logger.info({ signal }, 'shutting down');
    const timer = setTimeout(() => {
      options.logger.error(
        { deadlineMs: options.deadlineMs, pendingStep: pending },
        `shutdown deadline passed during "${pending}", exiting`,
      );
      options.logger.flush?.();
      exit(1);
    }, options.deadlineMs);
    timer.unref();
    const tracked = steps.map((step) => ({
      ...step,
      run: () => {
        pending = step.name;
        return step.run();
      },
    }));
    runShutdownSteps(tracked, options.logger)
      .then((troubled) => {
        if (troubled.length === 0) options.logger.info('shutdown complete');
        else options.logger.warn({ forcedSteps: troubled }, 'shutdown complete (some steps were forced)');
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
