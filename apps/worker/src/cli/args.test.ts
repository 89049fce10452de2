import { describe, expect, it } from 'vitest';
import { parseCliArgs, UsageError } from './args.js';
import { describeTarget } from './run.js';

describe('parseCliArgs', () => {
  it('reads profiles stuck, with --close ids or alone (asked on a terminal)', () => {
    expect(parseCliArgs(['profiles', 'stuck'])).toEqual({ kind: 'profiles-stuck', json: false });
    expect(parseCliArgs(['profiles', 'stuck', '--close', 'a1', 'b2', '--json'])).toEqual({
      kind: 'profiles-stuck',
      json: true,
      close: { ids: ['a1', 'b2'] },
    });
    expect(parseCliArgs(['profiles', 'stuck', '--close'])).toEqual({
      kind: 'profiles-stuck',
      json: false,
      close: { ask: true },
    });
    for (const argv of [
      ['profiles'],
      ['profiles', 'old'],
      ['profiles', 'stuck', 'a1'],
      ['profiles', 'stuck', '--close', '--json'],
      ['profiles', 'stuck', '--queue', 'deliveries'],
      ['profiles', 'stuck', '--close', '--all'],
      ['spool', 'list', '--close'],
      ['failed', '--close'],
    ]) {
      expect(() => parseCliArgs(argv), argv.join(' ')).toThrow(UsageError);
    }
  });

  it('reads each command with its defaults', () => {
    expect(parseCliArgs(['counts'])).toEqual({
      kind: 'counts',
      queues: ['transitions', 'deliveries', 'customer-changes'],
      json: false,
    });
    expect(parseCliArgs(['failed', '--queue', 'deliveries', '--json', '--limit', '5'])).toEqual({
      kind: 'failed',
      queues: ['deliveries'],
      limit: 5,
      json: true,
    });
    expect(parseCliArgs(['retry', 'd-1', 'd-2'])).toMatchObject({
      kind: 'retry',
      target: { ids: ['d-1', 'd-2'] },
    });
    expect(parseCliArgs(['retry', '--all', '--queue=transitions'])).toMatchObject({
      kind: 'retry',
      queues: ['transitions'],
      target: { all: true },
    });
    expect(parseCliArgs(['--help'])).toEqual({ kind: 'help' });
    expect(parseCliArgs(['failed', '-h'])).toEqual({ kind: 'help' });
  });

  it('compiles --reason as a case-insensitive pattern', () => {
    const cmd = parseCliArgs(['retry', '--reason', 'klaviyo 4\\d\\d']);
    expect(cmd.kind).toBe('retry');
    const reason = cmd.kind === 'retry' && 'reason' in cmd.target ? cmd.target.reason : null;
    expect(reason?.test('KLAVIYO 400: invalid')).toBe(true);
    expect(reason?.test('klaviyo 503')).toBe(false);
  });

  it.each([
    [[], /command is required/],
    [['list'], /unknown command "list"/],
    [['counts', 'extra'], /takes no arguments/],
    [['counts', '--reason', 'x'], /--reason does not apply to "counts"/],
    [['failed', '--all'], /--all does not apply/],
    [['failed', '--limit', '0'], /--limit must be/],
    [['failed', '--limit', 'ten'], /--limit must be/],
    [['failed', '--queue', 'emails'], /--queue must be one of transitions, deliveries, customer-changes/],
    [['failed', '--reason', '('], /not a valid regular expression/],
    [['retry'], /exactly one of/],
    [['retry', 'd-1', '--all'], /exactly one of/],
    [['retry', '--all', '--reason', 'x'], /exactly one of/],
    [['retry', '--all', '--limit', '3'], /--limit does not apply/],
    [['counts', '--bogus'], /Unknown option '--bogus'/],
  ])('refuses %j', (argv, message) => {
    expect(() => parseCliArgs(argv)).toThrow(UsageError);
    expect(() => parseCliArgs(argv)).toThrow(message);
  });
});

describe('describeTarget', () => {
  it('never shows the Redis password', () => {
    expect(describeTarget('redis://:s3cret@redis.internal:6379/0', [])).toBe(
      'redis://:***@redis.internal:6379/0',
    );
    expect(describeTarget('rediss://app:s3cret@redis.internal:6380', [])).not.toContain('s3cret');
    expect(describeTarget('redis://x', ['10.0.0.1:7000', '10.0.0.2:7000'])).toBe(
      'cluster 10.0.0.1:7000,10.0.0.2:7000',
    );
  });
});

describe('parseCliArgs: spool', () => {
  it('reads list, requeue and drop of dead-lettered spool entries', () => {
    expect(parseCliArgs(['spool', 'list'])).toEqual({ kind: 'spool-list', json: false });
    expect(parseCliArgs(['spool', 'list', '--json', '--spool', '/data/ingest.spool'])).toEqual({
      kind: 'spool-list',
      json: true,
      spool: '/data/ingest.spool',
    });
    expect(parseCliArgs(['spool', 'requeue', 'a1', 'b2'])).toEqual({
      kind: 'spool-requeue',
      json: false,
      target: { ids: ['a1', 'b2'] },
    });
    expect(parseCliArgs(['spool', 'drop', '--all'])).toEqual({
      kind: 'spool-drop',
      json: false,
      target: { all: true },
    });
  });

  it.each([
    [['spool'], /list, requeue or drop/],
    [['spool', 'requeue'], /exactly one of/],
    [['spool', 'drop', 'a1', '--all'], /exactly one of/],
    [['spool', 'list', '--queue', 'deliveries'], /--queue does not apply/],
    [['counts', '--spool', 'x'], /--spool does not apply/],
  ])('refuses %j', (argv, message) => {
    expect(() => parseCliArgs(argv)).toThrow(message);
  });
});
