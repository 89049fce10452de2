import type { DrainBenchResult } from './drain-bench.js';
import type { EndToEndResult } from './e2e-bench.js';
import type { IngestBenchResult } from './ingest-bench.js';
import type { OutageBenchResult } from './outage-bench.js';
import type { RateLimitResult } from './rate-limit-bench.js';
import type { WorkerBenchResult } from './worker-bench.js';

export interface BenchResults {
  ingest?: IngestBenchResult;
  worker?: WorkerBenchResult;
  endToEnd?: EndToEndResult;
  rateLimit?: RateLimitResult;
  drain?: DrainBenchResult;
  outage?: OutageBenchResult;
}

/** One line of the table; `met` is absent for figures that are reported without a goal. */
export interface Row {
  figure: string;
  value: string;
  baseline: string;
  ratio: string;
  goal: string;
  met?: boolean;
}

export const GOALS = {
  ingestThroughputRatio: 0.8,
  ingestP99Ratio: 2,
  workerRatio: 0.8,
  endToEndP99Ms: 100,
  rateTolerance: 0.05,
  rateBurstFactor: 2,
  peakRssBytes: 200 * 1024 * 1024,
  /** The ingest's CPU per webhook against the bare handler's (log line and durability kept). */
  ingestCpuRatio: 3,
  drainRatio: 10,
  outageRecoverySeconds: 15,
} as const;

const n = (v: number, digits = 0) =>
  Number.isFinite(v)
    ? v.toLocaleString('en-US', { maximumFractionDigits: digits, minimumFractionDigits: digits })
    : 'n/a';
const mb = (bytes: number | null) => (bytes === null ? 'n/a' : `${n(bytes / (1024 * 1024), 0)} MB`);
const x = (ratio: number) => `${n(ratio, 2)}×`;

const ingestCpuRatio = (i: IngestBenchResult): number =>
  (i.ingest.serverCpuMicrosPerRequest ?? Number.NaN) / (i.bare.serverCpuMicrosPerRequest ?? Number.NaN);

