import { spawn } from 'node:child_process';
import {
  appendFileSync,
  existsSync,
  mkdtempSync,
  readFileSync,
  rmSync,
  statSync,
  writeFileSync,
} from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import {
  Spool,
  type SpoolEntry,
  type SpoolFaults,
  SpoolFullError,
  SpoolLockedError,
  type SpoolOptions,
} from './spool.js';

const jobIdOf = (e: SpoolEntry) => (e.job as { jobId: string }).jobId;

let dir: string;
let path: string;
const open: Spool[] = [];

beforeEach(() => {
  dir = mkdtempSync(join(tmpdir(), 'gk-spool-test-'));
  path = join(dir, 'nested', 'ingest.spool');
});

afterEach(async () => {
  for (const s of open.splice(0)) await s.close();
  rmSync(dir, { recursive: true, force: true });
});

async function openSpool(maxEntries = 1_000, extra: Partial<SpoolOptions> = {}) {
  const opened = await Spool.open({ path, maxEntries, heartbeatMs: 50, staleMs: 400, ...extra });
  open.push(opened.spool);
  return opened;
}

const job = (n: number) => ({
  queue: 'transitions' as const,
  name: 'CONVERSATION/CREATED',
  jobId: `t-evt${n}`,
  data: { eventId: `evt${n}`, note: 'ü ✓ "quoted"\nnewline' },
});

async function closeAndForget(spool: Spool) {
  await spool.close();
  open.splice(open.indexOf(spool), 1);
}

