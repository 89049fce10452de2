import { Writable } from 'node:stream';
import { describe, expect, it } from 'vitest';
import { createLogger } from './logger.js';
import { runShutdownSteps } from './shutdown.js';

function capture() {
  const lines: Record<string, unknown>[] = [];
  const destination = new Writable({
    write(chunk, _enc, cb) {
      for (const line of String(chunk).split('\n').filter(Boolean)) lines.push(JSON.parse(line));
      cb();
    },
  });
  return { lines, logger: createLogger({ name: 'shutdown-test', level: 'debug', destination }) };
}

const never = () => new Promise<void>(() => {});

describe('runShutdownSteps', () => {
  it('runs every step in order when each finishes in time', async () => {
    const { logger } = capture();
    const order: string[] = [];
    const troubled = await runShutdownSteps(
      ['a', 'b', 'c'].map((name) => ({ name, timeoutMs: 500, run: async () => void order.push(name) })),
      logger,
    );
    expect(order).toEqual(['a', 'b', 'c']);
    expect(troubled).toEqual([]);
  });

  it('forces a step still pending at its bound, names it in the log, and goes on', async () => {
    const { lines, logger } = capture();
    const forced: string[] = [];
    const after: string[] = [];
    const started = Date.now();
    const troubled = await runShutdownSteps(
      [
        { name: 'close workers', timeoutMs: 100, run: never, force: () => void forced.push('close workers') },
        { name: 'close redis', timeoutMs: 100, run: () => void after.push('close redis') },
      ],
      logger,
    );
    expect(Date.now() - started).toBeLessThan(1_000);
    expect(forced).toEqual(['close workers']);
    expect(after).toEqual(['close redis']);
    expect(troubled).toEqual(['close workers']);
    const warning = lines.find((l) => l.step === 'close workers' && l.level === 'warn');
    expect(String(warning?.msg)).toMatch(/close workers.*still pending.*forcing/);
  });

  it('a force that hangs, or a step that throws, does not stop the shutdown', async () => {
    const { logger } = capture();
    const done: string[] = [];
    const started = Date.now();
    const troubled = await runShutdownSteps(
      [
        { name: 'hangs', timeoutMs: 50, run: never, force: never },
        {
          name: 'throws',
          timeoutMs: 50,
          run: () => {
            throw new Error('boom');
          },
        },
        { name: 'last', timeoutMs: 50, run: () => void done.push('last') },
      ],
      logger,
    );
    expect(done).toEqual(['last']);
    expect(troubled).toEqual(['hangs', 'throws']);
    // 50 ms bound + at most 1 s of forcing.
    expect(Date.now() - started).toBeLessThan(1_500);
  });
});
