/**
 * The built worker, logging at trace, never writes its Gladly token or Klaviyo key (nor a
 * customer's address) anywhere a person can read: log lines, `/readyz`, `/metrics`, or the
 * reason of a failed job (shown in the dashboard and by `npm run jobs`), through rejected
 * credentials, upstream errors, dropped connections and a permanent Klaviyo refusal.
 */
import { toTransition } from '@gk/domain';
import { closeQueues, createQueues, createWorkerConnection, deliveryJobId, transitionJobId } from '@gk/queue';
import { startGladlyStandIn, startKlaviyoStandIn } from '@gk/stand-ins';
import { findLogLeaks, type TestRedis, uniquePrefix, useTestRedis, waitFor } from '@gk/testing';
import type { Redis } from 'ioredis';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { GLADLY_TOKEN, GLADLY_USER, KLAVIYO_KEY } from './harness.js';
import { startWorkerProcess, type WorkerProcess } from './worker-process.js';

const EMAIL = 'secret.keeper@example.com';
const SECRETS = [GLADLY_TOKEN, KLAVIYO_KEY, Buffer.from(`${GLADLY_USER}:${GLADLY_TOKEN}`).toString('base64')];

let redis: TestRedis;
let worker: WorkerProcess | undefined;

beforeAll(async () => {
  redis = await useTestRedis();
});

afterAll(async () => {
  await worker?.kill();
  await redis?.stop();
});

const transition = (id: string, at: string) =>
  toTransition(
    {
      id,
      type: 'CONVERSATION/CREATED',
      timestamp: at,
      content: { customerId: 'cust-1', conversationId: 'c1' },
    },
    new Date(),
  );

describe('the built worker keeps its secrets', () => {
  it('out of logs, readiness, metrics and failed reasons, whatever the upstreams answer', async () => {
    const gladly = await startGladlyStandIn({ user: GLADLY_USER, token: GLADLY_TOKEN });
    const klaviyo = await startKlaviyoStandIn({ apiKey: KLAVIYO_KEY });
    gladly.setCustomer('cust-1', [EMAIL]);
    const connection = createWorkerConnection(redis.target) as Redis;
    const opened: ReturnType<typeof createQueues>[] = [];
    const start = async () => {
      const prefix = uniquePrefix('secrets');
      const queues = createQueues(connection, prefix);
      opened.push(queues);
      worker = await startWorkerProcess(
        {
          ...redis.env,
          QUEUE_PREFIX: prefix,
          GLADLY_API_URL: gladly.url,
          GLADLY_API_USER: GLADLY_USER,
          GLADLY_API_TOKEN: GLADLY_TOKEN,
          KLAVIYO_API_URL: klaviyo.url,
          KLAVIYO_API_KEY: KLAVIYO_KEY,
          LOG_LEVEL: 'trace',
        },
        false,
      );
      return { queues, url: `http://127.0.0.1:${worker.port}`, worker };
    };
    const outputs: string[] = [];
    try {
      // Both upstreams reject the worker's credentials: work pauses, readiness names which.
      gladly.setCredentials(GLADLY_USER, 'rotated-elsewhere');
      klaviyo.setApiKey('pk_rotated_elsewhere');
      const first = await start();
      await first.queues.transitions.add('transition', transition('evt-1', '2026-11-20T10:00:00Z'), {
        jobId: transitionJobId('evt-1'),
      });
      const direct = {
        ...transition('evt-0', '2026-11-20T09:00:00Z'),
        email: EMAIL,
        resolvedCustomerId: 'cust-1',
      };
      await first.queues.deliveries.add('deliver', direct, {
        jobId: deliveryJobId('evt-0', EMAIL, 'secrets-test-key'),
      });
      const readyz = async () => (await fetch(`${first.url}/readyz`)).text();
      await waitFor(async () => /gladly/.test(await readyz()) && /klaviyo/.test(await readyz()), {
        timeoutMs: 15_000,
        what: 'both credentials reported rejected',
      });
      const notReady = await readyz();
      await first.worker.stop();
      outputs.push(first.worker.output());

      // Accepted again, through 500s, a dropped connection and a 503; then a permanent 400.
      gladly.setCredentials(GLADLY_USER, GLADLY_TOKEN);
      klaviyo.setApiKey(KLAVIYO_KEY);
      const second = await start();
      gladly.injectFaults({ status: 500 }, { drop: true });
      klaviyo.injectFaults({ status: 500 }, { drop: true }, { status: 503 });
      await second.queues.transitions.add('transition', transition('evt-2', '2026-11-20T11:00:00Z'), {
        jobId: transitionJobId('evt-2'),
      });
      await waitFor(() => klaviyo.events.length === 1, { timeoutMs: 30_000, what: 'the event' });
      klaviyo.injectFaults({ status: 400 });
      await second.queues.transitions.add('transition', transition('evt-3', '2026-11-20T12:00:00Z'), {
        jobId: transitionJobId('evt-3'),
      });
      await waitFor(async () => (await second.queues.deliveries.getFailedCount()) === 1, {
        timeoutMs: 30_000,
        what: 'the refused delivery',
      });
      const [failed] = await second.queues.deliveries.getFailed();
      const metrics = await (await fetch(`${second.url}/metrics`)).text();
      await second.worker.stop();
      outputs.push(second.worker.output());

      expect(notReady).toMatch(/gladly/);
      expect(notReady).toMatch(/klaviyo/);
      expect(failed?.failedReason).toMatch(/klaviyo 400/);
      const shown = [notReady, metrics, failed?.failedReason ?? '', ...(failed?.stacktrace ?? [])];
      for (const text of shown) {
        for (const secret of SECRETS) expect(text.includes(secret)).toBe(false);
        expect(text.includes(EMAIL)).toBe(false);
      }
      const output = outputs.join('\n');
      // Every path above was logged (so the check below looked at it).
      for (const msg of [
        'gladly rejected the API credentials',
        'klaviyo rejected the API key',
        'gladly lookup failed; will retry',
        'klaviyo delivery failed; will retry',
        'klaviyo refused the event permanently',
        'delivered to klaviyo',
      ])
        expect(output).toContain(msg);
      expect(findLogLeaks('worker', output, { secrets: SECRETS })).toEqual([]);
    } finally {
      await worker?.kill();
      for (const queues of opened) await closeQueues(queues);
      connection.disconnect();
      await Promise.all([gladly.close(), klaviyo.close()]);
    }
  }, 120_000);
});
