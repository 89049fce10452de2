import { deadLetterPath, readDeadLetters } from '@gk/queue';
import { METRIC_PREFIX } from '@gk/runtime';
import { Counter, Gauge, type Registry } from 'prom-client';
import type { Spool } from './spool.js';

export interface SpoolMetrics {
  spooled: Counter<'queue'>;
  relayed: Counter<'queue' | 'outcome'>;
  spoolRejected: Counter<'reason'>;
  deadLettered: Counter<'queue' | 'reason'>;
  ioErrors: Counter<'op'>;
}

/** The spool's series; depth, capacity and dead-letter entries are read on each scrape. */
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
  new Gauge({
    name: `${METRIC_PREFIX}spool_dead_letter_entries`,
    help: 'Spool entries in the dead-letter file beside the spool (the relay gave up on them): see npm run jobs -- spool list',
    registers: [registry],
    async collect() {
      if (!spool) return this.set(0);
      const file = await readDeadLetters(deadLetterPath(spool.path)).catch(() => null);
      if (file) this.set(file.entries.length + file.damaged);
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
    help: 'Webhook jobs the spool could not take (full: INGEST_SPOOL_MAX reached; error: the file could not be written); each was then tried in Redis, and answered 503 only when Redis did not store it either',
    labelNames: ['reason'] as const,
    registers: [registry],
  });
  const deadLettered = new Counter({
    name: `${METRIC_PREFIX}spool_dead_lettered_total`,
    help: 'Spool entries moved to the dead-letter file, by queue and reason (unreadable: this version cannot read or map it; rejected: Redis refused it with a non-connection error)',
    labelNames: ['queue', 'reason'] as const,
    registers: [registry],
  });
  const ioErrors = new Counter({
    name: `${METRIC_PREFIX}spool_io_errors_total`,
    help: 'Spool file operations that failed (append, peek, mark, dead_letter), each caught, logged and retried',
    labelNames: ['op'] as const,
    registers: [registry],
  });
  for (const reason of ['full', 'error']) spoolRejected.inc({ reason }, 0);
  for (const op of ['append', 'peek', 'mark', 'dead_letter']) ioErrors.inc({ op }, 0);
  return { spooled, relayed, spoolRejected, deadLettered, ioErrors };
}
