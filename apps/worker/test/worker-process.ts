import { fileURLToPath } from 'node:url';
import { freePort, type ServiceProcess, startServiceProcess } from '@gk/testing';

const MAIN = fileURLToPath(new URL('../dist/main.js', import.meta.url));

export interface WorkerProcess extends ServiceProcess {
  port: number;
}

/** Runs the built worker (`node apps/worker/dist/main.js`), by default until /readyz answers 200. */
export async function startWorkerProcess(
  env: Record<string, string>,
  waitReady = true,
): Promise<WorkerProcess> {
  const port = await freePort();
  const proc = await startServiceProcess({
    script: MAIN,
    env: { WORKER_PORT: String(port), HOST: '127.0.0.1', ...env },
    ...(waitReady ? { readyUrl: `http://127.0.0.1:${port}/readyz` } : {}),
  });
  return { ...proc, port };
}
