import { type ChildProcess, spawn } from 'node:child_process';
import { closeSync, openSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { trackChild, waitFor } from '@gk/testing';

/** The repository root (this file runs as bench/dist/processes.js). */
export const ROOT = fileURLToPath(new URL('../../', import.meta.url));

export const SCRIPTS = {
  ingest: join(ROOT, 'apps/ingest/dist/main.js'),
  worker: join(ROOT, 'apps/worker/dist/main.js'),
  bareServer: join(ROOT, 'bench/dist/bare-server.js'),
  baselineWorker: join(ROOT, 'bench/dist/baseline-worker.js'),
} as const;

export interface BenchProcess {
  name: string;
  pid: number;
  child: ChildProcess;
  logFile: string;
  /** Peak resident set size so far (the kernel's high-water mark), in bytes. */
  peakRssBytes(): number | null;
  /** CPU time (user + system) used so far, in ms; null once it has exited. */
  cpuMs(): number | null;
  /** SIGTERM and wait for the exit code. */
  stop(): Promise<number | null>;
}

export interface StartOptions {
  name: string;
  script: string;
  env: Record<string, string>;
  logDir: string;
  /** Waits until GET on it answers 200. */
  readyUrl?: string;
}

/**
 * Starts a built service. Its output goes to a file rather than through a pipe into this
 * process: reading every log line here would take CPU from the services being measured.
 */
export async function startProcess(options: StartOptions): Promise<BenchProcess> {
  const logFile = join(options.logDir, `${options.name}.log`);
  const fd = openSync(logFile, 'a');
  const child = trackChild(
    spawn(process.execPath, [options.script], {
      env: { PATH: process.env.PATH ?? '', NODE_ENV: 'production', ...options.env },
      stdio: ['ignore', fd, fd],
    }),
  );
  closeSync(fd);
  const exited = new Promise<number | null>((resolve) => child.once('exit', (code) => resolve(code)));
  const alive = () => child.exitCode === null && child.signalCode === null;
  const pid = child.pid;
  if (pid === undefined) throw new Error(`${options.name} did not start`);
  if (options.readyUrl) {
    const url = options.readyUrl;
    await waitFor(
      async () => {
        if (!alive()) throw new Error(`${options.name} exited early; see ${logFile}`);
        const res = await fetch(url).catch(() => null);
        return res?.status === 200;
      },
      { timeoutMs: 20_000, what: `${options.name} to be ready (log: ${logFile})` },
    );
  }
  let lastPeak: number | null = null;
  return {
    name: options.name,
    pid,
    child,
    logFile,
    peakRssBytes() {
      if (alive()) lastPeak = readPeakRss(pid) ?? lastPeak;
      return lastPeak;
    },
    cpuMs: () => (alive() ? readCpuMs(pid) : null),
    async stop() {
      if (alive()) {
        lastPeak = readPeakRss(pid) ?? lastPeak;
        child.kill('SIGTERM');
      }
      return exited;
    },
  };
}

/** VmHWM from /proc (Linux): the process's peak RSS since it started. */
export function readPeakRss(pid: number): number | null {
  try {
    const status = readFileSync(`/proc/${pid}/status`, 'utf8');
    const match = /^VmHWM:\s+(\d+)\s+kB$/m.exec(status);
    return match?.[1] ? Number(match[1]) * 1024 : null;
  } catch {
    return null;
  }
}

/** utime + stime from /proc/PID/stat (Linux), in ms; clock ticks are 100 per second on Linux. */
export function readCpuMs(pid: number): number | null {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
    // Fields after the command name (which may contain spaces) start at index 2 (state).
    const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
    return (Number(fields[11]) + Number(fields[12])) * 10;
  } catch {
    return null;
  }
}
