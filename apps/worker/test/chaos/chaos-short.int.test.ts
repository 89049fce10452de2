/**
 * A ten-second version of the chaos suite for `npm test`: the same run and checks as
 * chaos.chaos.test.ts (see chaos-run.ts), with fewer webhooks and one fault of each kind.
 */
import { describe, expect, it } from 'vitest';
import { seedFromEnv } from '../system/random.js';
import { type ChaosOptions, chaosReport, findViolations, runChaos } from './chaos-run.js';

const options: ChaosOptions = {
  label: 'chaos-short',
  seed: seedFromEnv('CHAOS_SEED'),
  durationMs: 10_000,
  customers: 40,
  lanes: 6,
  workers: 2,
  workerKills: 2,
  workerFreezes: 1,
  freezeMs: 3_000,
  redisKills: 1,
  redisFreezes: 1,
  redisDownMs: 1_500,
  ingestRestarts: 1,
  ingestKills: 1,
  klaviyoFaultEveryMs: 150,
  gladlyFaultEveryMs: 600,
  klaviyo400s: 1,
  drainTimeoutMs: 60_000,
};

describe('chaos (short): built ingest + two workers under faults, kills and restarts', () => {
  it('delivers every accepted transition exactly once per email, in order, with nothing stuck', async () => {
    const result = await runChaos(options);
    const violations = findViolations(result);
    console.log(
      `chaos-short report (seed ${options.seed}): ${JSON.stringify(chaosReport(result, violations))}`,
    );
    expect(violations).toEqual([]);
  }, 180_000);
});
