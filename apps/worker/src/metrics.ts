import { QueueName } from '@gk/queue';
import { METRIC_PREFIX } from '@gk/runtime';
import { Counter, Gauge, Histogram, type Registry } from 'prom-client';

export type Upstream = 'gladly' | 'klaviyo';
const UPSTREAMS: readonly Upstream[] = ['gladly', 'klaviyo'];

export const TRANSITION_OUTCOMES = [
  'fanned_out',
  'customer_not_found',
  'no_email',
  'retried',
  'throttled',
  'credentials_rejected',
] as const;
export type TransitionOutcome = (typeof TRANSITION_OUTCOMES)[number];

export const DELIVERY_OUTCOMES = [
  'delivered',
  'delivered_backfill',
  'failed_permanent',
  'retried',
  'throttled',
  'credentials_rejected',
  'waited_for_lease',
  'lease_lost',
  'skipped_no_profile',
  'breaker_open',
] as const;
export type DeliveryOutcome = (typeof DELIVERY_OUTCOMES)[number];

export interface WorkerMetrics {
  transitions: Counter<'outcome'>;
  deliveries: Counter<'outcome'>;
  /** Jobs that ended in the failed set (permanent error or attempts used up), by queue. */
  jobsFailed: Counter<'queue'>;
  invalidEmails: Counter;
  upstreamDuration: Histogram<'upstream' | 'status_class'>;
  throttled: Counter<'upstream'>;
  lag: Histogram;
  /** KLAVIYO_CREATE_PROFILES=false: profile checks answered, by source (cache, klaviyo) and result (exists, absent). */
  profileChecks: Counter<'source' | 'result'>;
  /** The Klaviyo breaker's transitions made by this process, by state entered, and the jobs its recoveries promoted. */
  breaker: { transitions: Counter<'to'>; promoted: Counter };
  customerCache: {
    hits: Counter;
    misses: Counter;
    /** Customer ids invalidated by a customer-change job. */
    invalidations: Counter;
    /** Lookups not stored because their customer was invalidated while they ran. */
    staleWritesSkipped: Counter;
  };
}

export interface WorkerMetricsOptions {
  /** Read on each scrape for `gk_upstream_credentials_rejected`. */
  credentialsRejected?: (upstream: Upstream) => boolean;
  /** Read on each scrape for `gk_profiles_stuck`; the gauge keeps its last value when it fails. */
  stuckProfiles?: () => Promise<number>;
  /** Read on each scrape for `gk_klaviyo_breaker_state` (absent: the breaker is off, the gauge says 0). */
  breakerState?: () => Promise<'closed' | 'open' | 'half_open'>;
}

/** `status_class` is 2xx/3xx/4xx/5xx, or `error` when no answer came (timeout, reset). */
export function statusClass(status: number | undefined): string {
  return status === undefined ? 'error' : `${Math.floor(status / 100)}xx`;
}

/**
 * The worker's metrics. Every known label value starts at 0, so a series exists from the first
 * scrape and `increase()`/`rate()` see the first event too (Prometheus cannot rate a series that
 * appears with its first increment already in it).
 */
