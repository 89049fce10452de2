import { execSync } from 'node:child_process';

/**
 * Integration tests also run the built services (`node apps/<app>/dist/main.js`), so make sure the
 * build is current. Turbo's cache makes this a no-op when nothing changed.
 */
export default function setup(): void {
  if (process.env.SKIP_BUILD === '1') return;
  execSync('npx turbo run build --output-logs=errors-only', { stdio: 'inherit' });
}