/** The table rows, each figure with its baseline, ratio and goal. */
export function rows(results: BenchResults, phaseErrors: Record<string, string>): Row[] {
  const out: Row[] = [];
  const { ingest, worker, endToEnd: e2e, rateLimit: rate } = results;
  for (const [phase, message] of Object.entries(phaseErrors)) {
    out.push({
      figure: `${phase} benchmark`,
      value: `failed: ${message}`,
      baseline: '',
      ratio: '',
      goal: 'runs',
      met: false,
    });
  }
  if (ingest) {
    out.push(
      {
        figure: `Ingest throughput (req/s, ${ingest.connections} connections)`,
        value: n(ingest.ingest.requestsPerSecond),
        baseline: `${n(ingest.bare.requestsPerSecond)} (bare Express 5)`,
        ratio: x(ingest.throughputRatio),
        goal: `≥ ${GOALS.ingestThroughputRatio}×`,
        met: ingest.throughputRatio >= GOALS.ingestThroughputRatio,
      },
      {
        figure: 'Ingest latency p50 (ms)',
        value: n(ingest.ingest.latencyMs.p50, 2),
        baseline: n(ingest.bare.latencyMs.p50, 2),
        ratio: x(ingest.ingest.latencyMs.p50 / ingest.bare.latencyMs.p50),
        goal: '',
      },
      {
        figure: 'Ingest latency p99 (ms)',
        value: n(ingest.ingest.latencyMs.p99, 2),
        baseline: n(ingest.bare.latencyMs.p99, 2),
        ratio: x(ingest.p99Ratio),
        goal: `≤ ${GOALS.ingestP99Ratio}×`,
        met: ingest.p99Ratio <= GOALS.ingestP99Ratio,
      },
      {
        figure: 'Ingest CPU per request (µs, server process only)',
        value: n(ingest.ingest.serverCpuMicrosPerRequest ?? Number.NaN),
        baseline: n(ingest.bare.serverCpuMicrosPerRequest ?? Number.NaN),
        ratio: x(ingestCpuRatio(ingest)),
        goal: `≤ ${GOALS.ingestCpuRatio}×`,
        met: ingestCpuRatio(ingest) <= GOALS.ingestCpuRatio,
      },
      {
        figure: 'Ingest 200s stored as jobs (non-2xx answers)',
        value: `${n(ingest.storedJobs)} jobs for ${n(ingest.acceptedAnswers)} × 200 (${n(ingest.ingest.non2xx + ingest.ingest.errors)})`,
        baseline: '',
        ratio: '',
        goal: 'every 200 stored, no errors',
        met:
          ingest.storedJobs >= ingest.acceptedAnswers &&
          ingest.ingest.non2xx === 0 &&
          ingest.ingest.errors === 0,
      },
    );
  }
  if (worker) {
    out.push({
      figure: `Worker delivery rate (deliveries/s, concurrency ${worker.concurrency}, limiters lifted)`,
      value: n(worker.bridge.deliveriesPerSecond),
      baseline: `${n(worker.baseline.deliveriesPerSecond)} (BullMQ worker that only POSTs)`,
      ratio: x(worker.ratio),
      goal: `≥ ${GOALS.workerRatio}×`,
      met: worker.ratio >= GOALS.workerRatio,
    });
    out.push({
      figure: 'Worker CPU per delivery (µs, worker process only)',
      value: n(worker.bridge.cpuMicrosPerDelivery),
      baseline: n(worker.baseline.cpuMicrosPerDelivery),
      ratio: x(worker.bridge.cpuMicrosPerDelivery / worker.baseline.cpuMicrosPerDelivery),
      goal: '',
    });
    out.push({
      figure: 'Redis server CPU per delivery (µs)',
      value: n(worker.bridge.redisCpuMicrosPerDelivery),
      baseline: n(worker.baseline.redisCpuMicrosPerDelivery),
      ratio: x(worker.bridge.redisCpuMicrosPerDelivery / worker.baseline.redisCpuMicrosPerDelivery),
      goal: '',
    });
  }
  if (e2e) {
    const complete =
      e2e.deliveriesReceived === e2e.deliveriesExpected &&
      e2e.webhooksFailed === 0 &&
      e2e.webhooksAccepted === e2e.webhooksSent;
    out.push(
      {
        figure: `End-to-end latency, ingest 200 → Klaviyo 202 (ms; ${e2e.ratePerSecond} webhooks/s × ${e2e.durationSeconds} s, after ${e2e.warmupSeconds} s warm-up)`,
        value: `p50 ${n(e2e.latencyMs.p50, 1)} / p99 ${n(e2e.latencyMs.p99, 1)} / max ${n(e2e.latencyMs.max, 1)}`,
        baseline: '',
        ratio: '',
        goal: `p99 < ${GOALS.endToEndP99Ms} ms`,
        met: e2e.latencyMs.p99 < GOALS.endToEndP99Ms,
      },
      {
        figure: 'End-to-end: deliveries received / expected (webhooks not answered 200)',
        value: `${n(e2e.deliveriesReceived)} / ${n(e2e.deliveriesExpected)} (${n(e2e.webhooksFailed)})`,
        baseline: '',
        ratio: '',
        goal: 'all',
        met: complete,
      },
    );
  }
  if (rate) {
    const ratio = rate.profile.meanPerSecond / rate.limitPerSecond;
    out.push(
      {
        figure: `Rate-limit fidelity: mean rate over the drain (${n(rate.backlog)} deliveries, ${rate.workers} workers)`,
        value: `${n(rate.profile.meanPerSecond, 2)}/s over ${n(rate.profile.seconds, 1)} s`,
        baseline: `limit ${rate.limitPerSecond}/s`,
        ratio: x(ratio),
        goal: `within ±${GOALS.rateTolerance * 100}%`,
        met: Math.abs(rate.deviation) <= GOALS.rateTolerance && rate.delivered >= rate.backlog,
      },
      {
        figure: 'Rate-limit fidelity: busiest wall-clock second (busiest sliding 1 s)',
        value: `${rate.profile.maxInOneSecond} (${rate.profile.maxInAnyWindow})`,
        baseline: `limit ${rate.limitPerSecond}/s`,
        ratio: x(rate.profile.maxInOneSecond / rate.limitPerSecond),
        goal: `≤ ${GOALS.rateBurstFactor}×`,
        met: rate.profile.maxInOneSecond <= GOALS.rateBurstFactor * rate.limitPerSecond,
      },
      {
        figure: `Rate-limit fidelity: 429s (stand-in at Klaviyo's ${n(rate.standInLimit.steadyPerSecond, 1)}/s steady, ${rate.standInLimit.burst} burst)`,
        value: n(rate.throttled),
        baseline: '',
        ratio: '',
        goal: '0',
        met: rate.throttled === 0,
      },
    );
  }
  const peak = (...values: (number | null | undefined)[]) => {
    const known = values.filter((v): v is number => typeof v === 'number');
    return known.length ? Math.max(...known) : null;
  };
  const ingestRss = peak(ingest?.ingestPeakRssBytes, e2e?.ingestPeakRssBytes);
  const workerRss = peak(worker?.workerPeakRssBytes, e2e?.workerPeakRssBytes, rate?.workerPeakRssBytes);
  if (ingest || e2e) {
    out.push({
      figure: 'Peak RSS, ingest (under the loads above)',
      value: mb(ingestRss),
      baseline: ingest ? `${mb(ingest.barePeakRssBytes)} (bare Express 5 under the ingest load)` : '',
      ratio: '',
      goal: `< ${mb(GOALS.peakRssBytes)}`,
      met: ingestRss !== null && ingestRss < GOALS.peakRssBytes,
    });
  }
  if (worker || e2e || rate) {
    out.push({
      figure: 'Peak RSS, worker (under the loads above)',
      value: mb(workerRss),
      baseline: worker ? `${mb(worker.baselinePeakRssBytes)} (baseline worker under the same drain)` : '',
      ratio: '',
      goal: `< ${mb(GOALS.peakRssBytes)}`,
      met: workerRss !== null && workerRss < GOALS.peakRssBytes,
    });
  }
  if (e2e) {
    const b = e2e.redisMemory.breakdown;
    out.push(
      {
        figure: 'Redis memory per retained completed transition (job hash + completed-set entry)',
        value: `${n(b.transition.bytesPerItem)} B`,
        baseline: '',
        ratio: '',
        goal: '',
      },
      {
        figure: 'Redis memory per retained completed delivery (job hash + completed-set entry)',
        value: `${n(b.delivery.bytesPerItem)} B`,
        baseline: '',
        ratio: '',
        goal: '',
      },
      {
        figure: 'Redis memory per email ordering mark (kept 30 days)',
        value: `${n(b.emailState.bytesPerItem)} B`,
        baseline: '',
        ratio: '',
        goal: '',
      },
      {
        figure: 'Redis INFO used_memory growth per transition (with its deliveries, marks, event streams)',
        value: `${n(e2e.redisMemory.bytesPerTransitionWithDeliveries)} B`,
        baseline: '',
        ratio: '',
        goal: '',
      },
      {
        figure: 'Gladly lookups per transition (create + close pairs)',
        value: n(e2e.gladlyLookupsPerTransition, 2),
        baseline: '1.00 (one lookup each, no cache)',
        ratio: x(e2e.gladlyLookupsPerTransition),
        goal: '',
      },
    );
  }
  if (results.drain) out.push(...drainRows(results.drain));
  if (results.outage) out.push(...outageRows(results.outage));
  return out;
}

