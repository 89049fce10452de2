import { type ChildProcess, spawn } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { freePort, trackChild, waitFor } from '@gk/testing';

export const REPO_ROOT = fileURLToPath(new URL('../../..', import.meta.url));

export interface ScriptRun {
  child: ChildProcess;
  output: () => string;
  exited: Promise<number | null>;
}

/** Runs `node scripts/<name> [args]` from the repo root with exactly `env` (plus PATH and HOME). */
export function runScript(
  name: string,
  env: Record<string, string>,
  args: readonly string[] = [],
): ScriptRun {
  let out = '';
  const child = trackChild(
    spawn(process.execPath, [join(REPO_ROOT, 'scripts', name), ...args], {
      cwd: REPO_ROOT,
      env: { PATH: process.env.PATH ?? '', HOME: process.env.HOME ?? tmpdir(), NO_COLOR: '1', ...env },
      stdio: ['ignore', 'pipe', 'pipe'],
    }),
  );
  child.stdout?.on('data', (d) => {
    out += String(d);
  });
  child.stderr?.on('data', (d) => {
    out += String(d);
  });
  const exited = new Promise<number | null>((resolve) => child.once('exit', (code) => resolve(code)));
  return { child, output: () => out, exited };
}

export interface LocalStack extends ScriptRun {
  env: Record<string, string>;
  ports: { ingest: number; worker: number; sandbox: number; redis: number };
  urls: { ingest: string; worker: string; sandbox: string; dashboard: string };
  /** SIGTERM, as Ctrl-C would; resolves with the launcher's exit code. */
  stop(): Promise<number | null>;
}

/**
 * `npm start` on free ports with nothing configured: the launcher starts its own redis-server
 * (data in a temp folder), the sandbox, the ingest and the worker. No `.env` is read.
 */
export async function startLocalStack(extraEnv: Record<string, string> = {}): Promise<LocalStack> {
  const dataDir = mkdtempSync(join(tmpdir(), 'gk-stack-'));
  const ports = {
    ingest: await freePort(),
    worker: await freePort(),
    sandbox: await freePort(),
    redis: await freePort(),
  };
  const env = {
    SKIP_BUILD: '1',
    START_ENV_FILE: join(dataDir, 'no.env'),
    START_DATA_DIR: dataDir,
    REDIS_URL: `redis://127.0.0.1:${ports.redis}`,
    PORT: String(ports.ingest),
    WORKER_PORT: String(ports.worker),
    SANDBOX_PORT: String(ports.sandbox),
    ...extraEnv,
  };
  const run = runScript('start.mjs', env);
  const ingest = `http://127.0.0.1:${ports.ingest}`;
  try {
    await waitFor(
      () => {
        if (run.child.exitCode !== null) throw new Error(`npm start exited early:\n${run.output()}`);
        return run.output().includes('Gladly → Klaviyo bridge is running');
      },
      { timeoutMs: 60_000, intervalMs: 100, what: 'the start banner' },
    );
  } catch (err) {
    run.child.kill('SIGKILL');
    throw new Error(
      `${err instanceof Error ? err.message : String(err)}\n--- npm start said ---\n${run.output()}`,
    );
  }
  return {
    ...run,
    env,
    ports,
    urls: {
      ingest,
      worker: `http://127.0.0.1:${ports.worker}`,
      sandbox: `http://127.0.0.1:${ports.sandbox}`,
      dashboard: `${ingest}/admin/queues`,
    },
    async stop() {
      if (run.child.exitCode === null && run.child.signalCode === null) run.child.kill('SIGTERM');
      const code = await run.exited;
      rmSync(dataDir, { recursive: true, force: true });
      return code;
    },
  };
}
