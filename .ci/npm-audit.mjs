// CI's audit step: `npm audit --omit=dev`, failing on any high or critical advisory in the
// production dependencies (exit 1). When the registry's advisory endpoint cannot be reached (a
// sandbox whose registry access allows downloads only answers 405 to npm's POST), it says so
// loudly and exits 3, so .ci/run counts the audit as not performed (skipped), never as passed.
import { spawnSync } from 'node:child_process';

const run = spawnSync('npm', ['audit', '--omit=dev', '--json'], { encoding: 'utf8' });
let report = null;
try {
  report = JSON.parse(run.stdout);
} catch {
  // not JSON: handled below
}

const counts = report?.metadata?.vulnerabilities;
if (counts) {
  const serious = (counts.high ?? 0) + (counts.critical ?? 0);
  console.log(`npm audit, production dependencies: ${JSON.stringify(counts)}`);
  if (serious === 0) process.exit(0);
  spawnSync('npm', ['audit', '--omit=dev', '--audit-level=high'], { stdio: 'inherit' });
  process.exit(1);
}
if (report && (report.statusCode !== undefined || report.error)) {
  const why = report.message || report.error?.summary || report.error?.code || 'no detail';
  console.log(`npm audit NOT PERFORMED: the registry's advisory endpoint could not be used (${why}).`);
  process.exit(3);
}
process.stderr.write(`${run.stdout}\n${run.stderr}\n`);
process.exit(1);
