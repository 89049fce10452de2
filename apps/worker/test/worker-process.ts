import { type ChildProcess, spawn } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { freePort, trackChild, waitFor } from '@gk/testing';

const MAIN = fileURLToPath(new URL('../dist/main.js', import.meta.url));

export interface WorkerProcess {
  child: ChildProcess;
  port: number;
  output: () => string;
  exited: Promise<number | null>;
}

/** Runs the built worker (`node apps/worker/dist/main.js`) and waits until /readyz answers 200. */
export async function startWorkerProcess(
  env: Record<string, string>,
  waitReady = true,
): Promise<WorkerProcess> {
  const port = await freePort();
  let out = '';
  const child = trackChild(
    spawn(process.execPath, [MAIN], {
      env: { PATH: process.env.PATH ?? '', WORKER_PORT: String(port), HOST: '127.0.0.1', ...env },
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
  if (waitReady) {
    await waitFor(
      async () => {
        if (child.exitCode !== null) throw new Error(`worker exited early: ${out}`);
        const res = await fetch(`http://127.0.0.1:${port}/readyz`).catch(() => null);
        return res?.status === 200;
      },
      { timeoutMs: 15_000, what: 'worker readiness' },
    );
  }
  return { child, port, output: () => out, exited };
}
