import type { QueueName } from '@gk/queue';
import { type FailedList, JOB_STATES, type JobCounts, type RetryReport } from './failed-jobs.js';

/** Left-aligned columns separated by two spaces; the last column is never padded. */
export function table(rows: readonly (readonly string[])[]): string {
  const widths: number[] = [];
  for (const row of rows) {
    row.forEach((cell, i) => {
      widths[i] = Math.max(widths[i] ?? 0, cell.length);
    });
  }
  return rows
    .map((row) =>
      row
        .map((cell, i) => (i === row.length - 1 ? cell : cell.padEnd(widths[i] ?? 0)))
        .join('  ')
        .trimEnd(),
    )
    .join('\n');
}

export function formatCounts(counts: Partial<Record<QueueName, JobCounts>>): string {
  const header = ['queue', ...JOB_STATES, 'paused'];
  const rows = Object.entries(counts).map(([queue, c]) => [
    queue,
    ...JOB_STATES.map((s) => String(c?.[s] ?? 0)),
    c?.paused ? 'yes' : 'no',
  ]);
  return table([header, ...rows]);
}

export function formatFailed(list: FailedList, reason?: RegExp): string {
  const totals = Object.entries(list.totals)
    .map(([q, n]) => `${q} ${n}`)
    .join(', ');
  const scope = reason ? `, ${list.matched} matching /${reason.source}/i` : '';
  const head = `failed jobs: ${totals}${scope}`;
  if (list.jobs.length === 0) return `${head}\n(none to show)`;
  const rows = list.jobs.map((j) => [
    j.queue,
    j.id,
    j.failedAt ?? '-',
    String(j.attempts),
    j.email ?? j.customerId ?? '-',
    j.reason,
  ]);
  const shown =
    list.jobs.length < list.matched ? `\n(showing ${list.jobs.length}; use --limit for more)` : '';
  return `${head}\n${table([['queue', 'job id', 'failed at', 'attempts', 'email/customer', 'reason'], ...rows])}${shown}`;
}

export function formatRetry(report: RetryReport): string {
  const lines = [`retried ${report.retried.length} job(s)`];
  for (const r of report.retried) lines.push(`  ${r.queue}  ${r.id}`);
  if (report.refused.length > 0) {
    lines.push(`not retried ${report.refused.length}:`);
    for (const r of report.refused) lines.push(`  ${r.queue ? `${r.queue}  ` : ''}${r.id}: ${r.why}`);
  }
  return lines.join('\n');
}
