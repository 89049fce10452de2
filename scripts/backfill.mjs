#!/usr/bin/env node
// `npm run backfill -- --since 2h`: the built gk-backfill CLI with the configuration `npm start`
// uses (the environment, then `.env`). When neither GLADLY_API_URL nor KLAVIYO_API_KEY is
// configured, `npm start` runs against the sandbox, and so does this: it reads the sandbox's
// Gladly Events API with the sandbox's dev credentials. Options: see `npm run backfill -- --help`.
import { existsSync } from 'node:fs';
import { resolve } from 'node:path';
import { configured, DEV, loadDotEnv, ROOT, stackUrls, value } from './dev-stack.mjs';

const RUNNER = resolve(ROOT, 'apps/ingest/dist/cli/backfill-run.js');
if (!existsSync(RUNNER)) {
  process.stderr.write('backfill: apps/ingest is not built yet: run npm run build (npm start builds too)\n');
  process.exit(1);
}

loadDotEnv();
const env = { ...process.env };
if (!configured(env, 'KLAVIYO_API_KEY') && !configured(env, 'GLADLY_API_URL')) {
  env.GLADLY_API_URL = stackUrls(env).sandbox;
  env.GLADLY_API_USER = value(env, 'SANDBOX_GLADLY_USER', DEV.sandboxGladlyUser);
  env.GLADLY_API_TOKEN = value(env, 'SANDBOX_GLADLY_TOKEN', DEV.sandboxGladlyToken);
  process.stderr.write(
    `backfill: sandbox mode (no GLADLY_API_URL or KLAVIYO_API_KEY configured): ${env.GLADLY_API_URL}\n`,
  );
}

const { runBackfillCli } = await import(RUNNER);
process.exitCode = await runBackfillCli(process.argv.slice(2), env, {
  stdout: (text) => process.stdout.write(text),
  stderr: (text) => process.stderr.write(text),
});
