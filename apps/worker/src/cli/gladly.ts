#!/usr/bin/env node
// `npm run gladly -- webhook status|register|enable [--json]` / `gk-gladly …`: the bridge's Gladly webhook.
import { runGladlyCli } from './gladly-run.js';

process.exitCode = await runGladlyCli(process.argv.slice(2), process.env, {
  stdout: (text) => process.stdout.write(text),
  stderr: (text) => process.stderr.write(text),
});
