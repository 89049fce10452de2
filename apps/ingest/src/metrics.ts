import type { BridgeQueues } from '@gk/queue';
import { METRIC_PREFIX, withTimeout } from '@gk/runtime';
import { Counter, Gauge, Histogram, type Registry } from 'prom-client';

export type WebhookOutcome =
  | 'accepted'
  | 'duplicate'
  | 'spooled'
  | 'ignored'
  | 'pong'
  | 'rejected_auth'
  | 'rejected_invalid'
  | 'rejected_media_type'
  | 'rejected_too_large'
  | 'unavailable'
  | 'error';

const PRE_BODY_REJECTIONS: readonly WebhookOutcome[] = [
  'rejected_auth',
  'rejected_media_type',
  'rejected_too_large',
  'rejected_invalid',
];

/**
 * Queue states reported on each scrape. BullMQ 6 has no `paused` job state: a paused queue's jobs
 * stay `waiting`, and whether the queue is paused is `gk_queue_paused`.
 */
const QUEUE_STATES = ['waiting', 'active', 'delayed', 'prioritized', 'failed', 'completed'] as const;

export interface IngestMetrics {
  webhooksReceived: Counter<'type' | 'outcome'>;
  requestDuration: Histogram<'method' | 'route' | 'status_code'>;
}

export function createIngestMetrics(
  registry: Registry,
  queues: BridgeQueues,
  scrapeTimeoutMs = 1_000,
): IngestMetrics {
  const webhooksReceived = new Counter({
    name: `${METRIC_PREFIX}webhooks_received_total`,
    help: 'Gladly webhooks received, by Gladly event type and outcome (accepted, duplicate, spooled: 200 with the job in the local spool while Redis is down; ignored, pong; rejected_auth 401, rejected_invalid 400, rejected_media_type 415, rejected_too_large 413; unavailable 503: Redis down and the spool full or off; error 500)',
    labelNames: ['type', 'outcome'] as const,
    registers: [registry],
  });
  // Rejections before the body is read carry type "unknown": start those series at 0 so an
  // alert's increase() sees the first 401 of a spike too.
  for (const outcome of PRE_BODY_REJECTIONS) webhooksReceived.inc({ type: 'unknown', outcome }, 0);
  const requestDuration = new Histogram({
    name: `${METRIC_PREFIX}ingest_request_duration_seconds`,
    help: 'Time from request to answer, by route',
    labelNames: ['method', 'route', 'status_code'] as const,
    buckets: [0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 1.5, 2, 5],
    registers: [registry],
  });
  new Gauge({
    name: `${METRIC_PREFIX}queue_jobs`,
    help: 'Jobs per queue and state, read from Redis on each scrape (absent while Redis is unreachable); every ingest replica reports the same counts, so aggregate with max',
    labelNames: ['queue', 'state'] as const,
    registers: [registry],
    async collect() {
      this.reset();
      await Promise.all(
        Object.values(queues).map(async (queue) => {
          try {
            const counts = await withTimeout<Record<string, number>>(
              queue.getJobCounts(...QUEUE_STATES),
              scrapeTimeoutMs,
              'queue counts timed out',
            );
            for (const state of QUEUE_STATES) this.set({ queue: queue.name, state }, counts[state] ?? 0);
          } catch {
            // Redis unreachable: leave the series out rather than report a made-up zero.
          }
        }),
      );
    },
  });
  new Gauge({
    name: `${METRIC_PREFIX}queue_paused`,
    help: '1 while the queue is paused (by an operator, e.g. from the dashboard; a 429 or a rejected key rate-limits the queue instead), read from Redis on each scrape',
    labelNames: ['queue'] as const,
    registers: [registry],
    async collect() {
      this.reset();
      await Promise.all(
        Object.values(queues).map(async (queue) => {
          try {
            const paused = await withTimeout(queue.isPaused(), scrapeTimeoutMs, 'queue state timed out');
            this.set({ queue: queue.name }, paused ? 1 : 0);
          } catch {
            // Redis unreachable: no sample, as above.
          }
        }),
      );
    },
  });
  return { webhooksReceived, requestDuration };
}
