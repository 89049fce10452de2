import { METRIC_PREFIX } from '@gk/runtime';
import { Counter, Histogram, type Registry } from 'prom-client';

export interface BulkMetrics {
  /** Bulk Create Events requests, by how Klaviyo answered (delivered, rate_limited, auth, retryable, permanent). */
  requests: Counter<'outcome'>;
  /** Events per accepted bulk request. */
  events: Histogram;
}

const OUTCOMES = ['delivered', 'rate_limited', 'auth', 'retryable', 'permanent'] as const;

export function createBulkMetrics(registry: Registry): BulkMetrics {
  const requests = new Counter({
    name: `${METRIC_PREFIX}klaviyo_bulk_requests_total`,
    help: `Bulk Create Events requests, by outcome (${OUTCOMES.join(', ')}); a refused request is bisected`,
    labelNames: ['outcome'],
    registers: [registry],
  });
  for (const outcome of OUTCOMES) requests.inc({ outcome }, 0);
  const events = new Histogram({
    name: `${METRIC_PREFIX}klaviyo_bulk_events_per_request`,
    help: 'Events carried by each bulk request Klaviyo accepted (202)',
    buckets: [1, 10, 50, 100, 250, 500, 1000],
    registers: [registry],
  });
  return { requests, events };
}
