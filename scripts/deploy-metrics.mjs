#!/usr/bin/env node
// Checks that every `gk_` metric the files in deploy/ use (alert rules, their promtool tests, the
// Grafana dashboard) is one the services export, with label names those metrics have, and that
// the dashboard is well-formed. The exported names come from the built code itself (the
// ingest's and the worker's metric factories and the shared registry with Node's default
// metrics), so a renamed metric breaks CI here. Run after `npm run build`:
//   node scripts/deploy-metrics.mjs
// apps/worker/test/operations.int.test.ts checks the same references against a real scrape of
// the built services after a demo-like run, label values included.
import { readdirSync, readFileSync } from 'node:fs';
import { join, relative } from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';

export const ROOT = fileURLToPath(new URL('..', import.meta.url));
const DEPLOY = join(ROOT, 'deploy');

/** Labels every series gets from Prometheus (target) or from the services' registry. */
const TARGET_LABELS = ['job', 'instance', 'service'];

function filesUnder(dir) {
  return readdirSync(dir, { withFileTypes: true }).flatMap((e) =>
    e.isDirectory() ? filesUnder(join(dir, e.name)) : [join(dir, e.name)],
  );
}

/** The files of deploy/ that reference metrics. */
export function deployFiles() {
  return filesUnder(DEPLOY).filter((f) => /\.(ya?ml|json)$/.test(f));
}

/**
 * Every `gk_…` name in a text, with the label matchers written right after it
 * (`gk_x{a="b", c=~"d|e"}`), as `{ name, matchers: [{ label, op, value }] }`.
 */
export function metricReferences(text) {
  const refs = [];
  for (const m of text.matchAll(/\b(gk_[A-Za-z0-9_]+)(\{[^}]*\})?/g)) {
    const matchers = [
      ...(m[2] ?? '').matchAll(/([A-Za-z_][A-Za-z0-9_]*)\s*(=~|!~|!=|=)\s*(?:\\?")((?:[^"\\]|\\.)*?)\\?"/g),
    ].map(([, label, op, value]) => ({ label, op, value }));
    refs.push({ name: m[1], matchers });
  }
  return refs;
}

/** Exported series names and label names, from the built metric factories. */
export async function exportedMetrics() {
  const runtime = await import(pathToFileURL(join(ROOT, 'packages/runtime/dist/index.js')).href);
  const ingest = await import(pathToFileURL(join(ROOT, 'apps/ingest/dist/metrics.js')).href);
  const spool = await import(pathToFileURL(join(ROOT, 'apps/ingest/dist/store/metrics.js')).href);
  const worker = await import(pathToFileURL(join(ROOT, 'apps/worker/dist/metrics.js')).href);
  const selfHealing = await import(
    pathToFileURL(join(ROOT, 'apps/worker/dist/self-healing/metrics.js')).href
  );
  const ingestRegistry = runtime.createMetricsRegistry('ingest');
  ingest.createIngestMetrics(ingestRegistry, {});
  spool.createSpoolMetrics(ingestRegistry, null);
  const workerRegistry = runtime.createMetricsRegistry('worker');
  worker.createWorkerMetrics(workerRegistry);
  selfHealing.createSelfHealingMetrics(workerRegistry);

  const series = new Map();
  for (const registry of [ingestRegistry, workerRegistry]) {
    for (const metric of registry.getMetricsAsArray()) {
      const { type } = await metric.get();
      const labels = new Set([...(metric.labelNames ?? []), ...TARGET_LABELS]);
      const names =
        type === 'histogram'
          ? [`${metric.name}_bucket`, `${metric.name}_sum`, `${metric.name}_count`]
          : type === 'summary'
            ? [metric.name, `${metric.name}_sum`, `${metric.name}_count`]
            : [metric.name];
      for (const name of names) {
        series.set(name, new Set([...labels, ...(name.endsWith('_bucket') ? ['le'] : [])]));
        if (type === 'summary' && name === metric.name) series.get(name).add('quantile');
      }
    }
  }
  return series;
}

/** Dashboard shape: panels with unique ids, a grid position, and queries with a datasource. */
export function dashboardProblems(dashboard) {
  const problems = [];
  if (typeof dashboard.uid !== 'string' || !dashboard.title)
    problems.push('dashboard needs a uid and a title');
  const ids = new Set();
  for (const panel of dashboard.panels ?? []) {
    const where = `panel ${JSON.stringify(panel.title)}`;
    if (ids.has(panel.id)) problems.push(`${where}: duplicate id ${panel.id}`);
    ids.add(panel.id);
    if (!panel.gridPos) problems.push(`${where}: no gridPos`);
    if (panel.type === 'row') continue;
    if (!Array.isArray(panel.targets) || panel.targets.length === 0) problems.push(`${where}: no queries`);
    for (const t of panel.targets ?? []) {
      if (!t.expr) problems.push(`${where}: query ${t.refId} has no expr`);
      if (!t.datasource && !panel.datasource) problems.push(`${where}: no datasource`);
    }
  }
  return problems;
}

export async function checkDeploy() {
  const exported = await exportedMetrics();
  const problems = [];
  let count = 0;
  const used = new Set();
  for (const file of deployFiles()) {
    const text = readFileSync(file, 'utf8');
    const rel = relative(ROOT, file);
    if (file.endsWith('.json')) {
      try {
        for (const p of dashboardProblems(JSON.parse(text))) problems.push(`${rel}: ${p}`);
      } catch (err) {
        problems.push(`${rel}: not valid JSON (${err.message})`);
        continue;
      }
    }
    for (const ref of metricReferences(text)) {
      count += 1;
      used.add(ref.name);
      const labels = exported.get(ref.name);
      if (!labels) {
        problems.push(`${rel}: ${ref.name} is not a metric the ingest or the worker exports`);
        continue;
      }
      for (const { label } of ref.matchers) {
        if (!labels.has(label)) problems.push(`${rel}: ${ref.name} has no label "${label}"`);
      }
    }
  }
  return { problems, references: count, metrics: [...used].sort(), exported: [...exported.keys()].sort() };
}

if (process.argv[1] && import.meta.url === pathToFileURL(process.argv[1]).href) {
  const { problems, references, metrics } = await checkDeploy();
  if (problems.length > 0) {
    process.stderr.write(`deploy/ uses metrics the services do not export:\n  ${problems.join('\n  ')}\n`);
    process.exit(1);
  }
  process.stdout.write(`deploy/: ${references} references to ${metrics.length} gk_ metrics, all exported\n`);
}
