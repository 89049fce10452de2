import {
  constants,
  type FileHandle,
  mkdir,
  open,
  readFile,
  rename,
  unlink,
  writeFile,
} from 'node:fs/promises';
import { basename, dirname, join } from 'node:path';
import { decodeRecord, encodeRecord, type StoredJobSpec } from '@gk/queue';
import { SpoolLock, type SpoolLockOptions } from './spool-lock.js';

export { SpoolLockedError } from './spool-lock.js';

/**
 * The ingest's local spool: where a webhook goes when Redis does not store it, so Gladly still
 * gets its 200 (it deactivates a webhook after about an hour of failed deliveries). The relay
 * (relay.ts) moves the entries into their queues, oldest first, once Redis answers again.
 *
 * Storage: one append-only file, one record per line, `crc32 json\n`:
 *   {"s":7,"j":{…job spec…}}  entry 7 (queue, name, job id, payload: a StoredJobSpec)
 *   {"d":7}                   entries up to 7 are in Redis (written by the relay, never fsync'd:
 *                             losing it only means those entries are relayed again, and their
 *                             job ids make that a no-op)
 * An append resolves only after fdatasync, so a 200 is never answered for an entry a crash could
 * lose. Appends arriving while a write is in flight are written and synced together (group
 * commit): one fsync per batch, not per webhook, and the event loop never blocks on the disk.
 * A record cut short by a crash fails its checksum and is dropped at the next start (it was
 * never acknowledged); the file is then rewritten with only the pending entries. When every
 * entry has been relayed the file is truncated to zero.
 *
 * Every write that fails is taken back (truncated to where it began), so the next record never
 * lands on a damaged line; a failed rewrite at open keeps the original file. The file is owned by
 * one ingest at a time (spool-lock.ts); before each write the lock is read back.
 *
 * Why not SQLite (better-sqlite3): it needs a native build (its prebuilt binaries are downloaded
 * from outside the npm registry at install time), its synchronous API would stall every request
 * during each fsync, and a FIFO of small records needs none of SQL.
 */

/** A job written to the spool: a stored JobSpec (queue, name, id, payload). */
export type SpooledJob = StoredJobSpec;

export interface SpoolEntry {
  seq: number;
  /** As written; undefined when the record no longer reads back (damaged on disk). */
  job: unknown;
}

export class SpoolFullError extends Error {
  override name = 'SpoolFullError';
}

/** The spool's file operations, for the fault seam. */
export type SpoolOp = 'append' | 'peek' | 'mark' | 'rewrite';

/**
 * Test seam: called before each file operation; a fault it answers is raised there (after half
 * the bytes are written, for a partial write), as a full disk or a failing device would.
 */
export type SpoolFaults = (op: SpoolOp) => { error: NodeJS.ErrnoException; partial?: boolean } | undefined;

export interface SpoolOptions extends SpoolLockOptions {
  path: string;
  /** Entries held at most; an append beyond it fails with SpoolFullError. */
  maxEntries: number;
  faults?: SpoolFaults;
}

export interface SpoolOpenReport {
  /** Entries found waiting from a previous run. */
  recovered: number;
  /** Records that failed their checksum in the middle of the file (dropped; disk corruption). */
  corrupt: number;
  /** A last record cut short by a crash (never acknowledged, dropped). */
  torn: boolean;
  /** The rewrite at open failed (e.g. a full disk): the original file is kept as it was. */
  rewriteFailed?: string;
}

interface Pending {
  seq: number;
  offset: number;
  length: number;
}

interface QueuedAppend {
  seq: number;
  bytes: Buffer;
  resolve: () => void;
  reject: (err: unknown) => void;
}

type SpoolRecord = { s?: number; j?: unknown; d?: number };

async function fsyncDir(dir: string): Promise<void> {
  const handle = await open(dir, constants.O_RDONLY);
  try {
    await handle.sync();
  } finally {
    await handle.close();
  }
}

function fault(faults: SpoolFaults | undefined, op: SpoolOp) {
  return faults?.(op);
}

export class Spool {
  readonly path: string;
  readonly maxEntries: number;
  readonly #lock: SpoolLock;
  readonly #faults: SpoolFaults | undefined;
  #file: FileHandle;
  #size: number;
  #lastSeq: number;
  /** Entries written and synced, oldest first (`#head` is the first not yet relayed). */
  #pending: Pending[];
  #head = 0;
  #queued: QueuedAppend[] = [];
  #flushScheduled = false;
  /** File operations run one after another: writes, truncation, closing. */
  #chain: Promise<void> = Promise.resolve();
  #closed = false;
  #broken: Error | null = null;

