/**
 * The operator CLI as an operator runs it: the built bin (`node apps/worker/dist/cli/jobs.js`)
 * as a subprocess against the Redis a worker uses, with failures induced through the Klaviyo
 * stand-in, listed, retried and then delivered.
 */
import { freePort, type TestRedis, useTestRedis, waitFor } from '@gk/testing';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { FailedList, JobCounts, RetryReport } from '../src/cli/failed-jobs.js';
import { type Harness, metricValue, startHarness } from './harness.js';
import { type CliRun, runBuiltJobsCli } from './jobs-cli-process.js';

let redis: TestRedis;
let h: Harness;

function runCli(args: string[], env: Record<string, string> = {}): Promise<CliRun> {
  return runBuiltJobsCli(args, { ...redis.env, QUEUE_PREFIX: h.prefix, ...env });
}

async function json<T>(args: string[]): Promise<T> {
  const run = await runCli([...args, '--json']);
  expect(run.stderr).toBe('');
  expect(run.code).toBe(0);
  return JSON.parse(run.stdout) as T;
}

beforeAll(async () => {
  redis = await useTestRedis();
  h = await startHarness(redis.target);
});
afterAll(async () => {
  await h?.close();
  await redis?.stop();
});

const REFUSED = 'Refused.Person@example.com';
const CONFLICT = 'conflict.person@example.org';

