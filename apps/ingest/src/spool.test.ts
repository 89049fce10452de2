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
import { Spool, type SpooledJob, SpoolFullError, SpoolLockedError } from './spool.js';

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

async function openSpool(maxEntries = 1_000) {
  const opened = await Spool.open({ path, maxEntries });
  open.push(opened.spool);
  return opened;
}

const job = (n: number): SpooledJob => ({
  queue: 'transitions',
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
    expect((await spool.peek(10)).map((e) => e.job.jobId)).toEqual(['t-evt4', 't-evt5']);
    expect(statSync(path).size).toBeGreaterThan(0);
    const rest = await spool.peek(10);
    await spool.markRelayed(rest[1]?.seq ?? 0);
    expect(spool.depth).toBe(0);
    expect(statSync(path).size).toBe(0);
    await spool.append(job(6));
    expect((await spool.peek(10)).map((e) => e.job.jobId)).toEqual(['t-evt6']);
  });

  it('writes concurrent appends together, every one resolved and kept in call order', async () => {
    const { spool } = await openSpool();
    await Promise.all(Array.from({ length: 200 }, (_, i) => spool.append(job(i))));
    const all = await spool.peek(500);
    expect(all.map((e) => e.job.jobId)).toEqual(Array.from({ length: 200 }, (_, i) => `t-evt${i}`));
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
    expect(all.map((e) => e.job.jobId)).toEqual(['t-evt3', 't-evt4', 't-evt5', 't-evt6', 't-evt7']);
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
    expect((await again.spool.peek(10)).map((e) => e.job.jobId)).toEqual(['t-evt1', 't-evt3']);
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
    expect(readFileSync(`${path}.lock`, 'utf8')).toBe(String(process.pid));
    await spool.append(job(1));
    expect(spool.depth).toBe(1);
  });
});
