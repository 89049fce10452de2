/**
 * `npm run bench`: the built services against baselines in the same run, on a fresh Redis, with
 * the stand-ins in this process. Writes bench/results/latest.json and the table in
 * docs/benchmarks.md; exits 1 naming every goal missed.
 *
 * `npm run bench -- --only=ingest,worker` runs some phases (ingest, worker, e2e, rate-limit, drain,
 * outage) and
 * writes its results under bench/tmp/ only, leaving latest.json and the docs alone.
 */
import { mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { cpus, loadavg, release, totalmem } from 'node:os';
import { join } from 'node:path';
import { startGladlyStandIn, startKlaviyoStandIn } from '@gk/stand-ins';
import { startRedisServer } from '@gk/testing';
import { Redis } from 'ioredis';
import { benchDrain } from './drain-bench.js';
import { benchEndToEnd } from './e2e-bench.js';
import { benchIngest } from './ingest-bench.js';
import { benchOutage } from './outage-bench.js';
import { ROOT } from './processes.js';
import { benchRateLimit } from './rate-limit-bench.js';
import { type BenchResults, markdownTable, rows } from './report.js';
import { round } from './stats.js';
import { benchWorker } from './worker-bench.js';
import { GLADLY_TOKEN, GLADLY_USER, KLAVIYO_KEY } from './workload.js';

const PHASES = ['ingest', 'worker', 'e2e', 'rate-limit', 'drain', 'outage'] as const;
type Phase = (typeof PHASES)[number];

const only = process.argv.find((a) => a.startsWith('--only='))?.slice('--only='.length);
const asked = only ? only.split(',').filter(Boolean) : [...PHASES];
const unknown = asked.filter((p) => !(PHASES as readonly string[]).includes(p));
if (unknown.length > 0 || asked.length === 0) {
  process.stderr.write(
    `bench: unknown phase ${unknown.join(', ') || '(none)'}; phases: ${PHASES.join(', ')}\n`,
  );
  process.exit(2);
}
const selected = new Set(asked as Phase[]);
const full = selected.size === PHASES.length;

const startedAt = new Date();
// Other work on a shared machine shows up here; a loaded run is worth repeating.
const loadAtStart = loadavg()[0] ?? Number.NaN;
const runDir = join(ROOT, 'bench/tmp', startedAt.toISOString().replace(/[:.]/g, '-'));
mkdirSync(runDir, { recursive: true });
const log = (message: string) =>
  process.stdout.write(`[bench ${round((Date.now() - startedAt.getTime()) / 1000, 0)}s] ${message}\n`);

// Like production (docker-compose): AOF with fsync every second, noeviction.
const redisServer = await startRedisServer({ extraArgs: ['--appendfsync', 'everysec'] });
const admin = new Redis(redisServer.url);
const gladly = await startGladlyStandIn({ user: GLADLY_USER, token: GLADLY_TOKEN });
const klaviyo = await startKlaviyoStandIn({ apiKey: KLAVIYO_KEY });

const results: BenchResults = {};
const phaseErrors: Record<string, string> = {};
const phaseLoad: Record<string, { start: number; end: number }> = {};
const context = { redisUrl: redisServer.url, logDir: runDir, gladly, klaviyo };

async function phase(name: Phase, run: () => Promise<void>): Promise<void> {
  if (!selected.has(name)) return;
  const load = () => round(loadavg()[0] ?? Number.NaN, 2);
  log(`${name}: starting (load average ${load()})`);
  await admin.flushall();
  const start = load();
  try {
    await run();
    log(`${name}: done`);
  } catch (err) {
    phaseErrors[name] = err instanceof Error ? err.message : String(err);
    log(`${name}: FAILED: ${phaseErrors[name]}`);
  } finally {
    phaseLoad[name] = { start, end: load() };
  }
}

try {
  await phase('ingest', async () => {
    results.ingest = await benchIngest({
      ...context,
      connections: 10,
      durationSeconds: 4,
      warmupSeconds: 3,
      rounds: 3,
    });
  });
  await phase('worker', async () => {
    results.worker = await benchWorker({ ...context, concurrency: 20, deliveries: 2000, rounds: 4 });
  });
  await phase('e2e', async () => {
    results.endToEnd = await benchEndToEnd({
      ...context,
      ratePerSecond: 100,
      durationSeconds: 30,
      warmupSeconds: 2,
      concurrency: 20,
    });
  });
  await phase('rate-limit', async () => {
    results.rateLimit = await benchRateLimit({ ...context, limitPerSecond: 50, workers: 3, backlog: 10_000 });
  });
  await phase('drain', async () => {
    results.drain = await benchDrain({
      ...context,
      deliveries: Number(process.env.BENCH_DRAIN_DELIVERIES ?? 100_000),
      singleSeconds: 60,
    });
  });
  await phase('outage', async () => {
    results.outage = await benchOutage({
      ...context,
      ratePerSecond: 50,
      outageSeconds: Number(process.env.BENCH_OUTAGE_SECONDS ?? 180),
      afterSeconds: 30,
    });
  });
} finally {
  const serverInfo = await admin.info('server');
  const appendfsync = ((await admin.config('GET', 'appendfsync')) as string[])[1];
  admin.disconnect();
  await gladly.close();
  await klaviyo.close();
  await redisServer.stop();

  const table = rows(results, phaseErrors);
  const missed = table.filter((r) => r.met === false).map((r) => `${r.figure}: ${r.value} (goal ${r.goal})`);
  const finishedAt = new Date();
  const report = {
    startedAt: startedAt.toISOString(),
    durationSeconds: round((finishedAt.getTime() - startedAt.getTime()) / 1000, 0),
    phases: [...selected],
    /** 1-minute load average at the start and end of each phase (2 cores: above 2 means waiting). */
    phaseLoad,
    machine: {
      cpu: cpus()[0]?.model ?? 'unknown',
      cores: cpus().length,
      memoryGiB: round(totalmem() / 1024 ** 3, 1),
      kernel: release(),
      loadAverage1m: { start: round(loadAtStart, 2), end: round(loadavg()[0] ?? Number.NaN, 2) },
    },
    node: process.version,
    redis: {
      version: /^redis_version:(.+?)\r?$/m.exec(serverInfo)?.[1] ?? 'unknown',
      appendonly: 'yes',
      appendfsync,
    },
    results,
    table,
    missed,
    logs: runDir,
  };
  const json = `${JSON.stringify(report, null, 2)}\n`;
  writeFileSync(join(runDir, 'results.json'), json);
  if (full) {
    mkdirSync(join(ROOT, 'bench/results'), { recursive: true });
    writeFileSync(join(ROOT, 'bench/results/latest.json'), json);
    writeDocsTable(report, markdownTable(table));
  }
  process.stdout.write(`\n${markdownTable(table)}\n\n`);
  process.stdout.write(
    `${full ? 'bench/results/latest.json and docs/benchmarks.md' : `${runDir}/results.json`} written; ` +
      `service logs in ${runDir}; ${report.durationSeconds} s\n`,
  );
  if (missed.length > 0) {
    process.stdout.write(`\nGoals missed (${missed.length}):\n${missed.map((m) => `  - ${m}`).join('\n')}\n`);
    process.exitCode = 1;
  } else {
    process.stdout.write('\nAll goals met.\n');
  }
}

function writeDocsTable(
  report: {
    startedAt: string;
    durationSeconds: number;
    machine: {
      cpu: string;
      cores: number;
      memoryGiB: number;
      kernel: string;
      loadAverage1m: { start: number; end: number };
    };
    node: string;
    redis: { version: string; appendfsync: string | undefined };
  },
  table: string,
): void {
  const path = join(ROOT, 'docs/benchmarks.md');
  const begin = '<!-- bench:begin -->';
  const end = '<!-- bench:end -->';
  const section = [
    begin,
    `Run of ${report.startedAt} (${report.durationSeconds} s): ${report.machine.cores} × ${report.machine.cpu}, ` +
      `${report.machine.memoryGiB} GiB, Linux ${report.machine.kernel}; Node ${report.node}; ` +
      `Redis ${report.redis.version} (AOF, appendfsync ${report.redis.appendfsync ?? '?'}). ` +
      `Load average (1 min) ${report.machine.loadAverage1m.start} at the start, ${report.machine.loadAverage1m.end} at the end.`,
    '',
    table,
    end,
  ].join('\n');
  let doc: string;
  try {
    doc = readFileSync(path, 'utf8');
  } catch {
    doc = `# Benchmarks\n\n${begin}\n${end}\n`;
  }
  const from = doc.indexOf(begin);
  const to = doc.indexOf(end);
  doc =
    from >= 0 && to > from
      ? `${doc.slice(0, from)}${section}${doc.slice(to + end.length)}`
      : `${doc.trimEnd()}\n\n${section}\n`;
  mkdirSync(join(ROOT, 'docs'), { recursive: true });
  writeFileSync(path, doc);
}
