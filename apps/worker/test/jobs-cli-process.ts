import { execFile } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { captureLogOutput } from '@gk/testing';

const CLI = fileURLToPath(new URL('../dist/cli/jobs.js', import.meta.url));

export interface CliRun {
  code: number;
  stdout: string;
  stderr: string;
}

/**
 * The built operator CLI (`node apps/worker/dist/cli/jobs.js`) as a subprocess with only `env`
 * (plus PATH); its output goes through the tests' log guard.
 */
export function runBuiltJobsCli(args: string[], env: Record<string, string>): Promise<CliRun> {
  return new Promise((resolve) => {
    execFile(
      process.execPath,
      [CLI, ...args],
      { env: { PATH: process.env.PATH ?? '', ...env } },
      (err, stdout, stderr) => {
        captureLogOutput(`jobs.js ${args.join(' ')}`, `${stdout}${stderr}`);
        const code = err ? (typeof err.code === 'number' ? err.code : 1) : 0;
        resolve({ code, stdout, stderr });
      },
    );
  });
}
