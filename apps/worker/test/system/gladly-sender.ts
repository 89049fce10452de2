import { sleep } from '@gk/testing';
import type { Random } from './random.js';

/**
 * Sends webhooks the way Gladly does: anything but a 2xx (or no answer within 15 s) is retried,
 * and now and then a delivery that succeeded is delivered again. Gladly spaces its retries
 * 30 s to 1 h apart; here they come 100–400 ms apart so a test can see many of them.
 */
export interface GladlySenderOptions {
  url: string;
  authorization: string;
  random: Random;
  /** Chance that a delivery answered 2xx is delivered again (and, at the same chance, a third time). */
  redeliverChance: number;
  /** Give up on a webhook after this long without a 2xx (it then counts as never accepted). */
  giveUpAfterMs?: number;
}

export interface SenderStats {
  /** Webhooks handed to the sender. */
  webhooks: number;
  /** Webhooks that got a 2xx in the end. */
  accepted: number;
  /** Webhooks that never got a 2xx before the sender gave up. */
  gaveUp: number;
  /** Every POST, retries and redeliveries included. */
  posts: number;
  /** Extra deliveries of a webhook that had already got a 2xx. */
  redeliveries: number;
  /** Answers by HTTP status, and `error` for no answer (refused, reset, timeout). */
  answers: Record<string, number>;
  /** 200 answers by the body's status (accepted, duplicate, ignored, pong). */
  outcomes: Record<string, number>;
}

export interface GladlySender {
  /** Resolves true once the webhook got a 2xx (after any redeliveries), false if it gave up. */
  deliver(body: object): Promise<boolean>;
  stats(): SenderStats;
}

export function createGladlySender(options: GladlySenderOptions): GladlySender {
  const giveUpAfterMs = options.giveUpAfterMs ?? 120_000;
  const stats: SenderStats = {
    webhooks: 0,
    accepted: 0,
    gaveUp: 0,
    posts: 0,
    redeliveries: 0,
    answers: {},
    outcomes: {},
  };
  const bump = (map: Record<string, number>, key: string) => {
    map[key] = (map[key] ?? 0) + 1;
  };

  /** One delivery of the body, retried until a 2xx or the deadline. */
  async function deliverOnce(payload: string): Promise<boolean> {
    const deadline = Date.now() + giveUpAfterMs;
    while (Date.now() < deadline) {
      stats.posts += 1;
      try {
        const res = await fetch(`${options.url}/webhooks/gladly`, {
          method: 'POST',
          headers: { 'content-type': 'application/json', authorization: options.authorization },
          body: payload,
          // Gladly counts a delivery as failed when no answer comes within 15 s.
          signal: AbortSignal.timeout(15_000),
        });
        bump(stats.answers, String(res.status));
        const text = await res.text();
        if (res.status >= 200 && res.status < 300) {
          const outcome = (JSON.parse(text) as { status?: unknown }).status;
          bump(stats.outcomes, typeof outcome === 'string' ? outcome : 'unknown');
          return true;
        }
      } catch {
        bump(stats.answers, 'error');
      }
      await sleep(options.random.int(100, 400));
    }
    return false;
  }

  return {
    async deliver(body) {
      stats.webhooks += 1;
      const payload = JSON.stringify(body);
      if (!(await deliverOnce(payload))) {
        stats.gaveUp += 1;
        return false;
      }
      stats.accepted += 1;
      // Gladly sometimes delivers a webhook again although it was answered 200.
      for (let i = 0; i < 2 && options.random.chance(options.redeliverChance); i++) {
        stats.redeliveries += 1;
        await deliverOnce(payload);
      }
      return true;
    },
    stats: () => structuredClone(stats),
  };
}
