/**
 * The fencing case of the chaos suite: a worker frozen (SIGSTOP) in the middle of a delivery for
 * longer than the per-email lease, while the other worker delivers a newer transition for the
 * same email; then resumed (SIGCONT). The profile must end at the newest transition, every
 * event must be recorded once, and nothing may be left stuck. Repeated over several emails,
 * with the freeze at a slightly different moment each time.
 */
import { sleep, waitFor } from '@gk/testing';
import { describe, expect, it } from 'vitest';
import { createGladlySender } from '../system/gladly-sender.js';
import { createRandom, seedFromEnv } from '../system/random.js';
import { startStack } from '../system/stack.js';
import { PROP } from './chaos-run.js';

const ROUNDS = 4;
const LOCK_MS = 2_000;
/** Past the per-email lease: the job lock plus the worker's 5 s margin. */
const FREEZE_MS = LOCK_MS + 5_000 + 2_000;

const webhook = (id: string, type: string, timestamp: string, customerId: string) => ({
  id,
  type,
  timestamp,
  initiator: { id: 'agent-1', type: 'AGENT' },
  content: { customerId, conversationId: `conv-${customerId}` },
});

describe('chaos: a delivery frozen past its lease never sets a profile back', () => {
  it(
    'the profile ends at the newest transition after the frozen worker resumes',
    async () => {
      const seed = seedFromEnv('CHAOS_SEED');
      const random = createRandom(seed);
      const stack = await startStack({
        prefix: 'fencing',
        workers: 2,
        workerEnv: { WORKER_LOCK_DURATION_MS: String(LOCK_MS), KLAVIYO_RATE_LIMIT_PER_SECOND: '0' },
      });
      try {
        const sender = createGladlySender({
          url: stack.ingestUrl,
          authorization: stack.webhookAuthorization,
          random,
          redeliverChance: 0,
          giveUpAfterMs: 30_000,
        });
        const base = Date.parse('2026-11-20T10:00:00.000Z');
        const expected = new Map<string, boolean>();
        for (let round = 0; round < ROUNDS; round++) {
          const customerId = `fence-${round}`;
          const email = `fence.${round}@example.com`;
          stack.gladly.setCustomer(customerId, [email]);
          // Slow Klaviyo answers: the first delivery is still in flight when its worker is frozen.
          stack.klaviyo.setLatency(300 + random.int(0, 400));
          let frozen = false;
          const freezing = stack.freezeWorker(FREEZE_MS, {
            midDelivery: true,
            onFrozen: () => {
              frozen = true;
            },
          });
          const at = (minutes: number) => new Date(base + round * 3_600_000 + minutes * 60_000).toISOString();
          expect(
            await sender.deliver(webhook(`fence-${round}-a`, 'CONVERSATION/CREATED', at(0), customerId)),
          ).toBe(true);
          await waitFor(() => frozen, { timeoutMs: 10_000, what: 'a worker frozen mid-delivery' });
          stack.klaviyo.setLatency(25);
          // A newer transition for the same email, while the first worker is frozen.
          expect(
            await sender.deliver(webhook(`fence-${round}-b`, 'CONVERSATION/CLOSED', at(1), customerId)),
          ).toBe(true);
          expected.set(email, false);
          await waitFor(() => stack.klaviyo.events.some((e) => e.uniqueId === `fence-${round}-b`), {
            timeoutMs: 30_000,
            what: 'the newer transition delivered by the other worker',
          });
          await freezing;
          await sleep(random.int(0, 500));
        }

        const monitor = stack.monitor();
        try {
          let idleBefore = false;
          await waitFor(
            async () => {
              const { idle } = await monitor.counts();
              const done = idle && idleBefore;
              idleBefore = idle;
              return done;
            },
            { timeoutMs: 60_000, intervalMs: 500, what: 'every queue to drain' },
          );
        } finally {
          await monitor.close();
        }

        const wrong: string[] = [];
        for (const [email, value] of expected) {
          const state = stack.klaviyo.profile(email)?.properties[PROP];
          if (state !== value) wrong.push(`${email}: ${PROP}=${state}, newest is ${value}`);
        }
        const perEvent = new Map<string, number>();
        for (const e of stack.klaviyo.events) perEvent.set(e.uniqueId, (perEvent.get(e.uniqueId) ?? 0) + 1);
        console.log(
          `fencing chaos (seed ${seed}): ${ROUNDS} rounds, ${wrong.length} wrong final states, ` +
            `${stack.klaviyo.posts} posts, ${stack.klaviyo.duplicates} duplicate posts`,
        );
        expect(wrong).toEqual([]);
        expect(perEvent.size).toBe(ROUNDS * 2);
        expect([...perEvent.values()].every((n) => n === 1)).toBe(true);
        const codes = await stack.stopServices();
        expect(codes).toEqual(codes.map(() => 0));
      } finally {
        await stack.close();
      }
    },
    ROUNDS * 60_000 + 120_000,
  );
});