describe('Spool', () => {
  it('keeps entries in order until relayed, and empties its file once all are', async () => {
    const { spool, report } = await openSpool();
    expect(report).toEqual({ recovered: 0, corrupt: 0, torn: false });
    for (let i = 1; i <= 5; i++) await spool.append(job(i));
    expect(spool.depth).toBe(5);
    const first = await spool.peek(3);
    expect(first.map((e) => e.job)).toEqual([job(1), job(2), job(3)]);
    await spool.markRelayed(first[2]?.seq ?? 0);
    expect(spool.depth).toBe(2);
    expect((await spool.peek(10)).map((e) => jobIdOf(e))).toEqual(['t-evt4', 't-evt5']);
    expect(statSync(path).size).toBeGreaterThan(0);
    const rest = await spool.peek(10);
    await spool.markRelayed(rest[1]?.seq ?? 0);
    expect(spool.depth).toBe(0);
    expect(statSync(path).size).toBe(0);
    await spool.append(job(6));
    expect((await spool.peek(10)).map((e) => jobIdOf(e))).toEqual(['t-evt6']);
  });

  it('writes concurrent appends together, every one resolved and kept in call order', async () => {
    const { spool } = await openSpool();
    await Promise.all(Array.from({ length: 200 }, (_, i) => spool.append(job(i))));
    const all = await spool.peek(500);
    expect(all.map((e) => jobIdOf(e))).toEqual(Array.from({ length: 200 }, (_, i) => `t-evt${i}`));
    expect(new Set(all.map((e) => e.seq)).size).toBe(200);
  });

  it('gives back after a restart exactly the entries not yet relayed, in order', async () => {
    const { spool } = await openSpool();
    for (let i = 1; i <= 6; i++) await spool.append(job(i));
    const [a, b] = await spool.peek(2);
    await spool.markRelayed(b?.seq ?? 0);
    expect(a?.seq).toBeLessThan(b?.seq ?? 0);
    await closeAndForget(spool);
    expect(existsSync(path)).toBe(true);

    const again = await openSpool();
    expect(again.report.recovered).toBe(4);
    expect((await again.spool.peek(10)).map((e) => e.job)).toEqual([job(3), job(4), job(5), job(6)]);
    // New entries come after the recovered ones.
    await again.spool.append(job(7));
    const all = await again.spool.peek(10);
    expect(all.map((e) => jobIdOf(e))).toEqual(['t-evt3', 't-evt4', 't-evt5', 't-evt6', 't-evt7']);
    expect(all[4]?.seq).toBeGreaterThan(all[3]?.seq ?? 0);
  });

  it('drops a record cut short by a crash and one that fails its checksum, keeping the rest', async () => {
    const { spool } = await openSpool();
    for (let i = 1; i <= 3; i++) await spool.append(job(i));
    await closeAndForget(spool);
    const lines = readFileSync(path, 'utf8').split('\n');
    // Flip one character of the second record's JSON (disk damage), then add half a record.
    lines[1] = (lines[1] ?? '').replace('evt2', 'evX2');
    writeFileSync(path, lines.join('\n'));
    appendFileSync(path, '0badc0de {"s":4,"j":{"queue":"trans');

    const again = await openSpool();
    expect(again.report).toEqual({ recovered: 2, corrupt: 1, torn: true });
    expect((await again.spool.peek(10)).map((e) => jobIdOf(e))).toEqual(['t-evt1', 't-evt3']);
    // The file was rewritten clean: new appends are readable after a restart.
    await again.spool.append(job(5));
    await closeAndForget(again.spool);
    const third = await openSpool();
    expect(third.report).toEqual({ recovered: 3, corrupt: 0, torn: false });
  });

  it('refuses entries beyond its bound, and takes them again once relayed', async () => {
    const { spool } = await openSpool(3);
    await Promise.all([spool.append(job(1)), spool.append(job(2)), spool.append(job(3))]);
    expect(spool.full).toBe(true);
    await expect(spool.append(job(4))).rejects.toBeInstanceOf(SpoolFullError);
    const [first] = await spool.peek(1);
    await spool.markRelayed(first?.seq ?? 0);
    await expect(spool.append(job(4))).resolves.toBeUndefined();
    expect(spool.depth).toBe(3);
  });

  it('removes its file on close when empty and keeps it when not', async () => {
    const { spool } = await openSpool();
    await closeAndForget(spool);
    expect(existsSync(path)).toBe(false);
    expect(existsSync(`${path}.lock`)).toBe(false);
    const second = await openSpool();
    await second.spool.append(job(1));
    await closeAndForget(second.spool);
    expect(existsSync(path)).toBe(true);
  });

  it('is refused while another live process holds it, and taken over from a dead one', async () => {
    const sleeper = spawn('sleep', ['30'], { stdio: 'ignore' });
    try {
      const { spool } = await openSpool();
      await closeAndForget(spool);
      writeFileSync(`${path}.lock`, String(sleeper.pid));
      await expect(Spool.open({ path, maxEntries: 10 })).rejects.toBeInstanceOf(SpoolLockedError);
      await expect(Spool.open({ path, maxEntries: 10 })).rejects.toThrow(/INGEST_SPOOL_PATH/);
    } finally {
      const exited = new Promise((resolve) => sleeper.once('exit', resolve));
      sleeper.kill('SIGKILL');
      await exited;
    }
    const { spool } = await openSpool();
    expect(JSON.parse(readFileSync(`${path}.lock`, 'utf8'))).toMatchObject({ pid: process.pid });
    await spool.append(job(1));
    expect(spool.depth).toBe(1);
  });

  it('refuses a second opener while the owner lives, naming the path, even with the same pid', async () => {
    await openSpool();
    const started = Date.now();
    await expect(Spool.open({ path, maxEntries: 10, heartbeatMs: 50, staleMs: 400 })).rejects.toThrow(
      new RegExp(`the spool ${path.replace(/[.*+?^${}()|[\]\\/]/g, '\\$&')} is in use by another ingest`),
    );
    // Refused on seeing the heartbeat move, not after waiting out the stale time.
    expect(Date.now() - started).toBeLessThan(400);
  });

  it('takes over a lock whose owner no longer touches it (a container that died), keeping its entries', async () => {
    const first = await openSpool();
    await first.spool.append(job(1));
    await first.spool.append(job(2));
    // The owner vanished without closing: another PID namespace, no heartbeat any more.
    writeFileSync(
      `${path}.lock`,
      JSON.stringify({
        instance: 'gone',
        pid: 1,
        host: 'other-host',
        boot: null,
        pidNamespace: null,
        started: null,
      }),
    );
    open.splice(open.indexOf(first.spool), 1);
    const started = Date.now();
    const second = await openSpool();
    expect(Date.now() - started).toBeGreaterThanOrEqual(350);
    expect((await second.spool.peek(10)).map(jobIdOf)).toEqual(['t-evt1', 't-evt2']);
    // The first one finds it lost its lock: it writes nothing more to the file.
    await new Promise((r) => setTimeout(r, 150));
    expect(first.spool.broken?.message).toMatch(/another ingest took over/);
    await expect(first.spool.append(job(3))).rejects.toThrow(/another ingest took over/);
    await first.spool.close();
    expect(existsSync(path)).toBe(true);
    expect(JSON.parse(readFileSync(`${path}.lock`, 'utf8')).instance).not.toBe('gone');
  });
});

