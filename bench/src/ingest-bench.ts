import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { closeQueues, createQueues, createWorkerConnection } from '@gk/queue';
import { freePort } from '@gk/testing';
import autocannon from 'autocannon';
import { type BenchProcess, ROOT, SCRIPTS, startProcess } from './processes.js';
import { type LatencySummary, median, round, summarize } from './stats.js';

export interface LoadResult {
  requestsPerSecond: number;
  /** CPU time of the server process per answered request (from /proc), µs. */
  serverCpuMicrosPerRequest?: number;
  latencyMs: LatencySummary;
  ok: number;
  non2xx: number;
  errors: number;
}

export interface IngestBenchResult {
  connections: number;
  /** Measured seconds per target (all rounds). */
  durationSeconds: number;
  bare: LoadResult;
  ingest: LoadResult;
  /** ingest / bare. */
  /** Median over rounds of ingest/bare req/s (each ingest round against the bare round just before it). */
  throughputRatio: number;
  /** Per round: ingest / bare req/s. */
  roundThroughputRatios: number[];
  /** ingest p99 / bare p99. */
  p99Ratio: number;
  /** Per round: ingest p99 / bare p99. */
  roundP99Ratios: number[];
  /** Jobs found in Redis after the run, against the 200s the ingest answered (must be equal). */
  storedJobs: number;
  acceptedAnswers: number;
  ingestPeakRssBytes: number | null;
  /** The bare Express server's, under the same load. */
  barePeakRssBytes: number | null;
}

export interface IngestBenchOptions {
  redisUrl: string;
  logDir: string;
  connections: number;
  durationSeconds: number;
  warmupSeconds: number;
  /** Measured rounds per target, taken in turns. */
  rounds: number;
}

export const WEBHOOK_USER = 'gladly-bench';
export const WEBHOOK_PASSWORD = `bench-${Math.random().toString(36).slice(2, 12)}`;
export const WEBHOOK_AUTH_HEADER = `Basic ${Buffer.from(`${WEBHOOK_USER}:${WEBHOOK_PASSWORD}`).toString('base64')}`;

const FIXTURE = JSON.parse(
  readFileSync(join(ROOT, 'fixtures/gladly/conversation-created.json'), 'utf8'),
) as Record<string, unknown>;

/**
 * One autocannon run against `url`: authenticated, valid webhooks with a unique id each. The
 * latencies come from every single response (autocannon's own histogram keeps whole ms only).
 */
export async function loadWebhooks(
  url: string,
  options: { connections: number; durationSeconds: number; idPrefix: string },
): Promise<{ result: LoadResult; latencies: number[] }> {
  let n = 0;
  const latencies: number[] = [];
  const result = await new Promise<autocannon.Result>((resolve, reject) => {
    const instance = autocannon(
      {
        url,
        connections: options.connections,
        duration: options.durationSeconds,
        method: 'POST',
        headers: { 'content-type': 'application/json', authorization: WEBHOOK_AUTH_HEADER },
        requests: [
          {
            setupRequest: (req) => {
              n += 1;
              return { ...req, body: JSON.stringify({ ...FIXTURE, id: `${options.idPrefix}-${n}` }) };
            },
          },
        ],
      },
      (err: unknown, res: autocannon.Result) => (err ? reject(err) : resolve(res)),
    );
    instance.on('response', (_client, _status, _bytes, responseTime) => {
      latencies.push(responseTime);
    });
  });
  return {
    result: {
      requestsPerSecond: round(result.requests.total / result.duration, 1),
      latencyMs: roundSummary(summarize(latencies)),
      ok: result['2xx'],
      non2xx: result.non2xx,
      errors: result.errors,
    },
    latencies,
  };
}

function roundSummary(s: LatencySummary): LatencySummary {
  return {
    count: s.count,
    p50: round(s.p50, 3),
    p99: round(s.p99, 3),
    max: round(s.max, 3),
    mean: round(s.mean, 3),
  };
}

type Run = { result: LoadResult; latencies: number[]; cpuMs: number };

/** Pools the measured rounds of one target: the mean of their rates, their latencies together. */
function pool(runs: Run[]): LoadResult {
  const latencies = runs.flatMap((r) => r.latencies);
  const meanRate = runs.reduce((acc, r) => acc + r.result.requestsPerSecond, 0) / runs.length;
  const answered = runs.reduce((acc, r) => acc + r.result.ok + r.result.non2xx, 0);
  const cpuMs = runs.reduce((acc, r) => acc + r.cpuMs, 0);
  return {
    requestsPerSecond: round(meanRate, 1),
    serverCpuMicrosPerRequest: round((cpuMs * 1000) / answered, 0),
    latencyMs: roundSummary(summarize(latencies)),
    ok: runs.reduce((acc, r) => acc + r.result.ok, 0),
    non2xx: runs.reduce((acc, r) => acc + r.result.non2xx, 0),
    errors: runs.reduce((acc, r) => acc + r.result.errors, 0),
  };
}

