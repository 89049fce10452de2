import { METRIC_PREFIX } from '@gk/runtime';
import { Counter, Gauge, type Registry } from 'prom-client';
import type { Spool } from './spool.js';

export interface SpoolMetrics {
  spooled: Counter<'queue'>;
  relayed: Counter<'queue' | 'outcome'>;
  spoolRejected: Counter<'reason'>;
}

/** The spool's series; `gk_spool_depth` and `gk_spool_capacity` are read on each scrape. */
export function createSpoolMetrics(registry: Registry, spool: Spool | null): SpoolMetrics {
  new Gauge({
    name: `${METRIC_PREFIX}spool_depth`,
    help: 'Webhook jobs in this ingest’s local spool, waiting to be relayed to Redis (each replica has its own spool: aggregate with sum)',
    registers: [registry],
    collect() {
      this.set(spool?.depth ?? 0);
    },
  });
  new Gauge({
    name: `${METRIC_PREFIX}spool_capacity`,
    help: 'Entries the spool holds at most (INGEST_SPOOL_MAX; 0 when the spool is off); once full, webhooks Redis cannot store are answered 503',
    registers: [registry],
    collect() {
      this.set(spool?.maxEntries ?? 0);
    },
  });
  const spooled = new Counter({
    name: `${METRIC_PREFIX}spool_spooled_total`,
    help: 'Webhook jobs written to the local spool (Redis did not store them, or older entries were still waiting), by queue',
    labelNames: ['queue'] as const,
    registers: [registry],
  });
  const relayed = new Counter({
    name: `${METRIC_PREFIX}spool_relayed_total`,
    help: 'Spooled jobs Redis acknowledged, by queue and outcome (accepted: new; duplicate: the job id was already there)',
    labelNames: ['queue', 'outcome'] as const,
    registers: [registry],
  });
  const spoolRejected = new Counter({
    name: `${METRIC_PREFIX}spool_rejected_total`,
    help: 'Webhook jobs the spool could not take (full: INGEST_SPOOL_MAX reached; error: the file could not be written); each was answered 503',
    labelNames: ['reason'] as const,
    registers: [registry],
  });
  for (const reason of ['full', 'error']) spoolRejected.inc({ reason }, 0);
  return { spooled, relayed, spoolRejected };
}
