/**
 * The ingest's spool end to end, on the built services: Redis killed for `outageMs` under a steady
 * 20 webhooks/s, and an ingest killed (-9) while spooled entries wait. Every webhook must get its
 * 200, every transition must reach the queue once, and Klaviyo must hold each (event, email) once
 * with each profile ending in the state of its customer's newest transition.
 * spool-outage.int.test.ts runs it with a short outage in `npm test`; spool-outage.chaos.test.ts
 * with the 30 s of issue 8 in `npm run test:chaos`.
 */
import { sleep, uniquePrefix, waitFor } from '@gk/testing';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { type Stack, startStack } from '../system/stack.js';

const RATE_PER_SECOND = 20;
const BEFORE_MS = 5_000;
const AFTER_MS = 5_000;
const CUSTOMERS = 40;

export function spoolOutageSuite({ outageMs }: { outageMs: number }): void {
  const OUTAGE_MS = outageMs;
  let stack: Stack;

  beforeAll(async () => {
    stack = await startStack({
      prefix: uniquePrefix('spool-e2e'),
      workers: 1,
      workerEnv: { GLADLY_RATE_LIMIT_PER_SECOND: '0', KLAVIYO_RATE_LIMIT_PER_SECOND: '0' },
    });
    for (let c = 0; c < CUSTOMERS; c++) {
      // Every third customer has two addresses: one transition, two deliveries.
      const emails = [`spool-${c}@example.test`, ...(c % 3 === 0 ? [`spool-${c}-alt@example.test`] : [])];
      stack.gladly.setCustomer(`spool-cust-${c}`, emails);
    }
  }, 60_000);

  afterAll(async () => {
    await stack?.close();
  });

  interface Sent {
    id: string;
    customer: number;
    type: 'CONVERSATION/CREATED' | 'CONVERSATION/CLOSED';
    at: number;
  }

  interface Answer {
    status: number;
    body: string;
    ms: number;
  }

  const emailsOf = (c: number) => [
    `spool-${c}@example.test`,
    ...(c % 3 === 0 ? [`spool-${c}-alt@example.test`] : []),
  ];

  function post(event: Sent): Promise<Answer> {
    const started = performance.now();
    return fetch(`${stack.ingestUrl}/webhooks/gladly`, {
      method: 'POST',
      headers: { 'content-type': 'application/json', authorization: stack.webhookAuthorization },
      body: JSON.stringify({
        id: event.id,
        type: event.type,
        timestamp: new Date(event.at).toISOString(),
        initiator: { id: 'agent-1', type: 'AGENT' },
        content: { customerId: `spool-cust-${event.customer}`, conversationId: `conv-${event.customer}` },
      }),
    }).then(
      async (res) => ({ status: res.status, body: await res.text(), ms: performance.now() - started }),
      (err: unknown) => ({ status: 0, body: String(err), ms: performance.now() - started }),
    );
  }

  async function ingestMetric(name: string, labels: Record<string, string> = {}): Promise<number> {
    const text = await (await fetch(`${stack.ingestUrl}/metrics`)).text();
    let sum = 0;
    for (const line of text.split('\n')) {
      if (!line.startsWith(`${name}{`) && !line.startsWith(`${name} `)) continue;
      if (Object.entries(labels).every(([k, v]) => line.includes(`${k}="${v}"`))) {
        sum += Number(line.slice(line.lastIndexOf(' ') + 1));
      }
    }
    return sum;
  }

  /** Klaviyo (the stand-in) holds exactly one event per (event, email) sent, and nothing else. */
  function expectDeliveredOnce(events: readonly Sent[]) {
    const expected = new Set(events.flatMap((e) => emailsOf(e.customer).map((m) => `${e.id} ${m}`)));
    const recorded = stack.klaviyo.events.map((e) => `${e.uniqueId} ${e.email}`);
    const mine = recorded.filter((r) => expected.has(r));
    expect(new Set(mine).size, 'distinct (event, email) recorded').toBe(expected.size);
    expect(mine.length, 'each recorded once').toBe(expected.size);
  }

  describe('the ingest spool, on the built services', () => {
    it(`takes ${RATE_PER_SECOND} webhooks/s through a ${OUTAGE_MS / 1000} s Redis outage: all 200, nothing lost, nothing doubled`, async () => {
      const total = ((BEFORE_MS + OUTAGE_MS + AFTER_MS) / 1000) * RATE_PER_SECOND;
      const sent: Sent[] = [];
      const answers: Promise<Answer & { id: string }>[] = [];
      const next = new Map<number, number>();
      const t0 = Date.now();
      const outage = (async () => {
        await sleep(BEFORE_MS);
        await stack.redis.kill();
        await sleep(OUTAGE_MS);
        await stack.redis.restart();
      })();
      for (let i = 0; i < total; i++) {
        const due = t0 + (i * 1000) / RATE_PER_SECOND;
        if (due > Date.now()) await sleep(due - Date.now());
        // One in ten is Gladly redelivering an earlier event; the rest alternate open/close per customer.
        const earlier = sent[Math.floor((i * 7919) % Math.max(sent.length, 1))];
        const event: Sent =
          i % 10 === 9 && earlier
            ? earlier
            : (() => {
                const customer = i % CUSTOMERS;
                const n = next.get(customer) ?? 0;
                next.set(customer, n + 1);
                const e: Sent = {
                  id: `spool-e2e-${i}`,
                  customer,
                  type: n % 2 === 0 ? 'CONVERSATION/CREATED' : 'CONVERSATION/CLOSED',
                  at: Date.UTC(2026, 10, 20, 12) + i * 1000,
                };
                sent.push(e);
                return e;
              })();
        answers.push(post(event).then((a) => ({ ...a, id: event.id })));
      }
      await outage;
      const all = await Promise.all(answers);

      const refused = all.filter((a) => a.status !== 200);
      expect(refused.map((a) => `${a.status} ${a.body.slice(0, 120)}`)).toEqual([]);
      // The contract's budget: never a hang, an answer within a second or two.
      expect(Math.max(...all.map((a) => a.ms))).toBeLessThan(2_000);
      const byStatus = new Map<string, number>();
      for (const a of all) {
        const s = (JSON.parse(a.body) as { status: string }).status;
        byStatus.set(s, (byStatus.get(s) ?? 0) + 1);
      }
      const spooledAnswers = byStatus.get('spooled') ?? 0;
      // About the outage × 20/s went to the spool (and what came in while it was relayed).
      expect(spooledAnswers).toBeGreaterThan((OUTAGE_MS / 1000) * RATE_PER_SECOND * 0.8);

      await waitFor(async () => (await ingestMetric('gk_spool_depth')) === 0, {
        timeoutMs: 30_000,
        what: 'the spool to be relayed',
      });
      const pairs = sent.reduce((n, e) => n + emailsOf(e.customer).length, 0);
      await waitFor(() => stack.klaviyo.events.length >= pairs, {
        timeoutMs: 60_000,
        intervalMs: 200,
        what: `${pairs} events in Klaviyo`,
      });
      expectDeliveredOnce(sent);

      // One job per transition, one per (transition, email); nothing left pending.
      const monitor = stack.monitor();
      try {
        await waitFor(async () => (await monitor.counts()).idle, { timeoutMs: 30_000, what: 'queues idle' });
        const counts = await monitor.counts();
        expect(counts.transitions.completed).toBe(sent.length);
        expect(counts.deliveries.completed).toBe(pairs);
        expect((counts.transitions.failed ?? 0) + (counts.deliveries.failed ?? 0)).toBe(0);
      } finally {
        await monitor.close();
      }
      // Every spooled answer was relayed: new ones accepted, redeliveries found as duplicates.
      const relayed = await ingestMetric('gk_spool_relayed_total');
      expect(relayed).toBe(spooledAnswers);
      expect(await ingestMetric('gk_spool_spooled_total')).toBe(spooledAnswers);

      // Per email, the newest transition of its customer decides the profile's state.
      for (let c = 0; c < CUSTOMERS; c++) {
        const newest = sent.filter((e) => e.customer === c).sort((a, b) => b.at - a.at)[0];
        if (!newest) continue;
        for (const email of emailsOf(c)) {
          expect(stack.klaviyo.profile(email)?.properties['In Gladly Conversation'], `customer ${c}`).toBe(
            newest.type === 'CONVERSATION/CREATED',
          );
        }
      }
      console.log(
        `spool outage: ${all.length} webhooks (${sent.length} events, ${pairs} deliveries), answers ${JSON.stringify(Object.fromEntries(byStatus))}, slowest ${Math.round(Math.max(...all.map((a) => a.ms)))} ms, Klaviyo duplicate posts ${stack.klaviyo.duplicates}`,
      );
    }, 180_000);

    it('relays at start what a killed ingest left in its spool', async () => {
      await stack.redis.kill();
      const events: Sent[] = Array.from({ length: 20 }, (_, i) => ({
        id: `spool-restart-${i}`,
        customer: i % CUSTOMERS,
        type: 'CONVERSATION/CLOSED' as const,
        at: Date.UTC(2026, 10, 21, 12) + i * 1000,
      }));
      for (const e of events) {
        const a = await post(e);
        expect(a.status).toBe(200);
        expect(JSON.parse(a.body).status).toBe('spooled');
      }
      // kill -9: no chance to do anything at exit. The new ingest (same port, same spool file) is
      // ready while Redis is still down: its spool takes webhooks.
      await stack.restartIngest('kill');
      const ready = (await (await fetch(`${stack.ingestUrl}/readyz`)).json()) as {
        spool?: { depth: number };
      };
      expect(ready.spool?.depth).toBe(events.length);
      expect(stack.ingest().output()).toMatch(/spool opened with entries from a previous run/);

      await stack.redis.restart();
      await waitFor(async () => (await ingestMetric('gk_spool_depth')) === 0, {
        timeoutMs: 30_000,
        what: 'the recovered spool to be relayed',
      });
      expect(await ingestMetric('gk_spool_relayed_total', { outcome: 'accepted' })).toBe(events.length);
      const pairs = events.reduce((n, e) => n + emailsOf(e.customer).length, 0);
      await waitFor(
        () => stack.klaviyo.events.filter((e) => e.uniqueId.startsWith('spool-restart-')).length >= pairs,
        { timeoutMs: 30_000, intervalMs: 200, what: 'the recovered events in Klaviyo' },
      );
      expectDeliveredOnce(events);
    }, 120_000);
  });
}
