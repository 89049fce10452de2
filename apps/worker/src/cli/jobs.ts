#!/usr/bin/env node
// `npm run jobs -- …` / `gk-jobs …`: counts, failed jobs and retries, for operators and scripts.
import { runJobsCli } from './run.js';

process.exitCode = await runJobsCli(process.argv.slice(2), process.env, {
  stdout: (text) => process.stdout.write(text),
  stderr: (text) => process.stderr.write(text),
});
