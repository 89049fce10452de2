import { randomUUID } from 'node:crypto';
import { readFileSync, readlinkSync } from 'node:fs';
import { readFile, rename, stat, unlink, utimes, writeFile } from 'node:fs/promises';
import { hostname } from 'node:os';

/**
 * One ingest per spool file, across processes, containers and hosts. Two ingests on one file
 * would each truncate the other's acknowledged entries; in containers every ingest is PID 1, so a
 * pid is no identity. The lock file holds a random instance id made at each start, and its owner
 * touches it every `heartbeatMs` (its mtime changes; only the change is looked at, never its
 * value against this host's clock, so clock skew between hosts does not matter).
 *
 * A newcomer finding the lock:
 * - the owner provably dead (same host and boot, same PID namespace, that pid gone or reused):
 *   taken over at once (an ingest restarted after kill -9);
 * - the heartbeat moves while it watches: refused, naming the path;
 * - no heartbeat for `staleMs`: the owner is gone (a container that was killed): taken over.
 * The owner reads the lock back before every write that could hurt another owner's entries, and
 * on each heartbeat: once it finds another instance id there it stops using the file.
 */

export class SpoolLockedError extends Error {
  override name = 'SpoolLockedError';
}

interface LockRecord {
  instance: string;
  pid: number;
  host: string;
  boot: string | null;
  pidNamespace: string | null;
  /** The process's start time in clock ticks since boot (/proc/<pid>/stat), against pid reuse. */
  started: string | null;
}

export interface SpoolLockOptions {
  /** How often the owner touches the lock. */
  heartbeatMs?: number;
  /** A lock untouched this long is taken over. */
  staleMs?: number;
}

function tryRead(path: string): string | null {
  try {
    return readFileSync(path, 'utf8').trim();
  } catch {
    return null;
  }
}

function processStart(pid: number): string | null {
  const stat = tryRead(`/proc/${pid}/stat`);
  if (!stat) return null;
  // Fields after the command name (which may hold spaces) start after the last ')'.
  return stat.slice(stat.lastIndexOf(')') + 2).split(' ')[19] ?? null;
}

function pidNamespace(): string | null {
  try {
    return readlinkSync('/proc/self/ns/pid');
  } catch {
    return null;
  }
}

function ownRecord(instance: string): LockRecord {
  return {
    instance,
    pid: process.pid,
    host: hostname(),
    boot: tryRead('/proc/sys/kernel/random/boot_id'),
    pidNamespace: pidNamespace(),
    started: processStart(process.pid),
  };
}

function parseRecord(text: string): LockRecord | { legacyPid: number } | null {
  if (/^\d+$/.test(text.trim())) return { legacyPid: Number(text.trim()) };
  try {
    const value = JSON.parse(text) as Partial<LockRecord>;
    return typeof value.instance === 'string' && typeof value.pid === 'number' ? (value as LockRecord) : null;
  } catch {
    return null;
  }
}

function pidAlive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (err) {
    return (err as NodeJS.ErrnoException).code === 'EPERM';
  }
}

/** True only when the owner is provably gone: same machine, same PID namespace, pid gone or reused. */
function ownerDead(owner: LockRecord, me: LockRecord): boolean {
  if (owner.instance === me.instance) return false;
  if (owner.host !== me.host || !owner.boot || owner.boot !== me.boot) return false;
  if (!owner.pidNamespace || owner.pidNamespace !== me.pidNamespace) return false;
  if (!pidAlive(owner.pid)) return true;
  return owner.started !== null && processStart(owner.pid) !== owner.started;
}

const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

export class SpoolLock {
  readonly path: string;
  readonly instance: string;
  readonly #heartbeatMs: number;
  #timer: NodeJS.Timeout | null = null;
  #lost = false;
  #onLost: (() => void) | null = null;

  private constructor(path: string, instance: string, heartbeatMs: number) {
    this.path = path;
    this.instance = instance;
    this.#heartbeatMs = heartbeatMs;
  }

