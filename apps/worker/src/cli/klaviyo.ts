#!/usr/bin/env node
// `npm run klaviyo -- segment ensure` / `gk-klaviyo`: the Klaviyo side of the set-up.
import { runKlaviyoCli } from './klaviyo-run.js';

process.exitCode = await runKlaviyoCli(process.argv.slice(2), process.env, {
  stdout: (text) => process.stdout.write(text),
  stderr: (text) => process.stderr.write(text),
});
