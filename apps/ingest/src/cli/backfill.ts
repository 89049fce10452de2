#!/usr/bin/env node
// `npm run backfill -- --since 2h` / `gk-backfill …`: recover conversation transitions missed
// while the webhook was down, from Gladly's Events API (last 24 h).
import { runBackfillCli } from './backfill-run.js';

process.exitCode = await runBackfillCli(process.argv.slice(2), process.env, {
  stdout: (text) => process.stdout.write(text),
  stderr: (text) => process.stderr.write(text),
});
