import { describe, expect, it } from 'vitest';
import { parseBackfillArgs, parseSince, UsageError } from './backfill-args.js';
import { formatSummary } from './backfill-run.js';

const now = new Date('2026-11-20T15:00:00.000Z');

describe('parseSince', () => {
  it.each([
    ['2h', '2026-11-20T13:00:00.000Z'],
    ['30m', '2026-11-20T14:30:00.000Z'],
    ['90s', '2026-11-20T14:58:30.000Z'],
    ['1h30m', '2026-11-20T13:30:00.000Z'],
    ['24h', '2026-11-19T15:00:00.000Z'],
    ['2026-11-20T14:00:00Z', '2026-11-20T14:00:00.000Z'],
    ['2026-11-20T15:00:00+02:00', '2026-11-20T13:00:00.000Z'],
    ['2026-11-20T14:15:30.250Z', '2026-11-20T14:15:30.250Z'],
  ])('%s → %s', (value, iso) => {
    expect(parseSince(value, now).toISOString()).toBe(iso);
  });

  it('refuses more than Gladly’s 24 hours, saying why', () => {
    expect(() => parseSince('25h', now)).toThrow(
      /reaches back 25 h 0 min: Gladly's Events API only keeps the last 24 hours/,
    );
    expect(() => parseSince('24h1s', now)).toThrow(UsageError);
    expect(() => parseSince('2026-11-19T14:59:59Z', now)).toThrow(/last 24 hours/);
  });

  it('refuses the future, a time without zone and anything else', () => {
    expect(() => parseSince('2026-11-20T16:00:00Z', now)).toThrow(/in the future/);
    expect(() => parseSince('2026-11-20T14:00:00', now)).toThrow(/time zone/);
    for (const bad of ['', 'yesterday', '2d', '-2h', 'h', '1.5h'])
      expect(() => parseSince(bad, now)).toThrow(UsageError);
  });
});

describe('parseBackfillArgs', () => {
  it('reads --since (both spellings), --dry-run and --json', () => {
    expect(parseBackfillArgs(['--since', '2h'], now)).toEqual({
      kind: 'run',
      since: new Date('2026-11-20T13:00:00.000Z'),
      dryRun: false,
      json: false,
    });
    expect(parseBackfillArgs(['--dry-run', '--since=30m', '--json'], now)).toMatchObject({
      dryRun: true,
      json: true,
    });
    expect(parseBackfillArgs(['--help'], now)).toEqual({ kind: 'help' });
  });

  it('requires --since and refuses unknown arguments', () => {
    expect(() => parseBackfillArgs([], now)).toThrow(/--since is required/);
    expect(() => parseBackfillArgs(['--since'], now)).toThrow(/needs a value/);
    expect(() => parseBackfillArgs(['--since', '--dry-run'], now)).toThrow(/needs a value/);
    expect(() => parseBackfillArgs(['--since', '1h', '--force'], now)).toThrow(/unknown argument "--force"/);
  });
});

describe('formatSummary', () => {
  it('says what was read, stored, already there, skipped by type and invalid', () => {
    const text = formatSummary({
      dryRun: false,
      read: 9,
      transitions: 5,
      enqueued: 2,
      missing: 2,
      alreadyPresent: 3,
      skippedByType: { 'CONVERSATION/TOPIC_ADDED': 1, 'CONVERSATION/NOTE_CREATED': 2 },
      invalid: 1,
      invalidLines: [{ line: 7, reason: 'content.customerId: must be a non-empty string' }],
    });
    expect(text).toContain('Read 9 events from Gladly: 5 conversation transitions.');
    expect(text).toMatch(/enqueued: +2/);
    expect(text).toMatch(/already present: +3/);
    expect(text).toMatch(/skipped: +3/);
    expect(text.indexOf('CONVERSATION/NOTE_CREATED: 2')).toBeLessThan(
      text.indexOf('CONVERSATION/TOPIC_ADDED: 1'),
    );
    expect(text).toContain('line 7: content.customerId: must be a non-empty string');
  });

  it('in a dry run says what would be enqueued', () => {
    const text = formatSummary({
      dryRun: true,
      read: 1,
      transitions: 1,
      enqueued: 0,
      missing: 1,
      alreadyPresent: 0,
      skippedByType: {},
      invalid: 0,
      invalidLines: [],
    });
    expect(text).toMatch(/would enqueue: +1 +\(dry run: nothing stored\)/);
    expect(text).not.toMatch(/^ +enqueued:/m);
  });
});