  /** Takes the lock at `path` for the spool `spoolPath` (named in the refusal). */
  static async acquire(path: string, spoolPath: string, options: SpoolLockOptions = {}): Promise<SpoolLock> {
    const heartbeatMs = options.heartbeatMs ?? 1_000;
    const staleMs = options.staleMs ?? 5 * heartbeatMs;
    const me = ownRecord(randomUUID());
    const text = `${JSON.stringify(me)}\n`;
    const refuse = (why: string) =>
      new SpoolLockedError(
        `the spool ${spoolPath} is in use by another ingest (${why}): give each ingest its own INGEST_SPOOL_PATH`,
      );
    for (let attempt = 0; attempt < 3; attempt++) {
      try {
        await writeFile(path, text, { flag: 'wx' });
        return new SpoolLock(path, me.instance, heartbeatMs).#start();
      } catch (err) {
        if ((err as NodeJS.ErrnoException).code !== 'EEXIST') throw err;
      }
      const found = await readFile(path, 'utf8').catch(() => null);
      if (found === null) continue; // released meanwhile
      const owner = parseRecord(found);
      let takeOver = false;
      if (owner && 'legacyPid' in owner) {
        // Written by an older version (a pid only): its rule, since it never heartbeats.
        if (owner.legacyPid !== process.pid && pidAlive(owner.legacyPid))
          throw refuse(`process ${owner.legacyPid}`);
        takeOver = true;
      } else if (owner && ownerDead(owner, me)) {
        takeOver = true;
      } else {
        // Watch the heartbeat: a live owner touches the lock within heartbeatMs.
        const first = await stat(path).catch(() => null);
        if (!first) continue;
        const deadline = Date.now() + staleMs;
        let moved = false;
        while (Date.now() < deadline) {
          await sleep(Math.max(10, Math.min(heartbeatMs / 4, 250)));
          const now = await stat(path).catch(() => null);
          const content = await readFile(path, 'utf8').catch(() => null);
          if (!now || content !== found || now.mtimeMs !== first.mtimeMs) {
            moved = true;
            break;
          }
        }
        if (moved) {
          const current = await readFile(path, 'utf8').catch(() => null);
          if (current === null) continue; // released: try again
          throw refuse(
            owner
              ? `instance ${owner.instance.slice(0, 8)}, pid ${owner.pid} on ${owner.host}`
              : 'unreadable lock',
          );
        }
        takeOver = true;
      }
      if (takeOver) {
        // Replace atomically; when two newcomers race, the last rename wins and the other sees it.
        const temp = `${path}.${me.instance}.tmp`;
        await writeFile(temp, text);
        await rename(temp, path);
        await sleep(Math.min(heartbeatMs, 200));
        if ((await readFile(path, 'utf8').catch(() => null)) === text) {
          return new SpoolLock(path, me.instance, heartbeatMs).#start();
        }
        throw refuse('another ingest took it over at the same time');
      }
    }
    throw refuse('could not take its lock');
  }

  /** Called once when another instance is found in the lock. */
  onLost(callback: () => void): void {
    this.#onLost = callback;
  }

  get lost(): boolean {
    return this.#lost;
  }

  /** Reads the lock back: false (and lost from then on) when another instance holds it. */
  async owned(): Promise<boolean> {
    if (this.#lost) return false;
    let text: string | null;
    try {
      text = await readFile(this.path, 'utf8');
    } catch (err) {
      // Gone: someone removed it, and another ingest may take it. Any other error (EMFILE, EIO)
      // says nothing about who owns it: keep going, the next look decides.
      if ((err as NodeJS.ErrnoException).code !== 'ENOENT') return true;
      text = null;
    }
    const owner = text === null ? null : parseRecord(text);
    if (owner && !('legacyPid' in owner) && owner.instance === this.instance) return true;
    this.#markLost();
    return false;
  }

  /** Stops the heartbeat and removes the lock if it is still this instance's. */
  async release(): Promise<void> {
    if (this.#timer) clearInterval(this.#timer);
    this.#timer = null;
    if (await this.owned()) await unlink(this.path).catch(() => {});
  }

  #markLost(): void {
    if (this.#lost) return;
    this.#lost = true;
    if (this.#timer) clearInterval(this.#timer);
    this.#timer = null;
    this.#onLost?.();
  }

  #start(): SpoolLock {
    this.#timer = setInterval(() => {
      void this.owned().then(
        async (mine) => {
          if (!mine) return;
          const now = new Date();
          await utimes(this.path, now, now).catch(() => {});
        },
        () => {},
      );
    }, this.#heartbeatMs);
    this.#timer.unref();
    return this;
  }
}
