import type { Job } from 'bullmq';
import { describe, expect, it } from 'vitest';
import { viewFailedJob } from './failed-jobs.js';
import { formatCounts, formatFailed, table } from './format.js';

const failedDelivery = {
  id: 'd-evt1-0a1b2c',
  data: {
    eventId: 'evt1',
    gladlyType: 'CONVERSATION/CREATED',
    customerId: 'cust-1',
    email: 'Rosa.Alvarez@example.com',
  },
  attemptsMade: 1,
  failedReason: "klaviyo 400: invalid email 'Rosa.Alvarez@example.com'",
  finishedOn: Date.parse('2026-11-20T14:03:30.000Z'),
} as unknown as Job<Record<string, unknown>>;

describe('viewFailedJob', () => {
  it('masks the email in the job and in the reason', () => {
    const view = viewFailedJob('deliveries', failedDelivery);
    expect(view).toEqual({
      queue: 'deliveries',
      id: 'd-evt1-0a1b2c',
      eventId: 'evt1',
      gladlyType: 'CONVERSATION/CREATED',
      customerId: 'cust-1',
      email: 'R***@example.com',
      attempts: 1,
      reason: "klaviyo 400: invalid email 'R***@example.com'",
      failedAt: '2026-11-20T14:03:30.000Z',
    });
    expect(JSON.stringify(view)).not.toMatch(/rosa/i);
  });

  it('copes with a job whose payload is not what the bridge writes', () => {
    const view = viewFailedJob('transitions', { id: 't-x', data: null, attemptsMade: 0 } as unknown as Job<
      Record<string, unknown>
    >);
    expect(view).toEqual({ queue: 'transitions', id: 't-x', attempts: 0, reason: '(no reason recorded)' });
  });
});

describe('text output', () => {
  it('aligns columns without padding the last one', () => {
    expect(
      table([
        ['a', 'bb', 'c'],
        ['ccc', 'd', 'e e'],
      ]),
    ).toBe('a    bb  c\nccc  d   e e');
  });

  it('shows counts per queue and state', () => {
    const text = formatCounts({
      transitions: {
        waiting: 1,
        active: 0,
        delayed: 2,
        prioritized: 0,
        failed: 0,
        completed: 9,
        paused: false,
      },
      deliveries: {
        waiting: 4,
        active: 0,
        delayed: 0,
        prioritized: 0,
        failed: 1,
        completed: 3,
        paused: true,
      },
    });
    expect(text.split('\n')[0]).toMatch(
      /^queue\s+waiting\s+active\s+delayed\s+prioritized\s+failed\s+completed\s+paused$/,
    );
    expect(text.split('\n')[1]).toMatch(/^transitions\s+1\s+0\s+2\s+0\s+0\s+9\s+no$/);
    expect(text.split('\n')[2]).toMatch(/^deliveries\s+4\s+0\s+0\s+0\s+1\s+3\s+yes$/);
  });

  it('lists failed jobs and says when more exist than shown', () => {
    const view = viewFailedJob('deliveries', failedDelivery);
    const text = formatFailed({ totals: { deliveries: 3 }, matched: 3, jobs: [view] });
    expect(text).toContain('failed jobs: deliveries 3');
    expect(text).toContain('d-evt1-0a1b2c');
    expect(text).toContain('R***@example.com');
    expect(text).toContain('(showing 1; use --limit for more)');
    expect(formatFailed({ totals: { deliveries: 0 }, matched: 0, jobs: [] })).toContain('(none to show)');
  });
});