/**
 * Ingest throughput and latency against a bare Express 5 handler, same machine, same load. Both
 * servers run side by side (the idle one costs nothing) and are loaded in turns, round after
 * round, so drift on a shared machine hits both alike. Afterwards every 200 the ingest gave must
 * be a job in Redis.
 */
export async function benchIngest(options: IngestBenchOptions): Promise<IngestBenchResult> {
  const prefix = 'bench-ingest';
  const barePort = await freePort();
  const port = await freePort();
  const bare = await startProcess({
    name: 'bare-express',
    script: SCRIPTS.bareServer,
    env: { PORT: String(barePort), HOST: '127.0.0.1' },
    logDir: options.logDir,
    readyUrl: `http://127.0.0.1:${barePort}/readyz`,
  });
  let ingest: BenchProcess | undefined;
  const targets: Record<'bare' | 'ingest', { url: string; proc?: BenchProcess; runs: Run[] }> = {
    bare: { url: `http://127.0.0.1:${barePort}/webhooks/gladly`, proc: bare, runs: [] },
    ingest: { url: `http://127.0.0.1:${port}/webhooks/gladly`, runs: [] },
  };
  let acceptedAnswers = 0;
  try {
    ingest = await startProcess({
      name: 'ingest-load',
      script: SCRIPTS.ingest,
      env: {
        PORT: String(port),
        HOST: '127.0.0.1',
        REDIS_URL: options.redisUrl,
        QUEUE_PREFIX: prefix,
        WEBHOOK_BASIC_AUTH: `${WEBHOOK_USER}:${WEBHOOK_PASSWORD}`,
        // The ingest's local spool (for when Redis does not answer) goes with the run's logs.
        INGEST_SPOOL_PATH: join(options.logDir, 'ingest-load.spool'),
      },
      logDir: options.logDir,
      readyUrl: `http://127.0.0.1:${port}/readyz`,
    });
    targets.ingest.proc = ingest;
    for (const [name, target] of Object.entries(targets)) {
      const warm = await loadWebhooks(target.url, {
        connections: options.connections,
        durationSeconds: options.warmupSeconds,
        idPrefix: `${name}-warm`,
      });
      if (name === 'ingest') acceptedAnswers += warm.result.ok;
    }
    for (let r = 0; r < options.rounds; r += 1) {
      for (const [name, target] of Object.entries(targets)) {
        const cpuBefore = target.proc?.cpuMs() ?? Number.NaN;
        const run = await loadWebhooks(target.url, {
          connections: options.connections,
          durationSeconds: options.durationSeconds,
          idPrefix: `${name}-${r}`,
        });
        target.runs.push({ ...run, cpuMs: (target.proc?.cpuMs() ?? Number.NaN) - cpuBefore });
        if (name === 'ingest') acceptedAnswers += run.result.ok;
      }
    }
    ingest.peakRssBytes();
    bare.peakRssBytes();
  } finally {
    await bare.stop();
    await ingest?.stop();
  }

  const connection = createWorkerConnection({ url: options.redisUrl }, 'bench-check');
  const queues = createQueues(connection, prefix);
  let storedJobs: number;
  try {
    const counts = await queues.transitions.getJobCounts(
      'waiting',
      'active',
      'completed',
      'failed',
      'delayed',
    );
    storedJobs = Object.values(counts).reduce((a, b) => a + b, 0);
  } finally {
    await closeQueues(queues);
    await connection.quit();
  }

  const paired = (f: (run: Run) => number) =>
    targets.ingest.runs.map((run, i) => {
      const bareRun = targets.bare.runs[i];
      return bareRun ? round(f(run) / f(bareRun), 3) : Number.NaN;
    });
  const roundThroughputRatios = paired((run) => run.result.requestsPerSecond);
  const roundP99Ratios = paired((run) => run.result.latencyMs.p99);
  const bareResult = pool(targets.bare.runs);
  const ingestResult = pool(targets.ingest.runs);
  return {
    connections: options.connections,
    durationSeconds: options.durationSeconds * options.rounds,
    bare: bareResult,
    ingest: ingestResult,
    throughputRatio: round(median(roundThroughputRatios), 3),
    roundThroughputRatios,
    p99Ratio: round(median(roundP99Ratios), 3),
    roundP99Ratios,
    storedJobs,
    acceptedAnswers,
    ingestPeakRssBytes: ingest?.peakRssBytes() ?? null,
    barePeakRssBytes: bare.peakRssBytes(),
  };
}
