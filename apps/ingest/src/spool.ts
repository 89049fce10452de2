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
import { crc32 } from 'node:zlib';

/**
 * The ingest's local spool: where a webhook goes when Redis does not store it, so Gladly still
 * gets its 200 (it deactivates a webhook after about an hour of failed deliveries). A relay
 * (spool-relay.ts) moves the entries into their queues, oldest first, once Redis answers again.
 *
 * Storage: one append-only file, one record per line, `crc32 json\n`:
 *   {"s":7,"j":{…job…}}   entry 7 (a job for a queue, with the job id the ingest derived)
 *   {"d":7}               entries up to 7 are in Redis (written by the relay, never fsync'd:
 *                         losing it only means those entries are relayed again, and their job
 *                         ids make that a no-op)
 * An append resolves only after fdatasync, so a 200 is never answered for an entry a crash could
 * lose. Appends arriving while a write is in flight are written and synced together (group
 * commit): one fsync per batch, not per webhook, and the event loop never blocks on the disk.
 * A record cut short by a crash fails its checksum and is dropped at the next start (it was
 * never acknowledged); the file is then rewritten with only the pending entries. When every
 * entry has been relayed the file is truncated to zero.
 *
 * Why not SQLite (better-sqlite3): it needs a native build (its prebuilt binaries are downloaded
 * from outside the npm registry at install time), its synchronous API would stall every request
 * during each fsync, and a FIFO of small records needs none of SQL.
 */

/** A job the way the relay adds it: to this queue, with this name, id and payload. */
export interface SpooledJob {
  queue: string;
  name: string;
  jobId: string;
  data: unknown;
}

export interface SpoolEntry {
  seq: number;
  job: SpooledJob;
}

export class SpoolFullError extends Error {
  override name = 'SpoolFullError';
}

export class SpoolLockedError extends Error {
  override name = 'SpoolLockedError';
}

export interface SpoolOptions {
  path: string;
  /** Entries held at most; an append beyond it fails with SpoolFullError. */
  maxEntries: number;
}

export interface SpoolOpenReport {
  /** Entries found waiting from a previous run. */
  recovered: number;
  /** Records that failed their checksum in the middle of the file (dropped; disk corruption). */
  corrupt: number;
  /** A last record cut short by a crash (never acknowledged, dropped). */
  torn: boolean;
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

function encodeRecord(record: object): Buffer {
  const json = JSON.stringify(record);
  const sum = crc32(json).toString(16).padStart(8, '0');
  return Buffer.from(`${sum} ${json}\n`, 'utf8');
}

/** The record of one line (without its newline), or null when its checksum does not match. */
function decodeRecord(line: string): { s?: number; j?: SpooledJob; d?: number } | null {
  if (line.length < 10 || line[8] !== ' ') return null;
  const json = line.slice(9);
  if (crc32(json).toString(16).padStart(8, '0') !== line.slice(0, 8)) return null;
  try {
    return JSON.parse(json) as { s?: number; j?: SpooledJob; d?: number };
  } catch {
    return null;
  }
}

async function fsyncDir(dir: string): Promise<void> {
  const handle = await open(dir, constants.O_RDONLY);
  try {
    await handle.sync();
  } finally {
    await handle.close();
  }
}

function processAlive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (err) {
    // EPERM: it exists but belongs to someone else.
    return (err as NodeJS.ErrnoException).code === 'EPERM';
  }
}

/**
 * One process per spool file: two ingests appending to one file would each truncate the other's
 * entries. A lock file holds the owner's pid; a lock left by a dead process is taken over.
 */
async function acquireLock(lockPath: string): Promise<void> {
  for (let attempt = 0; attempt < 2; attempt++) {
    try {
      await writeFile(lockPath, String(process.pid), { flag: 'wx' });
      return;
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code !== 'EEXIST') throw err;
    }
    const owner = Number((await readFile(lockPath, 'utf8').catch(() => '')).trim());
    if (Number.isInteger(owner) && owner > 0 && owner !== process.pid && processAlive(owner)) {
      throw new SpoolLockedError(
        `the spool ${lockPath.replace(/\.lock$/, '')} is in use by process ${owner}: give each ingest its own INGEST_SPOOL_PATH`,
      );
    }
    await unlink(lockPath).catch(() => {});
  }
  throw new SpoolLockedError(`could not take the spool lock ${lockPath}`);
}