describe('Spool I/O errors', () => {
  const enospc = () => Object.assign(new Error('ENOSPC: no space left on device, write'), { code: 'ENOSPC' });

  it('takes back a partial append and a partial marker, so every acknowledged entry reads back', async () => {
    let failNext: { op: string; partial: boolean } | null = null;
    const faults: SpoolFaults = (op) => {
      if (failNext?.op !== op) return undefined;
      const partial = failNext.partial;
      failNext = null;
      return { error: enospc(), partial };
    };
    const { spool } = await openSpool(1_000, { faults });
    await spool.append(job(1));
    failNext = { op: 'append', partial: true };
    await expect(spool.append(job(2))).rejects.toThrow(/ENOSPC/);
    await spool.append(job(3));
    failNext = { op: 'mark', partial: true };
    await expect(spool.markRelayed(1)).rejects.toThrow(/ENOSPC/);
    await spool.append(job(4));
    expect(spool.broken).toBeNull();
    await closeAndForget(spool);
    const again = await openSpool();
    expect(again.report).toMatchObject({ corrupt: 0, torn: false });
    // Entry 1's marker never reached the disk: it is relayed again (its job id makes that a no-op).
    expect((await again.spool.peek(10)).map(jobIdOf)).toEqual(['t-evt1', 't-evt3', 't-evt4']);
  });

  it('keeps the original file when the rewrite at open fails (a full disk), and relays from it', async () => {
    const first = await openSpool();
    for (let i = 1; i <= 4; i++) await first.spool.append(job(i));
    await first.spool.markRelayed(2);
    await closeAndForget(first.spool);
    appendFileSync(path, '0badc0de {"s":9'); // a torn tail: would join the next record's line
    const before = readFileSync(path, 'utf8');
    const failing = await openSpool(1_000, {
      faults: (op) => (op === 'rewrite' ? { error: enospc() } : undefined),
    });
    expect(failing.report.rewriteFailed).toMatch(/ENOSPC/);
    expect(readFileSync(path, 'utf8')).toBe(before.slice(0, before.lastIndexOf('\n') + 1));
    expect((await failing.spool.peek(10)).map(jobIdOf)).toEqual(['t-evt3', 't-evt4']);
    await failing.spool.append(job(5));
    await closeAndForget(failing.spool);
    const again = await openSpool();
    expect(again.report).toMatchObject({ corrupt: 0, torn: false });
    expect((await again.spool.peek(10)).map(jobIdOf)).toEqual(['t-evt3', 't-evt4', 't-evt5']);
  });

  it('throws a failed read to the caller (the relay retries it)', async () => {
    let fail = true;
    const { spool } = await openSpool(1_000, {
      faults: (op) =>
        op === 'peek' && fail
          ? { error: Object.assign(new Error('EIO: i/o error, read'), { code: 'EIO' }) }
          : undefined,
    });
    await spool.append(job(1));
    await expect(spool.peek(10)).rejects.toThrow(/EIO/);
    fail = false;
    expect((await spool.peek(10)).map(jobIdOf)).toEqual(['t-evt1']);
  });
});
