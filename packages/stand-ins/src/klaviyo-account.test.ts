import { describe, expect, it } from 'vitest';
import { hasScope, parseSegmentQuery, validateCreateSegment } from './klaviyo-account.js';

const condition = {
  type: 'profile-property',
  property: "properties['In Gladly Conversation']",
  filter: { type: 'boolean', operator: 'equals', value: true },
};
const body = (attributes: Record<string, unknown>) => ({ data: { type: 'segment', attributes } });

describe('validateCreateSegment (SegmentCreateQuery)', () => {
  it('accepts the suppression segment', () => {
    const result = validateCreateSegment(
      body({
        name: 'In a Gladly conversation',
        definition: { condition_groups: [{ conditions: [condition] }] },
      }),
    );
    expect(result).toMatchObject({
      ok: true,
      segment: { name: 'In a Gladly conversation', isStarred: false },
    });
  });

  it.each([
    ['no data', {}],
    ['wrong type', { data: { type: 'list', attributes: {} } }],
    ['no name', body({ definition: { condition_groups: [{ conditions: [condition] }] } })],
    ['no definition', body({ name: 'x' })],
    ['no condition_groups', body({ name: 'x', definition: {} })],
    ['empty groups', body({ name: 'x', definition: { condition_groups: [] } })],
    ['group without conditions', body({ name: 'x', definition: { condition_groups: [{}] } })],
    [
      'unknown condition type',
      body({
        name: 'x',
        definition: { condition_groups: [{ conditions: [{ ...condition, type: 'nope' }] }] },
      }),
    ],
    [
      'boolean filter with a string value',
      body({
        name: 'x',
        definition: {
          condition_groups: [
            { conditions: [{ ...condition, filter: { ...condition.filter, value: 'true' } }] },
          ],
        },
      }),
    ],
    [
      'boolean filter with another operator',
      body({
        name: 'x',
        definition: {
          condition_groups: [
            { conditions: [{ ...condition, filter: { ...condition.filter, operator: 'not-equals' } }] },
          ],
        },
      }),
    ],
    [
      'condition without property',
      body({
        name: 'x',
        definition: {
          condition_groups: [{ conditions: [{ type: 'profile-property', filter: condition.filter }] }],
        },
      }),
    ],
    [
      'is_starred not boolean',
      body({ name: 'x', is_starred: 'yes', definition: { condition_groups: [{ conditions: [condition] }] } }),
    ],
  ])('refuses %s with 400 and a pointer', (_what, input) => {
    const result = validateCreateSegment(input);
    expect(result.ok).toBe(false);
    if (!result.ok) {
      expect(result.errors[0]).toMatchObject({ status: 400, code: 'invalid' });
      expect(result.errors[0]?.source.pointer).toMatch(/^\//);
    }
  });
});

describe('parseSegmentQuery', () => {
  it('reads a name filter in either quote style, page size and cursor', () => {
    expect(parseSegmentQuery(new URLSearchParams({ filter: 'equals(name,"A \\"b\\"")' }))).toEqual({
      ok: true,
      name: 'A "b"',
      pageSize: 10,
      offset: 0,
    });
    expect(
      parseSegmentQuery(
        new URLSearchParams({ filter: "equals(name,'x')", 'page[size]': '3', 'page[cursor]': '6' }),
      ),
    ).toEqual({ ok: true, name: 'x', pageSize: 3, offset: 6 });
  });

  it('refuses page sizes outside 1..10 and other filters', () => {
    expect(parseSegmentQuery(new URLSearchParams({ 'page[size]': '11' })).ok).toBe(false);
    expect(parseSegmentQuery(new URLSearchParams({ 'page[size]': '0' })).ok).toBe(false);
    expect(parseSegmentQuery(new URLSearchParams({ filter: 'contains(name,"x")' })).ok).toBe(false);
  });
});

describe('hasScope', () => {
  it('a full-access key has everything; write implies read', () => {
    expect(hasScope(null, 'segments:write')).toBe(true);
    expect(hasScope(new Set(['segments:write']), 'segments:read')).toBe(true);
    expect(hasScope(new Set(['segments:read']), 'segments:write')).toBe(false);
    expect(hasScope(new Set(['events:write']), 'metrics:read')).toBe(false);
  });
});
