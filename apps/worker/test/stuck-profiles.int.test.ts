/**
 * `npm run jobs -- profiles stuck [--close]` as an operator runs it (the built bin as a
 * subprocess, and the same CLI in-process for the terminal's questions) against a worker whose
 * addresses were set "in conversation" by conversations that never closed.
 */
import { hashEmail } from '@gk/domain';
import { createWorkerConnection } from '@gk/queue';
import { type TestRedis, useTestRedis, waitFor } from '@gk/testing';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { type CliIo, runJobsCli } from '../src/cli/run.js';
import type { CloseReport, StuckList } from '../src/cli/stuck-profiles.js';
import { type Harness, metricValue, startHarness } from './harness.js';
import { type CliRun, runBuiltJobsCli } from './jobs-cli-process.js';

const PROP = 'In Gladly Conversation';
const DAY = 24 * 3600 * 1000;

let redis: TestRedis;
let h: Harness;

function runCli(args: string[], env: Record<string, string> = {}): Promise<CliRun> {
  return runBuiltJobsCli(args, { ...redis.env, QUEUE_PREFIX: h.prefix, ...env });
}

async function json<T>(args: string[], env: Record<string, string> = {}): Promise<T> {
  const run = await runCli([...args, '--json'], env);
  expect(run.stderr).toBe('');
  expect(run.code).toBe(0);
  return JSON.parse(run.stdout) as T;
}

const OLD = 'forgotten.person@example.com';
const OLDER = 'older.person@example.org';
const RECENT = 'recent.person@example.com';
const prop = (email: string) => h.klaviyo.profile(email)?.properties[PROP];

async function settled() {
  await waitFor(
    async () => {
      const counts = await Promise.all(
        [h.producer.transitions, h.producer.deliveries].map((q) =>
          q.getJobCounts('waiting', 'active', 'delayed', 'prioritized'),
        ),
      );
      return counts.every((c) => Object.values(c).every((n) => n === 0));
    },
    { timeoutMs: 20_000, what: 'queues to drain' },
  );
}

beforeAll(async () => {
  redis = await useTestRedis();
  h = await startHarness(redis.target);
  h.gladly.setCustomer('cust-old', [OLD]);
  h.gladly.setCustomer('cust-older', [OLDER]);
  h.gladly.setCustomer('cust-recent', [RECENT]);
  // Conversations whose close never came: 20 and 30 days ago, and one from yesterday.
  const ago = (days: number) => new Date(Date.now() - days * DAY).toISOString();
  await h.send('CONVERSATION/CREATED', { id: 'stuck-old', customerId: 'cust-old', at: ago(20) });
  await h.send('CONVERSATION/CREATED', { id: 'stuck-older', customerId: 'cust-older', at: ago(30) });
  await h.send('CONVERSATION/CREATED', { id: 'stuck-recent', customerId: 'cust-recent', at: ago(1) });
  await waitFor(() => [OLD, OLDER, RECENT].every((e) => prop(e) === true), { what: 'three open profiles' });
  await settled();
});
afterAll(async () => {
  await h?.close();
  await redis?.stop();
});

