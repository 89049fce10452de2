#!/usr/bin/env node
// `npm run gladly -- webhook status|register|enable [--json]`: the built gk-gladly CLI with the
// configuration `npm start` uses (the environment, then `.env`). With no real Gladly or Klaviyo
// configured, like `npm start`, it talks to the sandbox's Gladly with the sandbox's dev
// credentials, about the local ingest's webhook URL and its dev webhook password.
import { existsSync } from 'node:fs';
import { resolve } from 'node:path';
import { configured, DEV, loadDotEnv, ROOT, stackUrls, value } from './dev-stack.mjs';

const RUNNER = resolve(ROOT, 'apps/worker/dist/cli/gladly-run.js');
if (!existsSync(RUNNER)) {
  process.stderr.write('gladly: apps/worker is not built yet: run npm run build (npm start builds too)\n');
  process.exit(1);
}

loadDotEnv();
const env = { ...process.env };
if (!configured(env, 'KLAVIYO_API_KEY') && !configured(env, 'GLADLY_API_URL')) {
  const urls = stackUrls(env);
  env.GLADLY_API_URL = urls.sandbox;
  env.GLADLY_API_USER = value(env, 'SANDBOX_GLADLY_USER', DEV.sandboxGladlyUser);
  env.GLADLY_API_TOKEN = value(env, 'SANDBOX_GLADLY_TOKEN', DEV.sandboxGladlyToken);
  env.GLADLY_WEBHOOK_URL = value(env, 'GLADLY_WEBHOOK_URL', urls.webhook);
  if (!configured(env, 'WEBHOOK_BASIC_AUTH') && !configured(env, 'WEBHOOK_TOKENS')) {
    env.WEBHOOK_BASIC_AUTH = `${DEV.webhookUser}:${DEV.webhookPassword}`;
  }
  process.stderr.write(
    `gladly: sandbox mode (no GLADLY_API_URL or KLAVIYO_API_KEY configured): ${env.GLADLY_API_URL}\n`,
  );
}

const { runGladlyCli } = await import(RUNNER);
process.exitCode = await runGladlyCli(process.argv.slice(2), env, {
  stdout: (text) => process.stdout.write(text),
  stderr: (text) => process.stderr.write(text),
});
