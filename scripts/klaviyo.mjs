#!/usr/bin/env node
// `npm run klaviyo -- segment ensure`: the built gk-klaviyo with the configuration `npm start`
// uses (the environment, then `.env`; the sandbox when no real Gladly or Klaviyo is configured).
import { existsSync } from 'node:fs';
import { resolve } from 'node:path';
import { loadDotEnv, ROOT } from './dev-stack.mjs';
import { applySandboxEnv } from './sandbox-env.mjs';

const RUNNER = resolve(ROOT, 'apps/worker/dist/cli/klaviyo-run.js');
if (!existsSync(RUNNER)) {
  process.stderr.write('klaviyo: apps/worker is not built yet: run npm run build (npm start builds too)\n');
  process.exit(1);
}

loadDotEnv();
const env = { ...process.env };
if (applySandboxEnv(env)) {
  process.stderr.write(
    `klaviyo: sandbox mode (no GLADLY_API_URL or KLAVIYO_API_KEY configured): ${env.KLAVIYO_API_URL}\n`,
  );
}

const { runKlaviyoCli } = await import(RUNNER);
process.exitCode = await runKlaviyoCli(process.argv.slice(2), env, {
  stdout: (text) => process.stdout.write(text),
  stderr: (text) => process.stderr.write(text),
});
