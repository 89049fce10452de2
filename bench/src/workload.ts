import {
  closeQueues,
  createQueues,
  createWorkerConnection,
  type DeliveryJobData,
  deliveryJobId,
} from '@gk/queue';
import { sleep } from '@gk/testing';

export const GLADLY_USER = 'bench-api-user@example.com';
export const GLADLY_TOKEN = `gladly-bench-${Math.random().toString(36).slice(2, 10)}`;
export const KLAVIYO_KEY = `pk_bench_${Math.random().toString(36).slice(2, 10)}`;

/** One delivery for a distinct email, as the transitions processor would have fanned it out. */
export function deliveryData(tag: string, i: number): DeliveryJobData {
  const at = new Date(Date.UTC(2026, 10, 20, 14, 0, 0) + i * 1000).toISOString();
  return {
    eventId: `${tag}-evt-${i}`,
    kind: i % 2 === 0 ? 'started' : 'closed',
    gladlyType: i % 2 === 0 ? 'CONVERSATION/CREATED' : 'CONVERSATION/CLOSED',
    customerId: `${tag}-cust-${i}`,
    conversationId: `${tag}-conv-${i}`,
    occurredAt: at,
    receivedAt: at,
    email: `${tag}.customer${i}@example.com`,
    resolvedCustomerId: `${tag}-cust-${i}`,
  };
}

/** Adds `count` deliveries to the `deliveries` queue under `prefix`, with the contract's ids and options. */
export async function preloadDeliveries(
  redisUrl: string,
  prefix: string,
  tag: string,
  count: number,
): Promise<void> {
  const connection = createWorkerConnection({ url: redisUrl }, 'bench-preload');
  const queues = createQueues(connection, prefix);
  try {
    for (let start = 0; start < count; start += 500) {
      const jobs = [];
      for (let i = start; i < Math.min(count, start + 500); i += 1) {
        const data = deliveryData(tag, i);
        jobs.push({
          name: 'deliver',
          data,
          opts: { jobId: deliveryJobId(data.eventId, data.email, 'bench-pseudonym-key') },
        });
      }
      await queues.deliveries.addBulk(jobs);
    }
  } finally {
    await closeQueues(queues);
    await connection.quit();
  }
}

/** Polls until `done()` or the deadline; throws naming `what` on timeout. */
export async function until(done: () => boolean, timeoutMs: number, what: string): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!done()) {
    if (Date.now() > deadline) throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}`);
    await sleep(50);
  }
}

export interface ScheduledWebhook {
  id: string;
  type: 'CONVERSATION/CREATED' | 'CONVERSATION/CLOSED';
  customerId: string;
}

/**
 * The schedule: slot s at s/rate seconds. Even slots open a conversation for a new customer, odd
 * slots close one opened about a second earlier (the first second's closes go to customers whose
 * conversation opens later in the run), so every customer gets one create and one close. Ids and
 * customers carry `tag`, so a warm-up and the measured run never share one.
 */
export function schedule(total: number, ratePerSecond: number, tag = 'e2e'): ScheduledWebhook[] {
  const customers = Math.ceil(total / 2);
  const lag = Math.min(customers, Math.max(1, Math.round(ratePerSecond / 2)));
  const out: ScheduledWebhook[] = [];
  for (let s = 0; s < total; s += 1) {
    const k = Math.floor(s / 2);
    if (s % 2 === 0) {
      out.push({ id: `${tag}-open-${k}`, type: 'CONVERSATION/CREATED', customerId: `${tag}-c${k}` });
    } else {
      const c = (k - lag + customers) % customers;
      out.push({ id: `${tag}-close-${c}`, type: 'CONVERSATION/CLOSED', customerId: `${tag}-c${c}` });
    }
  }
  return out;
}

/** One customer in four has two addresses, so the fan-out is exercised too. */
export function emailsOf(customerId: string): string[] {
  const k = Number(/(\d+)$/.exec(customerId)?.[1] ?? 0);
  const first = `${customerId}@example.com`;
  return k % 4 === 0 ? [first, `${customerId}.work@example.org`] : [first];
}