describe('profiles stuck', () => {
  it('lists addresses held longer than STUCK_AFTER_DAYS, oldest first, masked, with their conversations', async () => {
    const list = await json<StuckList>(['profiles', 'stuck']);
    expect(list.stuckAfterDays).toBe(14);
    expect(list.addresses.map((a) => a.email)).toEqual(['o***@example.org', 'f***@example.com']);
    expect(list.addresses[0]).toMatchObject({
      days: 30,
      customerId: 'cust-older',
      conversations: ['conv-cust-older'],
    });
    expect(list.addresses[0]?.id).toMatch(/^[0-9a-f]{24}$/);

    // The worker's gauge counts the same (STUCK_AFTER_DAYS of its own configuration).
    expect(await metricValue(h.registry, 'gk_profiles_stuck')).toBe(2);

    const wider = await json<StuckList>(['profiles', 'stuck'], { STUCK_AFTER_DAYS: '0' });
    expect(wider.addresses).toHaveLength(3);

    const text = await runCli(['profiles', 'stuck']);
    expect(text.code).toBe(0);
    expect(text.stdout).toContain('for more than 14 day(s): 2');
    expect(text.stdout).toContain('f***@example.com');
    expect(text.stdout).toContain('conv-cust-old');
    for (const out of [JSON.stringify(list), JSON.stringify(wider), text.stdout]) {
      for (const email of [OLD, OLDER, RECENT]) expect(out).not.toContain(email);
    }
  });

  it('--close <id> sends the closing event; the address ends "not in conversation" and leaves the list', async () => {
    const list = await json<StuckList>(['profiles', 'stuck']);
    const target = list.addresses.find((a) => a.email === 'f***@example.com');
    const report = await json<CloseReport>(['profiles', 'stuck', '--close', target?.id ?? '']);
    expect(report.notHeld).toEqual([]);
    expect(report.queued).toMatchObject([{ id: target?.id, email: 'f***@example.com', outcome: 'accepted' }]);
    await waitFor(() => prop(OLD) === false, { what: 'the closing event' });
    const event = h.klaviyo.profile(OLD)?.events.at(-1);
    expect(event).toMatchObject({ metricName: 'closed conversation in Gladly', backfill: false });
    expect(event?.uniqueId).toMatch(/^bridge-release-/);
    await settled();
    const after = await json<StuckList>(['profiles', 'stuck']);
    expect(after.addresses.map((a) => a.email)).toEqual(['o***@example.org']);

    // Closing it again: it is no longer held; nothing is sent, and a script sees exit 1.
    const again = await runCli([
      'profiles',
      'stuck',
      '--close',
      target?.id ?? '',
      'ffffffffffffffffffffffff',
      '--json',
    ]);
    expect(again.code).toBe(1);
    expect((JSON.parse(again.stdout) as CloseReport).notHeld).toEqual([
      target?.id,
      'ffffffffffffffffffffffff',
    ]);
    expect(again.stderr).toMatch(/is not held "in conversation"/);
  });

  it('--close alone asks about each listed address on a terminal, and sends only what was confirmed', async () => {
    const out: string[] = [];
    const questions: string[] = [];
    const io: CliIo = {
      stdout: (t) => out.push(t),
      stderr: (t) => out.push(t),
      ask: async (q) => {
        questions.push(q);
        return false;
      },
    };
    const env = { ...redis.env, QUEUE_PREFIX: h.prefix };
    expect(await runJobsCli(['profiles', 'stuck', '--close'], env, io)).toBe(0);
    expect(questions).toHaveLength(1);
    expect(questions[0]).toMatch(
      /^send "not in conversation" to o\*\*\*@example\.org \(held 30 days; conv-cust-older\)\?/,
    );
    expect(out.join('')).toContain('closing events queued: 0');
    expect(prop(OLDER)).toBe(true);

    io.ask = async () => true;
    expect(await runJobsCli(['profiles', 'stuck', '--close'], env, io)).toBe(0);
    await waitFor(() => prop(OLDER) === false, { what: 'the confirmed close' });
    for (const line of out) for (const email of [OLD, OLDER, RECENT]) expect(line).not.toContain(email);

    // Without a terminal (no one to ask) it refuses, exit 2.
    const lines: string[] = [];
    const noTty: CliIo = { stdout: (t) => lines.push(t), stderr: (t) => lines.push(t) };
    expect(await runJobsCli(['profiles', 'stuck', '--close'], env, noTty)).toBe(2);
    expect(lines.join('')).toMatch(/run it on a terminal, or name the ids/);
  });

  it('drops an address from the list once its state expired (nothing left to close)', async () => {
    const connection = createWorkerConnection(redis.target, 'stuck-test');
    try {
      const id = hashEmail(RECENT, await h.bridge.pseudonyms.get());
      const before = await json<StuckList>(['profiles', 'stuck'], { STUCK_AFTER_DAYS: '0' });
      expect(before.addresses.map((a) => a.id)).toContain(id);
      await connection.del(`${h.prefix}:state:email:${id}:held`);
      const after = await json<StuckList>(['profiles', 'stuck'], { STUCK_AFTER_DAYS: '0' });
      expect(after.addresses.map((a) => a.id)).not.toContain(id);
      expect(await connection.zscore(`${h.prefix}:state:held`, id)).toBeNull();
    } finally {
      connection.disconnect();
    }
  });

  it('explains usage mistakes (exit 2)', async () => {
    for (const args of [
      ['profiles'],
      ['profiles', 'stuck', 'abc'],
      ['profiles', 'stuck', '--all', '--close'],
      ['profiles', 'stuck', '--close', '--json'],
      ['counts', '--close'],
    ]) {
      const run = await runCli(args);
      expect(run.code, args.join(' ')).toBe(2);
      expect(run.stderr).toMatch(/Usage: npm run jobs/);
    }
    const bad = await runCli(['profiles', 'stuck'], { STUCK_AFTER_DAYS: 'soon' });
    expect(bad.code).toBe(1);
    expect(bad.stderr).toMatch(/STUCK_AFTER_DAYS/);
  });
});
