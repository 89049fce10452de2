import { mkdtempSync, rmSync } from 'node:fs';
import { createServer, type Server } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { freePort } from '@gk/testing';
import { afterEach, describe, expect, it } from 'vitest';
import { runScript } from './stack-process.js';

/** `npm start`'s refusals: each says what is wrong and what to do, and exits 1 before starting anything. */
const cleanups: (() => void)[] = [];
afterEach(() => {
  for (const cleanup of cleanups.splice(0)) cleanup();
});

async function baseEnv(): Promise<Record<string, string>> {
  const dir = mkdtempSync(join(tmpdir(), 'gk-launcher-'));
  cleanups.push(() => rmSync(dir, { recursive: true, force: true }));
  return {
    SKIP_BUILD: '1',
    START_ENV_FILE: join(dir, 'no.env'),
    START_DATA_DIR: dir,
    REDIS_URL: `redis://127.0.0.1:${await freePort()}`,
    PORT: String(await freePort()),
    WORKER_PORT: String(await freePort()),
    SANDBOX_PORT: String(await freePort()),
  };
}

describe('npm start (scripts/start.mjs) refuses clearly', () => {
  it('says what to install when no Redis answers and there is no redis-server', async () => {
    const env = await baseEnv();
    const emptyPath = mkdtempSync(join(tmpdir(), 'gk-empty-path-'));
    cleanups.push(() => rmSync(emptyPath, { recursive: true, force: true }));
    const run = runScript('start.mjs', { ...env, PATH: emptyPath });
    expect(await run.exited).toBe(1);
    expect(run.output()).toContain('sudo apt-get install redis-server');
    expect(run.output()).toContain('brew install redis');
  });

  it('names the variable to change when a port is taken', async () => {
    const env = await baseEnv();
    const server: Server = createServer();
    await new Promise<void>((resolve) => server.listen(Number(env.PORT), '127.0.0.1', resolve));
    cleanups.push(() => server.close());
    const run = runScript('start.mjs', env);
    expect(await run.exited).toBe(1);
    expect(run.output()).toMatch(new RegExp(`port ${env.PORT} \\(ingest\\) is already in use.*PORT=`));
  });

  it('does not start a local Redis in place of a remote REDIS_URL that does not answer', async () => {
    const env = await baseEnv();
    const run = runScript('start.mjs', { ...env, REDIS_URL: 'redis://:secret@192.0.2.1:6379' });
    expect(await run.exited).toBe(1);
    expect(run.output()).toContain('nothing answers at REDIS_URL');
    expect(run.output()).not.toContain('secret');
  });
});
