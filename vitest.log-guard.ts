import { takeLogLeaks, treatAsReport } from '@gk/testing';
import { afterAll } from 'vitest';

// `npm run demo` prints a summary of what the sandbox's Klaviyo holds, emails included, for the
// person who ran it; `npm start` prints a banner with the sandbox's dev API user. Those are
// reports, not log lines; the service log lines `npm start` passes through ("worker   │ …") are
// checked like any other.
treatAsReport(/^demo\.mjs#/);
treatAsReport(/^start\.mjs#/, { logLines: /^\s*[\w-]+\s*│/ });

/**
 * Runs after every integration test file (its own afterAll hooks have closed the services by
 * then): fails the file when any log line it produced holds an email address in clear or a test
 * secret. See packages/testing/src/log-guard.ts for what is captured.
 */
afterAll(() => {
  const { leaks } = takeLogLeaks();
  if (leaks.length === 0) return;
  const shown = leaks
    .slice(0, 10)
    .map((l) => `  [${l.what}] ${l.source}: ${l.line}`)
    .join('\n');
  throw new Error(
    `${leaks.length} log line(s) contain an email address in clear or a secret (values blanked here):\n${shown}`,
  );
});