export function createWorkerMetrics(registry: Registry, options: WorkerMetricsOptions = {}): WorkerMetrics {
  const p = METRIC_PREFIX;
  const transitions = new Counter({
    name: `${p}transitions_total`,
    help: `Transition jobs processed, by outcome (${TRANSITION_OUTCOMES.join(', ')})`,
    labelNames: ['outcome'],
    registers: [registry],
  });
  const deliveries = new Counter({
    name: `${p}deliveries_total`,
    help: `Klaviyo delivery attempts, by outcome (${DELIVERY_OUTCOMES.join(', ')})`,
    labelNames: ['outcome'],
    registers: [registry],
  });
  const jobsFailed = new Counter({
    name: `${p}jobs_failed_total`,
    help: 'Jobs moved to the failed set (permanent error or attempts used up), by queue; retry them with `npm run jobs -- retry`',
    labelNames: ['queue'],
    registers: [registry],
  });
  const throttled = new Counter({
    name: `${p}upstream_throttled_total`,
    help: '429 answers received, by upstream',
    labelNames: ['upstream'],
    registers: [registry],
  });
  const credentialsRejected = options.credentialsRejected;
  new Gauge({
    name: `${p}upstream_credentials_rejected`,
    help: '1 while the upstream rejects our credentials (401/403; work pauses until they are fixed), else 0',
    labelNames: ['upstream'],
    registers: [registry],
    collect() {
      for (const upstream of UPSTREAMS) this.set({ upstream }, credentialsRejected?.(upstream) ? 1 : 0);
    },
  });
  const stuckProfiles = options.stuckProfiles;
  if (stuckProfiles) {
    new Gauge({
      name: `${p}profiles_stuck`,
      help: 'Addresses the bridge holds "in conversation" for longer than STUCK_AFTER_DAYS (list and close them: npm run jobs -- profiles stuck)',
      registers: [registry],
      async collect() {
        try {
          this.set(await stuckProfiles());
        } catch {
          // Redis away: /readyz says so; the gauge keeps its last value.
        }
      },
    });
  }
  for (const outcome of TRANSITION_OUTCOMES) transitions.inc({ outcome }, 0);
  for (const outcome of DELIVERY_OUTCOMES) deliveries.inc({ outcome }, 0);
  for (const queue of Object.values(QueueName)) jobsFailed.inc({ queue }, 0);
  for (const upstream of UPSTREAMS) throttled.inc({ upstream }, 0);
  const profileChecks = new Counter({
    name: `${p}klaviyo_profile_checks_total`,
    help: 'With KLAVIYO_CREATE_PROFILES=false: whether Klaviyo has a profile for a delivery\'s email, by source (cache, klaviyo) and result (exists, absent); absent ones are skipped (gk_deliveries_total{outcome="skipped_no_profile"})',
    labelNames: ['source', 'result'],
    registers: [registry],
  });
  for (const source of ['cache', 'klaviyo']) {
    for (const result of ['exists', 'absent']) profileChecks.inc({ source, result }, 0);
  }

  const breakerState = options.breakerState;
  new Gauge({
    name: `${p}klaviyo_breaker_state`,
    help: 'The Klaviyo outage breaker: 0 closed, 1 half-open (a probe is in flight), 2 open (deliveries pause until a probe succeeds)',
    registers: [registry],
    async collect() {
      try {
        const state = breakerState ? await breakerState() : 'closed';
        this.set(state === 'open' ? 2 : state === 'half_open' ? 1 : 0);
      } catch {
        // Redis away: the gauge keeps its last value.
      }
    },
  });
  const breakerTransitions = new Counter({
    name: `${p}klaviyo_breaker_transitions_total`,
    help: 'Klaviyo breaker transitions made by this process, by the state entered (open, half_open, closed)',
    labelNames: ['to'],
    registers: [registry],
  });
  for (const to of ['open', 'half_open', 'closed']) breakerTransitions.inc({ to }, 0);

  return {
    transitions,
    deliveries,
    breaker: {
      transitions: breakerTransitions,
      promoted: new Counter({
        name: `${p}klaviyo_breaker_promoted_jobs_total`,
        help: 'Delayed deliveries made ready at once when a probe found Klaviyo back (the breaker closed)',
        registers: [registry],
      }),
    },
    jobsFailed,
    throttled,
    profileChecks,
    invalidEmails: new Counter({
      name: `${p}invalid_emails_skipped_total`,
      help: 'Customer email entries skipped because they are not valid addresses',
      registers: [registry],
    }),
    upstreamDuration: new Histogram({
      name: `${p}upstream_request_duration_seconds`,
      help: 'Gladly and Klaviyo request durations, by upstream and status class (error: no answer)',
      labelNames: ['upstream', 'status_class'],
      buckets: [0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10],
      registers: [registry],
    }),
    lag: new Histogram({
      name: `${p}delivery_lag_seconds`,
      help: "End-to-end lag: from Gladly's event timestamp to Klaviyo's 202",
      buckets: [0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 300, 1800, 3600, 86400],
      registers: [registry],
    }),
    customerCache: {
      hits: new Counter({
        name: `${p}customer_cache_hits_total`,
        help: 'Transitions whose customer emails came from the cache (no Gladly lookup)',
        registers: [registry],
      }),
      misses: new Counter({
        name: `${p}customer_cache_misses_total`,
        help: 'Transitions that had to look the customer up in Gladly while the cache is on',
        registers: [registry],
      }),
      invalidations: new Counter({
        name: `${p}customer_cache_invalidations_total`,
        help: 'Customer ids whose cached lookup was dropped (CUSTOMER_PROFILE/UPDATED|DELETED, CUSTOMER/MERGED webhooks)',
        registers: [registry],
      }),
      staleWritesSkipped: new Counter({
        name: `${p}customer_cache_stale_writes_skipped_total`,
        help: 'Lookups not cached because their customer was invalidated while they ran',
        registers: [registry],
      }),
    },
  };
}
