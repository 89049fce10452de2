#!/usr/bin/env node
// `npm run doctor [-- --json]` / `gk-doctor`: checks the whole chain, changes nothing.
import { runDoctorCli } from './doctor-run.js';

process.exitCode = await runDoctorCli(process.argv.slice(2), process.env, {
  stdout: (text) => process.stdout.write(text),
  stderr: (text) => process.stderr.write(text),
});