function drainRows(d: DrainBenchResult): Row[] {
  return [
    {
      figure: `Backlog drain under Klaviyo's limits (events/s; auto over ${n(d.backlog)} deliveries, single over its first ${d.single.measuredSeconds} s)`,
      value: `${n(d.auto.eventsPerSecond)} (auto: ${n(d.auto.bulkRequests)} bulk + ${n(d.auto.singleRequests)} single requests, ${n(d.auto.seconds, 1)} s)`,
      baseline: `${n(d.single.eventsPerSecond, 1)} (single)`,
      ratio: x(d.ratio),
      goal: `≥ ${GOALS.drainRatio}×`,
      met: d.ratio >= GOALS.drainRatio,
    },
    {
      figure: 'Peak RSS, worker (draining the backlog in auto)',
      value: mb(d.auto.workerPeakRssBytes),
      baseline: '',
      ratio: '',
      goal: `< ${mb(GOALS.peakRssBytes)}`,
      met: d.auto.workerPeakRssBytes !== null && d.auto.workerPeakRssBytes < GOALS.peakRssBytes,
    },
  ];
}

function outageRows(o: OutageBenchResult): Row[] {
  const complete = o.missing === 0 && o.wrongFinalStates === 0;
  return [
    {
      figure: `Outage recovery: last event of a ${o.outageSeconds} s Klaviyo outage at ${o.ratePerSecond} webhooks/s in Klaviyo after recovery (s)`,
      value: `${n(o.recoverySeconds, 1)} (${n(o.outageDeliveries)} deliveries; ${n(o.requestsDuringOutage)} requests during the outage)`,
      baseline: '',
      ratio: '',
      goal: `≤ ${GOALS.outageRecoverySeconds} s`,
      met: o.recoverySeconds <= GOALS.outageRecoverySeconds && o.missing === 0,
    },
    {
      figure: 'Outage: final profile states right (newest transition per address)',
      value: `${n(o.profilesChecked - o.wrongFinalStates)} of ${n(o.profilesChecked)}; ${n(o.missing)} deliveries missing`,
      baseline: '',
      ratio: '',
      goal: 'all',
      met: complete,
    },
    {
      figure: 'Peak RSS during the outage and recovery (ingest / worker)',
      value: `${mb(o.ingestPeakRssBytes)} / ${mb(o.workerPeakRssBytes)}`,
      baseline: '',
      ratio: '',
      goal: `< ${mb(GOALS.peakRssBytes)}`,
      met:
        (o.ingestPeakRssBytes ?? Number.POSITIVE_INFINITY) < GOALS.peakRssBytes &&
        (o.workerPeakRssBytes ?? Number.POSITIVE_INFINITY) < GOALS.peakRssBytes,
    },
  ];
}

export function markdownTable(table: Row[]): string {
  const lines = ['| figure | bridge | baseline | ratio | goal | met |', '|---|---|---|---|---|---|'];
  for (const r of table) {
    const met = r.met === undefined ? '' : r.met ? 'yes' : '**no**';
    lines.push(`| ${r.figure} | ${r.value} | ${r.baseline} | ${r.ratio} | ${r.goal} | ${met} |`);
  }
  return lines.join('\n');
}
