import { randomBytes } from 'node:crypto';
import { open, readFile, rename, stat, unlink, writeFile } from 'node:fs/promises';
import { basename, dirname, join } from 'node:path';
import { decodeRecord, encodeRecord } from './spool-records.js';

/**
 * The ingest spool's dead-letter file: entries the relay gave up on (this version cannot read
 * them, or Redis keeps refusing them with an error that is not about the connection), each with
 * its reason, so the entries behind them flow. It sits beside the spool (`<spool>.dead`); the
 * ingest appends to it, `npm run jobs -- spool list|requeue|drop` reads and rewrites it. Both take
 * a short lock file around each change, so neither loses the other's.
 */
export interface DeadLetter {
  /** Short random id for the operator (`spool requeue <id>`). */
  id: string;
  /** ISO time it was dead-lettered. */
  at: string;
  reason: string;
  /** Relay attempts that failed with a permanent error. */
  attempts: number;
  /** The spooled job as it was written (a stored JobSpec, or whatever another version wrote). */
  job: unknown;
}

export function deadLetterPath(spoolPath: string): string {
  return `${spoolPath}.dead`;
}

export function newDeadLetterId(): string {
  return randomBytes(5).toString('hex');
}

/** A lock older than this was left by a process that died holding it. */
const LOCK_STALE_MS = 30_000;

async function withFileLock<T>(path: string, fn: () => Promise<T>, timeoutMs = 5_000): Promise<T> {
  const lock = `${path}.lock`;
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    try {
      await writeFile(lock, String(process.pid), { flag: 'wx' });
      break;
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code !== 'EEXIST') throw err;
      const age = await stat(lock).then(
        (s) => Date.now() - s.mtimeMs,
        () => 0,
      );
      if (age > LOCK_STALE_MS) await unlink(lock).catch(() => {});
      else if (Date.now() > deadline) throw new Error(`${lock} is held by another process`);
      else await new Promise((r) => setTimeout(r, 20));
    }
  }
  try {
    return await fn();
  } finally {
    await unlink(lock).catch(() => {});
  }
}

/** Appends entries and syncs them; resolves once they are on disk. */
export async function appendDeadLetters(path: string, entries: readonly DeadLetter[]): Promise<void> {
  if (entries.length === 0) return;
  await withFileLock(path, async () => {
    const file = await open(path, 'a');
    try {
      const bytes = Buffer.concat(entries.map((e) => encodeRecord(e)));
      let written = 0;
      while (written < bytes.length) {
        written += (await file.write(bytes, written, bytes.length - written)).bytesWritten;
      }
      await file.datasync();
    } finally {
      await file.close();
    }
  });
}

export interface DeadLetterFile {
  entries: DeadLetter[];
  /** Lines that failed their checksum (a torn or damaged line). */
  damaged: number;
}

function parse(raw: string): DeadLetterFile {
  const entries: DeadLetter[] = [];
  let damaged = 0;
  for (const line of raw.split('\n')) {
    if (line === '') continue;
    const record = decodeRecord<DeadLetter>(line);
    if (record && typeof record.id === 'string') entries.push(record);
    else damaged += 1;
  }
  return { entries, damaged };
}

/** Every dead-lettered entry, oldest first; an absent file is an empty list. */
export async function readDeadLetters(path: string): Promise<DeadLetterFile> {
  const raw = await readFile(path, 'utf8').catch((err: NodeJS.ErrnoException) => {
    if (err.code === 'ENOENT') return '';
    throw err;
  });
  return parse(raw);
}

/**
 * Removes the entries `pick` chooses (atomically: temp file, fsync, rename) and answers them.
 * `pick` runs under the lock, on the file as it is then.
 */
export async function removeDeadLetters(
  path: string,
  pick: (entries: readonly DeadLetter[]) => Promise<readonly string[]> | readonly string[],
): Promise<DeadLetter[]> {
  return withFileLock(path, async () => {
    const raw = await readFile(path, 'utf8').catch((err: NodeJS.ErrnoException) => {
      if (err.code === 'ENOENT') return '';
      throw err;
    });
    const { entries } = parse(raw);
    const ids = new Set(await pick(entries));
    const removed = entries.filter((e) => ids.has(e.id));
    if (removed.length === 0) return [];
    // Damaged lines are kept as they were: they may still be read by hand.
    const kept = raw
      .split('\n')
      .filter((line) => line !== '')
      .filter((line) => {
        const record = decodeRecord<DeadLetter>(line);
        return !(record && ids.has(record.id));
      });
    const temp = join(dirname(path), `.${basename(path)}.tmp`);
    await writeFile(temp, kept.map((l) => `${l}\n`).join(''), { flush: true });
    await rename(temp, path);
    return removed;
  });
}
