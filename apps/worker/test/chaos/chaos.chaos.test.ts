/**
 * The chaos suite (`npm run test:chaos`): a minute of Gladly-like traffic through the built
 * ingest and two built workers while upstreams fail and processes die (see chaos-run.ts). The
 * report goes to test-results/chaos-report.json (or CHAOS_REPORT); CHAOS_SEED replays a plan,
 * CHAOS_DURATION_MS changes the sending window.
 */
import { fileURLToPath } from 'node:url';
import { describe, expect, it } from 'vitest';
import { numberFromEnv, seedFromEnv } from '../system/random.js';
import {
  type ChaosOptions,
  chaosReport,
  findViolations,
  runChaos,
  violationEvidence,
  writeReport,
} from './chaos-run.js';

const durationMs = numberFromEnv('CHAOS_DURATION_MS', 60_000);
const options: ChaosOptions = {
  label: 'chaos',
  seed: seedFromEnv('CHAOS_SEED'),
  durationMs,
  // About 15 webhooks a second, before retries and redeliveries.
  customers: Math.max(20, Math.round(durationMs / 200)),
  lanes: 8,
  workers: 2,
  workerKills: 5,
  workerFreezes: 3,
  freezeMs: 3_500,
  // Past the per-email lease (2 s job lock + 5 s margin).
  deliveryFreezes: 2,
  deliveryFreezeMs: 8_000,
  redisKills: 1,
  redisFreezes: 1,
  redisDownMs: 2_000,
  ingestRestarts: 1,
  ingestKills: 1,
  klaviyoFaultEveryMs: 150,
  gladlyFaultEveryMs: 700,
  klaviyo400s: 3,
  drainTimeoutMs: 120_000,
  reportPath:
    process.env.CHAOS_REPORT ??
    fileURLToPath(new URL('../../../../test-results/chaos-report.json', import.meta.url)),
};

describe('chaos: built ingest + two workers under upstream faults, kills, freezes and restarts', () => {
  it(
    'delivers every accepted transition exactly once per email, in order, with nothing stuck',
    async () => {
      const result = await runChaos(options);
      const violations = findViolations(result);
      const report = chaosReport(result, violations);
      if (options.reportPath) writeReport(options.reportPath, report);
      if (options.reportPath && violations.length > 0) {
        const evidencePath = options.reportPath.replace(/(\.json)?$/, '.evidence.json');
        writeReport(evidencePath, violationEvidence(result, violations));
        console.log(`chaos evidence of the violations: ${evidencePath}`);
      }
      console.log(`chaos report (seed ${options.seed}): ${JSON.stringify(report, null, 2)}`);
      expect(violations).toEqual([]);
      expect(report.lost).toBe(0);
      expect(report.stuck).toBe(0);
      // The run really was chaotic: every kind of fault was served at least once.
      for (const kind of ['klaviyo429', 'klaviyo503', 'klaviyoDrop', 'klaviyo400', 'gladly429'])
        expect(report.faults[kind], kind).toBeGreaterThan(0);
      expect(report.faults.workerKills).toBe(options.workerKills);
      expect(report.faults.redisKills).toBe(options.redisKills);
      expect(report.faults.workerDeliveryFreezes).toBe(options.deliveryFreezes);
    },
    // Sending (at most 1.5× the window + 30 s), draining, then starting and stopping services.
    durationMs * 1.5 + 30_000 + options.drainTimeoutMs + 120_000,
  );
});
