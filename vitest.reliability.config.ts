import { defineConfig } from 'vitest/config';
import base from './vitest.config.ts';

/**
 * The reliability suites, kept out of `npm test` because they take minutes: `npm run test:chaos`,
 * `npm run test:fuzz` and `npm run test:soak` (docs/reliability.md). They run built services, so
 * the global setup builds first (a no-op when turbo's cache is warm, skipped with SKIP_BUILD=1).
 */
const suite = (name: string, testTimeout: number) => ({
  extends: true,
  test: {
    name,
    include: [`{apps,packages}/*/test/**/*.${name}.test.ts`],
    exclude: ['**/node_modules/**', '**/dist/**'],
    globalSetup: ['./vitest.global-setup.ts'],
    setupFiles: ['./vitest.log-guard.ts'],
    testTimeout,
    hookTimeout: 120_000,
  },
});

export default defineConfig({
  resolve: base.resolve,
  ssr: base.ssr,
  test: {
    projects: [suite('chaos', 600_000), suite('fuzz', 600_000), suite('soak', 24 * 3_600_000)],
  },
});
