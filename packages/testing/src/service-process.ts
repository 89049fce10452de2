import { type ChildProcess, spawn } from 'node:child_process';
import { registerTestSecrets, secretsFromEnv } from './log-guard.js';
import { waitFor } from './ports.js';
import { trackChild } from './processes.js';

export interface ServiceProcess {
  child: ChildProcess;
  /** Everything the process wrote to stdout and stderr so far. */
  output(): string;
  exited: Promise<number | null>;
  /** SIGTERM and wait; resolves with the exit code. */
  stop(): Promise<number | null>;
  /** SIGKILL and wait. */
  kill(): Promise<void>;
}

export interface ServiceProcessOptions {
  /** Path of the built entry point, e.g. apps/worker/dist/main.js. */
  script: string;
  env: Record<string, string>;
  /** When given, waits until GET on it answers 200. */
  readyUrl?: string;
  readyTimeoutMs?: number;
}

/** Runs a built service with only the given env (plus PATH), capturing its output. */
export async function startServiceProcess(options: ServiceProcessOptions): Promise<ServiceProcess> {
  registerTestSecrets(...secretsFromEnv(options.env));
  let out = '';
  const child = trackChild(
    spawn(process.execPath, [options.script], {
      env: { PATH: process.env.PATH ?? '', ...options.env },
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
  const alive = () => child.exitCode === null && child.signalCode === null;
  if (options.readyUrl) {
    const url = options.readyUrl;
    await waitFor(
      async () => {
        if (!alive()) throw new Error(`${options.script} exited early:\n${out}`);
        const res = await fetch(url).catch(() => null);
        return res?.status === 200;
      },
      { timeoutMs: options.readyTimeoutMs ?? 15_000, what: `${options.script} to be ready` },
    );
  }
  return {
    child,
    output: () => out,
    exited,
    async stop() {
      if (alive()) child.kill('SIGTERM');
      return exited;
    },
    async kill() {
      if (alive()) child.kill('SIGKILL');
      await exited;
    },
  };
}
