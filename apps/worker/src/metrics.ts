import { METRIC_PREFIX } from '@gk/runtime';
import { Counter, Histogram, type Registry } from 'prom-client';

export interface WorkerMetrics {
  transitions: Counter<'outcome'>;
  deliveries: Counter<'outcome'>;
  invalidEmails: Counter;
  upstreamDuration: Histogram<'upstream' | 'status_class'>;
  throttled: Counter<'upstream'>;
  lag: Histogram;
}

/** `status_class` is 2xx/3xx/4xx/5xx, or `error` when no answer came (timeout, reset). */
export function statusClass(status: number | undefined): string {
  return status === undefined ? 'error' : `${Math.floor(status / 100)}xx`;
}

export function createWorkerMetrics(registry: Registry): WorkerMetrics {
  const p = METRIC_PREFIX;
  return {
    transitions: new Counter({
      name: `${p}transitions_total`,
      help: 'Transitions processed, by outcome (fanned_out, customer_not_found, no_email, retried, throttled, credentials_rejected)',
      labelNames: ['outcome'],
      registers: [registry],
    }),
    deliveries: new Counter({
      name: `${p}deliveries_total`,
      help: 'Klaviyo deliveries, by outcome (delivered, delivered_backfill, failed_permanent, retried, throttled, credentials_rejected, waited_for_lease)',
      labelNames: ['outcome'],
      registers: [registry],
    }),
    invalidEmails: new Counter({
      name: `${p}invalid_emails_skipped_total`,
      help: 'Customer email entries skipped because they are not valid addresses',
      registers: [registry],
    }),
    upstreamDuration: new Histogram({
      name: `${p}upstream_request_duration_seconds`,
      help: 'Gladly and Klaviyo request durations, by upstream and status class',
      labelNames: ['upstream', 'status_class'],
      buckets: [0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10],
      registers: [registry],
    }),
    throttled: new Counter({
      name: `${p}upstream_throttled_total`,
      help: '429 answers received, by upstream',
      labelNames: ['upstream'],
      registers: [registry],
    }),
    lag: new Histogram({
      name: `${p}delivery_lag_seconds`,
      help: "Time from Gladly's event timestamp to Klaviyo's 202",
      buckets: [0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 300, 1800, 3600, 86400],
      registers: [registry],
    }),
  };
}