  private constructor(
    options: SpoolOptions,
    lock: SpoolLock,
    file: FileHandle,
    size: number,
    pending: Pending[],
    lastSeq: number,
  ) {
    this.path = options.path;
    this.maxEntries = options.maxEntries;
    this.#lock = lock;
    this.#faults = options.faults;
    this.#file = file;
    this.#size = size;
    this.#pending = pending;
    this.#lastSeq = lastSeq;
    lock.onLost(() => {
      this.#broken = new Error(
        `another ingest took over the spool ${this.path}; this one no longer writes to it (give each ingest its own INGEST_SPOOL_PATH)`,
      );
    });
  }

  /**
   * Opens (or creates) the spool at `options.path`, taking its lock; entries left by a previous
   * run are kept for the relay, in order.
   */
  static async open(options: SpoolOptions): Promise<{ spool: Spool; report: SpoolOpenReport }> {
    const dir = dirname(options.path);
    await mkdir(dir, { recursive: true });
    const lock = await SpoolLock.acquire(`${options.path}.lock`, options.path, options);
    try {
      const raw = await readFile(options.path).catch((err: NodeJS.ErrnoException) => {
        if (err.code === 'ENOENT') return Buffer.alloc(0);
        throw err;
      });
      const entries: { seq: number; start: number; bytes: Buffer }[] = [];
      let done = 0;
      let corrupt = 0;
      let torn = false;
      let lastSeq = 0;
      let start = 0;
      /** End of the last complete line: where the next record may go. */
      let validEnd = 0;
      while (start < raw.length) {
        const end = raw.indexOf(0x0a, start);
        if (end < 0) {
          torn = true; // a last record without its newline: the write was cut short
          break;
        }
        const record = decodeRecord<SpoolRecord>(raw.toString('utf8', start, end));
        if (record === null) {
          // A damaged last line is a torn write; one followed by good records is corruption.
          if (end === raw.length - 1) torn = true;
          else corrupt += 1;
        } else if (typeof record.s === 'number' && record.j !== undefined) {
          entries.push({ seq: record.s, start, bytes: raw.subarray(start, end + 1) });
          lastSeq = Math.max(lastSeq, record.s);
        } else if (typeof record.d === 'number') {
          done = Math.max(done, record.d);
        }
        start = end + 1;
        validEnd = start;
      }
      const kept = entries.filter((e) => e.seq > done);
      const report: SpoolOpenReport = { recovered: kept.length, corrupt, torn };
      // Rewrite the file with only what is still pending (atomically: temp file, fsync, rename),
      // unless it holds exactly that already.
      const clean = kept.length === entries.length && corrupt === 0 && !torn && done === 0;
      let rewritten = clean;
      if (!clean) {
        const temp = join(dir, `.${basename(options.path)}.tmp`);
        try {
          const injected = fault(options.faults, 'rewrite');
          if (injected) throw injected.error;
          await writeFile(temp, Buffer.concat(kept.map((e) => e.bytes)), { flush: true });
          await rename(temp, options.path);
          rewritten = true;
        } catch (err) {
          // A full disk must not keep the ingest from starting: keep the original file (its
          // relayed entries are skipped by the offsets below; the done marker stays valid).
          await unlink(temp).catch(() => {});
          report.rewriteFailed = (err as Error).message;
        }
      }
      const file = await open(options.path, 'a');
      const pending: Pending[] = [];
      let size: number;
      if (rewritten) {
        if (!clean || raw.length === 0) await fsyncDir(dir);
        size = 0;
        for (const e of kept) {
          pending.push({ seq: e.seq, offset: size, length: e.bytes.length });
          size += e.bytes.length;
        }
      } else {
        // A torn tail is cut off (truncating needs no space), so the next record starts a line.
        if (validEnd < raw.length) {
          await file.truncate(validEnd);
          await file.datasync();
        }
        size = validEnd;
        for (const e of kept) pending.push({ seq: e.seq, offset: e.start, length: e.bytes.length });
      }
      return { spool: new Spool(options, lock, file, size, pending, lastSeq), report };
    } catch (err) {
      await lock.release();
      throw err;
    }
  }

  /** Entries waiting for the relay, including appends not yet synced. */
  get depth(): number {
    return this.#pending.length - this.#head + this.#queued.length;
  }

  get full(): boolean {
    return this.depth >= this.maxEntries;
  }

  /** Why the spool cannot take entries (a failed write it could not undo, a lost lock), or null. */
  get broken(): Error | null {
    return this.#broken;
  }

  /** Appends a job; resolves once it is on disk (fdatasync). */
  append(job: SpooledJob): Promise<void> {
    if (this.#closed) return Promise.reject(new Error('the spool is closed'));
    if (this.#broken) return Promise.reject(this.#broken);
    if (this.full) return Promise.reject(new SpoolFullError(`the spool holds ${this.maxEntries} entries`));
    this.#lastSeq += 1;
    const seq = this.#lastSeq;
    const bytes = encodeRecord({ s: seq, j: job });
    return new Promise((resolve, reject) => {
      this.#queued.push({ seq, bytes, resolve, reject });
      if (!this.#flushScheduled) {
        this.#flushScheduled = true;
        void this.#serially(() => this.#flush());
      }
    });
  }

  /** The oldest `max` entries waiting, in order. Throws on a read error (the relay retries). */
  async peek(max: number): Promise<SpoolEntry[]> {
    const batch = this.#pending.slice(this.#head, this.#head + max);
    const first = batch[0];
    const last = batch[batch.length - 1];
    if (!first || !last) return [];
    const injected = fault(this.#faults, 'peek');
    if (injected) throw injected.error;
    const span = last.offset + last.length - first.offset;
    const buffer = Buffer.alloc(span);
    const reader = await open(this.path, 'r');
    let read = 0;
    try {
      while (read < span) {
        const { bytesRead } = await reader.read(buffer, read, span - read, first.offset + read);
        if (bytesRead === 0) break;
        read += bytesRead;
      }
    } finally {
      await reader.close();
    }
    if (read < span) throw new Error(`the spool file ends before entry ${last.seq}`);
    return batch.map((p) => {
      const at = p.offset - first.offset;
      const record = decodeRecord<SpoolRecord>(buffer.toString('utf8', at, at + p.length - 1));
      // Damaged on disk since it was written: the relay dead-letters it rather than stop on it.
      return { seq: p.seq, job: record?.s === p.seq ? record.j : undefined };
    });
  }

  /**
   * Marks every entry up to `seq` as stored in Redis. In memory at once; on disk as a marker (or,
   * when nothing is left, by truncating the file). A failed disk write is taken back and thrown:
   * the entries are in Redis either way, and would only be relayed again after a restart.
   */
  markRelayed(seq: number): Promise<void> {
    return this.#serially(async () => {
      let head = this.#head;
      while (head < this.#pending.length && (this.#pending[head]?.seq ?? Infinity) <= seq) head += 1;
      if (head === this.#head) return;
      this.#head = head;
      if (this.#head === this.#pending.length && this.#queued.length === 0) {
        // Everything relayed: start the file afresh instead of letting it grow.
        this.#pending = [];
        this.#head = 0;
        if (!(await this.#lock.owned())) throw this.#broken ?? new Error('the spool lock is lost');
        const injected = fault(this.#faults, 'mark');
        if (injected) throw injected.error;
        await this.#file.truncate(0);
        this.#size = 0;
        await this.#file.datasync();
        return;
      }
      if (this.#head > 4096 && this.#head * 2 > this.#pending.length) {
        this.#pending = this.#pending.slice(this.#head);
        this.#head = 0;
      }
      await this.#write(encodeRecord({ d: seq }), 'mark', false);
    });
  }

  /** Waits for writes in flight, closes the file and lets go of the lock; an empty spool's file is removed. */
  async close(): Promise<void> {
    if (this.#closed) return;
    this.#closed = true;
    await this.#serially(async () => {
      const empty = this.depth === 0;
      await this.#file.close();
      if (empty && (await this.#lock.owned())) await unlink(this.path).catch(() => {});
    });
    await this.#lock.release();
  }

  #serially(op: () => Promise<void>): Promise<void> {
    const run = this.#chain.then(op);
    this.#chain = run.catch(() => {});
    return run;
  }

  /**
   * Writes `bytes` at the end of the file (and syncs them when `sync`); on failure truncates back
   * to where the write began, so the next record does not land on a damaged line, and throws.
   * A truncation that fails too leaves the spool broken: it takes no more entries.
   */
  async #write(bytes: Buffer, op: SpoolOp, sync: boolean): Promise<void> {
    if (!(await this.#lock.owned())) throw this.#broken ?? new Error('the spool lock is lost');
    try {
      const injected = fault(this.#faults, op);
      let written = 0;
      const limit = injected ? (injected.partial ? Math.floor(bytes.length / 2) : 0) : bytes.length;
      while (written < limit) {
        const { bytesWritten } = await this.#file.write(bytes, written, limit - written);
        written += bytesWritten;
      }
      if (injected) throw injected.error;
      if (sync) await this.#file.datasync();
    } catch (err) {
      try {
        await this.#file.truncate(this.#size);
        await this.#file.datasync();
      } catch (undo) {
        this.#broken = new Error(`the spool file could not be written (${(undo as Error).message})`);
      }
      throw err;
    }
    this.#size += bytes.length;
  }

  async #flush(): Promise<void> {
    this.#flushScheduled = false;
    const batch = this.#queued;
    this.#queued = [];
    if (batch.length === 0) return;
    const offset = this.#size;
    try {
      await this.#write(Buffer.concat(batch.map((b) => b.bytes)), 'append', true);
    } catch (err) {
      for (const b of batch) b.reject(err);
      return;
    }
    let at = offset;
    for (const b of batch) {
      this.#pending.push({ seq: b.seq, offset: at, length: b.bytes.length });
      at += b.bytes.length;
    }
    for (const b of batch) b.resolve();
  }
}
