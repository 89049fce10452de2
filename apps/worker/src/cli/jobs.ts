#!/usr/bin/env node
// `npm run jobs -- …` / `gk-jobs …`: counts, failed jobs and retries, for operators and scripts.
import { createInterface } from 'node:readline/promises';
import { runJobsCli } from './run.js';

/** A yes/no question on the terminal (`profiles stuck --close` without ids). */
async function ask(question: string): Promise<boolean> {
  const rl = createInterface({ input: process.stdin, output: process.stdout });
  try {
    return /^y(es)?$/i.test((await rl.question(question)).trim());
  } finally {
    rl.close();
  }
}

process.exitCode = await runJobsCli(process.argv.slice(2), process.env, {
  stdout: (text) => process.stdout.write(text),
  stderr: (text) => process.stderr.write(text),
  ...(process.stdin.isTTY ? { ask } : {}),
});
