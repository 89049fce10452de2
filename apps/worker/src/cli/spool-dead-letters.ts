import { redactEmails } from '@gk/domain';
import {
  addJobOnce,
  type BridgeQueues,
  type DeadLetter,
  readDeadLetters,
  readJobSpec,
  removeDeadLetters,
} from '@gk/queue';
import { table } from './format.js';

/**
 * `spool list|requeue|drop`: the ingest spool's dead-letter file (`<INGEST_SPOOL_PATH>.dead`),
 * where the relay puts entries it gave up on. Run it where the spool's volume is mounted.
 */
export type DeadLetterTarget = { ids: readonly string[] } | { all: true };

export interface DeadLetterView {
  id: string;
  at: string;
  queue: string;
  name: string;
  jobId: string;
  attempts: number;
  reason: string;
}

export interface DeadLetterList {
  path: string;
  entries: DeadLetterView[];
  /** Lines that failed their checksum (kept in the file, shown as a count). */
  damaged: number;
}

export interface RequeueReport {
  path: string;
  requeued: { id: string; jobId: string; outcome: 'accepted' | 'duplicate' }[];
  refused: { id: string; reason: string }[];
  notFound: string[];
}

export interface DropReport {
  path: string;
  dropped: string[];
  notFound: string[];
}

const text = (v: unknown, fallback = '?') =>
  typeof v === 'string' && v.length > 0 ? v.slice(0, 120) : fallback;

function view(e: DeadLetter): DeadLetterView {
  const job = (typeof e.job === 'object' && e.job !== null ? e.job : {}) as Record<string, unknown>;
  return {
    id: e.id,
    at: e.at,
    queue: text(job.queue),
    name: text(job.name),
    jobId: text(job.jobId),
    attempts: e.attempts,
    // A reason quotes Redis or a schema, never the payload; masked all the same.
    reason: redactEmails(e.reason),
  };
}

export async function listDeadLetters(path: string): Promise<DeadLetterList> {
  const file = await readDeadLetters(path);
  return { path, entries: file.entries.map(view), damaged: file.damaged };
}

function selected(entries: readonly DeadLetter[], target: DeadLetterTarget): DeadLetter[] {
  if ('all' in target) return [...entries];
  const ids = new Set(target.ids);
  return entries.filter((e) => ids.has(e.id));
}

function missing(entries: readonly DeadLetter[], target: DeadLetterTarget): string[] {
  if ('all' in target) return [];
  const present = new Set(entries.map((e) => e.id));
  return target.ids.filter((id) => !present.has(id));
}

/** Stores each chosen entry in its queue (as the relay would) and removes the ones Redis took. */
export async function requeueDeadLetters(
  path: string,
  queues: BridgeQueues,
  target: DeadLetterTarget,
): Promise<RequeueReport> {
  const report: RequeueReport = { path, requeued: [], refused: [], notFound: [] };
  await removeDeadLetters(path, async (entries) => {
    report.notFound = missing(entries, target);
    const done: string[] = [];
    for (const entry of selected(entries, target)) {
      const reading = readJobSpec(entry.job);
      if (!reading.ok) {
        report.refused.push({ id: entry.id, reason: `this version cannot read it: ${reading.reason}` });
        continue;
      }
      try {
        const result = await addJobOnce(queues, reading.spec);
        report.requeued.push({ id: entry.id, jobId: result.jobId, outcome: result.outcome });
        done.push(entry.id);
      } catch (err) {
        report.refused.push({ id: entry.id, reason: redactEmails((err as Error).message) });
      }
    }
    return done;
  });
  return report;
}

export async function dropDeadLetters(path: string, target: DeadLetterTarget): Promise<DropReport> {
  let notFound: string[] = [];
  const removed = await removeDeadLetters(path, (entries) => {
    notFound = missing(entries, target);
    return selected(entries, target).map((e) => e.id);
  });
  return { path, dropped: removed.map((e) => e.id), notFound };
}

export function formatDeadLetters(list: DeadLetterList): string {
  if (list.entries.length === 0 && list.damaged === 0)
    return `No dead-lettered spool entries in ${list.path}.`;
  const rows = list.entries.map((e) => [e.id, e.at, e.queue, e.jobId, String(e.attempts), e.reason]);
  const lines = [
    `${list.entries.length} dead-lettered spool entr${list.entries.length === 1 ? 'y' : 'ies'} in ${list.path}:`,
    table([['id', 'dead since', 'queue', 'job id', 'attempts', 'reason'], ...rows]),
  ];
  if (list.damaged > 0) lines.push(`${list.damaged} damaged line(s) kept in the file (checksum mismatch).`);
  return lines.join('\n');
}

export function formatRequeue(r: RequeueReport): string {
  const lines = [`Requeued ${r.requeued.length} of the dead-lettered spool entries in ${r.path}.`];
  for (const q of r.requeued) lines.push(`  ${q.id} → ${q.jobId} (${q.outcome})`);
  for (const f of r.refused) lines.push(`  ${f.id} not requeued: ${f.reason}`);
  for (const id of r.notFound) lines.push(`  ${id} not found`);
  return lines.join('\n');
}

export function formatDrop(r: DropReport): string {
  const lines = [
    `Dropped ${r.dropped.length} dead-lettered spool entr${r.dropped.length === 1 ? 'y' : 'ies'} from ${r.path}.`,
  ];
  for (const id of r.notFound) lines.push(`  ${id} not found`);
  return lines.join('\n');
}