export class Spool {
  readonly path: string;
  readonly maxEntries: number;
  readonly #lockPath: string;
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
    file: FileHandle,
    size: number,
    pending: Pending[],
    lastSeq: number,
  ) {
    this.path = options.path;
    this.maxEntries = options.maxEntries;
    this.#lockPath = `${options.path}.lock`;
    this.#file = file;
    this.#size = size;
    this.#pending = pending;
    this.#lastSeq = lastSeq;
  }

  /**
   * Opens (or creates) the spool at `options.path`, taking its lock; entries left by a previous
   * run are kept for the relay, in order.
   */
  static async open(options: SpoolOptions): Promise<{ spool: Spool; report: SpoolOpenReport }> {
    const dir = dirname(options.path);
    await mkdir(dir, { recursive: true });
    await acquireLock(`${options.path}.lock`);
    try {
      const raw = await readFile(options.path).catch((err: NodeJS.ErrnoException) => {
        if (err.code === 'ENOENT') return Buffer.alloc(0);
        throw err;
      });
      const entries: { seq: number; bytes: Buffer }[] = [];
      let done = 0;
      let corrupt = 0;
      let torn = false;
      let lastSeq = 0;
      let start = 0;
      while (start < raw.length) {
        const end = raw.indexOf(0x0a, start);
        if (end < 0) {
          torn = true; // a last record without its newline: the write was cut short
          break;
        }
        const record = decodeRecord(raw.toString('utf8', start, end));
        if (record === null) {
          // A damaged last line is a torn write; one followed by good records is corruption.
          if (end === raw.length - 1) torn = true;
          else corrupt += 1;
        } else if (typeof record.s === 'number' && record.j) {
          entries.push({ seq: record.s, bytes: raw.subarray(start, end + 1) });
          lastSeq = Math.max(lastSeq, record.s);
        } else if (typeof record.d === 'number') {
          done = Math.max(done, record.d);
        }
        start = end + 1;
      }
      const kept = entries.filter((e) => e.seq > done);
      // Rewrite the file with only what is still pending (atomically: temp file, fsync, rename),
      // unless it holds exactly that already.
      const clean = kept.length === entries.length && corrupt === 0 && !torn && done === 0;
      if (!clean) {
        const temp = join(dir, `.${basename(options.path)}.tmp`);
        await writeFile(temp, Buffer.concat(kept.map((e) => e.bytes)), { flush: true });
        await rename(temp, options.path);
      }
      const file = await open(options.path, 'a');
      if (!clean || raw.length === 0) await fsyncDir(dir);
      const pending: Pending[] = [];
      let offset = 0;
      for (const e of kept) {
        pending.push({ seq: e.seq, offset, length: e.bytes.length });
        offset += e.bytes.length;
      }
      return {
        spool: new Spool(options, file, offset, pending, lastSeq),
        report: { recovered: kept.length, corrupt, torn },
      };
    } catch (err) {
      await unlink(`${options.path}.lock`).catch(() => {});
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

  /** Why the spool cannot take entries (a failed write it could not undo), or null. */
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

  /** The oldest `max` entries waiting, in order. */
  async peek(max: number): Promise<SpoolEntry[]> {
    const batch = this.#pending.slice(this.#head, this.#head + max);
    const first = batch[0];
    const last = batch[batch.length - 1];
    if (!first || !last) return [];
    const span = last.offset + last.length - first.offset;
    const buffer = Buffer.alloc(span);
    const reader = await open(this.path, 'r');
    try {
      let read = 0;
      while (read < span) {
        const { bytesRead } = await reader.read(buffer, read, span - read, first.offset + read);
        if (bytesRead === 0) break;
        read += bytesRead;
      }
    } finally {
      await reader.close();
    }
    return batch.map((p) => {
      const at = p.offset - first.offset;
      const record = decodeRecord(buffer.toString('utf8', at, at + p.length - 1));
      if (!record?.j || record.s !== p.seq) throw new Error(`spool entry ${p.seq} does not read back`);
      return { seq: p.seq, job: record.j };
    });
  }

  /** Marks every entry up to `seq` as stored in Redis. */
  markRelayed(seq: number): Promise<void> {
    return this.#serially(async () => {
      let head = this.#head;
      while (head < this.#pending.length && (this.#pending[head]?.seq ?? Infinity) <= seq) head += 1;
      if (head === this.#head) return;
      this.#head = head;
      if (this.#head === this.#pending.length) {
        // Everything relayed: start the file afresh instead of letting it grow.
        this.#pending = [];
        this.#head = 0;
        await this.#file.truncate(0);
        await this.#file.datasync();
        this.#size = 0;
        return;
      }
      if (this.#head > 4096 && this.#head * 2 > this.#pending.length) {
        this.#pending = this.#pending.slice(this.#head);
        this.#head = 0;
      }
      const bytes = encodeRecord({ d: seq });
      await this.#writeAll(bytes);
      this.#size += bytes.length;
    });
  }

  /** Waits for writes in flight, closes the file and lets go of the lock; an empty spool's file is removed. */
  async close(): Promise<void> {
    if (this.#closed) return;
    this.#closed = true;
    await this.#serially(async () => {
      const empty = this.depth === 0;
      await this.#file.close();
      if (empty) await unlink(this.path).catch(() => {});
    });
    await unlink(this.#lockPath).catch(() => {});
  }

  #serially(op: () => Promise<void>): Promise<void> {
    const run = this.#chain.then(op);
    this.#chain = run.catch(() => {});
    return run;
  }

  async #writeAll(bytes: Buffer): Promise<void> {
    let written = 0;
    while (written < bytes.length) {
      const { bytesWritten } = await this.#file.write(bytes, written, bytes.length - written);
      written += bytesWritten;
    }
  }

  async #flush(): Promise<void> {
    this.#flushScheduled = false;
    const batch = this.#queued;
    this.#queued = [];
    if (batch.length === 0) return;
    const bytes = Buffer.concat(batch.map((b) => b.bytes));
    try {
      await this.#writeAll(bytes);
      await this.#file.datasync();
    } catch (err) {
      // Take back a partial write, so the next record does not land on a damaged line.
      try {
        await this.#file.truncate(this.#size);
        await this.#file.datasync();
      } catch (undo) {
        this.#broken = new Error(`the spool file could not be written (${(undo as Error).message})`);
      }
      for (const b of batch) b.reject(err);
      return;
    }
    let offset = this.#size;
    for (const b of batch) {
      this.#pending.push({ seq: b.seq, offset, length: b.bytes.length });
      offset += b.bytes.length;
    }
    this.#size = offset;
    for (const b of batch) b.resolve();
  }
}