describe('gk-jobs against a worker with induced permanent failures', () => {
  it('lists failed deliveries with masked emails, retries one by id, the rest by reason, and they arrive', async () => {
    h.gladly.setCustomer('cust-refused', [REFUSED]);
    h.gladly.setCustomer('cust-conflict', [CONFLICT]);
    // Klaviyo refuses the first post with 400 and the second with 409: both permanent.
    h.klaviyo.injectFaults({ status: 400 });
    await h.send('CONVERSATION/CREATED', {
      id: 'evt-cli-400',
      customerId: 'cust-refused',
      at: '2026-11-20T14:00:00Z',
    });
    await waitFor(async () => (await h.producer.deliveries.getFailedCount()) === 1, {
      what: 'first failure',
    });
    h.klaviyo.injectFaults({ status: 409 });
    await h.send('CONVERSATION/CLOSED', {
      id: 'evt-cli-409',
      customerId: 'cust-conflict',
      at: '2026-11-20T14:05:00Z',
    });
    await waitFor(async () => (await h.producer.deliveries.getFailedCount()) === 2, {
      what: 'second failure',
    });
    // Counted when BullMQ reports the failure, a moment after Redis has it.
    await waitFor(
      async () => (await metricValue(h.registry, 'gk_jobs_failed_total', { queue: 'deliveries' })) === 2,
      {
        what: 'gk_jobs_failed_total',
      },
    );
    expect(h.logLines.some((l) => l.includes('job failed') && l.includes('evt-cli-400'))).toBe(true);

    const counts = await json<Record<string, JobCounts>>(['counts']);
    expect(counts.deliveries?.failed).toBe(2);
    expect(counts.transitions?.completed).toBe(2);

    const list = await json<FailedList>(['failed', '--queue', 'deliveries']);
    expect(list.totals).toEqual({ deliveries: 2 });
    expect(list.jobs.map((j) => j.eventId).sort()).toEqual(['evt-cli-400', 'evt-cli-409']);
    const refused = list.jobs.find((j) => j.eventId === 'evt-cli-400');
    expect(refused).toMatchObject({
      queue: 'deliveries',
      email: 'R***@example.com',
      customerId: 'cust-refused',
      gladlyType: 'CONVERSATION/CREATED',
      attempts: 1,
    });
    expect(refused?.reason).toMatch(/^klaviyo 400/);
    expect(list.jobs.find((j) => j.eventId === 'evt-cli-409')?.reason).toMatch(/^klaviyo 409/);

    // The text form, for people: a table with the job id, the masked email and the reason.
    const text = await runCli(['failed']);
    expect(text.code).toBe(0);
    expect(text.stdout).toContain('failed jobs: transitions 0, deliveries 2');
    expect(text.stdout).toContain(refused?.id);
    expect(text.stdout).toContain('R***@example.com');
    expect(text.stdout).toMatch(/klaviyo 400/);
    for (const out of [JSON.stringify(list), text.stdout]) {
      expect(out.toLowerCase()).not.toContain(REFUSED.toLowerCase());
      expect(out).not.toContain(CONFLICT);
    }

    // --reason filters the list.
    const only409 = await json<FailedList>(['failed', '--reason', 'klaviyo 409']);
    expect(only409.matched).toBe(1);
    expect(only409.jobs.map((j) => j.eventId)).toEqual(['evt-cli-409']);

    // Retry one by id: it is delivered; the other stays failed.
    const one = await json<RetryReport>(['retry', refused?.id ?? '']);
    expect(one).toEqual({ retried: [{ queue: 'deliveries', id: refused?.id }], refused: [] });
    await waitFor(() => h.klaviyo.events.some((e) => e.uniqueId === 'evt-cli-400'), {
      what: 'the retried delivery',
    });
    expect(h.klaviyo.profile(REFUSED)?.properties['In Gladly Conversation']).toBe(true);
    expect(await h.producer.deliveries.getFailedCount()).toBe(1);

    // Retrying it again is refused: it is no longer failed (exit 1, for scripts).
    const again = await runCli(['retry', refused?.id ?? '', 'd-no-such-job', '--json']);
    expect(again.code).toBe(1);
    const againReport = JSON.parse(again.stdout) as RetryReport;
    expect(againReport.retried).toEqual([]);
    expect(againReport.refused.map((r) => r.why)).toEqual([
      'not failed (it is completed)',
      'no such job in transitions or deliveries or customer-changes',
    ]);

    // Retry by reason: the 409 one, delivered too; nothing failed remains.
    const byReason = await json<RetryReport>(['retry', '--reason', 'klaviyo 40\\d']);
    expect(byReason.retried).toHaveLength(1);
    await waitFor(() => h.klaviyo.events.some((e) => e.uniqueId === 'evt-cli-409'), {
      what: 'the second retry',
    });
    await waitFor(async () => (await h.producer.deliveries.getFailedCount()) === 0, {
      what: 'no failed left',
    });
    // The stand-in records the event before its 202 reaches the worker, which counts it after.
    await waitFor(
      async () => (await metricValue(h.registry, 'gk_deliveries_total', { outcome: 'delivered' })) === 2,
      { what: 'both retried deliveries counted as delivered' },
    );
  });

  it('retries every failed job of a queue with --all, with a fresh set of attempts', async () => {
    h.gladly.setCustomer('cust-all', ['all.one@example.com', 'all.two@example.com']);
    h.klaviyo.injectFaults({ status: 400 }, { status: 400 });
    await h.send('CONVERSATION/CREATED', {
      id: 'evt-cli-all',
      customerId: 'cust-all',
      at: '2026-11-20T15:00:00Z',
    });
    await waitFor(async () => (await h.producer.deliveries.getFailedCount()) === 2, { what: 'two failures' });
    // A transition with a payload the worker refuses lands in the transitions queue's failed set.
    await h.producer.transitions.add('bogus', { nonsense: true } as never, { jobId: 't-bogus' });
    await waitFor(async () => (await h.producer.transitions.getFailedCount()) === 1, {
      what: 'bad transition',
    });

    const limited = await json<FailedList>(['failed', '--limit', '1']);
    expect(limited.matched).toBe(3);
    expect(limited.jobs).toHaveLength(1);

    const all = await json<RetryReport>(['retry', '--all', '--queue', 'deliveries']);
    expect(all.retried.map((r) => r.queue)).toEqual(['deliveries', 'deliveries']);
    await waitFor(() => h.klaviyo.events.filter((e) => e.uniqueId === 'evt-cli-all').length === 2, {
      what: 'both retried deliveries',
    });
    const completed = await h.producer.deliveries.getCompleted();
    for (const job of completed.filter((j) => j.data.eventId === 'evt-cli-all'))
      expect(job.attemptsMade).toBe(1);
    // The transitions queue was not asked for.
    expect(await h.producer.transitions.getFailedCount()).toBe(1);
    const transitions = await json<FailedList>(['failed', '--queue', 'transitions']);
    expect(transitions.jobs[0]).toMatchObject({ id: 't-bogus', queue: 'transitions' });
    expect(transitions.jobs[0]?.reason).toMatch(/invalid transition payload/);
  });

  it('explains usage mistakes (exit 2) and an unreachable Redis (exit 1) on stderr', async () => {
    const usage = await runCli(['retry']);
    expect(usage.code).toBe(2);
    expect(usage.stderr).toMatch(/retry needs exactly one of/);
    expect(usage.stderr).toMatch(/Usage: npm run jobs/);
    expect(usage.stdout).toBe('');

    const help = await runCli(['--help']);
    expect(help.code).toBe(0);
    expect(help.stdout).toMatch(/Commands:/);

    const port = await freePort();
    const down = await runCli(['counts'], {
      REDIS_URL: `redis://:cli-secret-pw@127.0.0.1:${port}`,
      REDIS_CLUSTER_NODES: '',
    });
    expect(down.code).toBe(1);
    expect(down.stderr).toMatch(
      new RegExp(`Redis unreachable at redis://:\\*\\*\\*@127\\.0\\.0\\.1:${port}`),
    );
    expect(down.stderr).not.toContain('cli-secret-pw');

    const badEnv = await runCli(['counts'], { QUEUE_PREFIX: 'no spaces allowed' });
    expect(badEnv.code).toBe(1);
    expect(badEnv.stderr).toMatch(/QUEUE_PREFIX/);
  });
});
