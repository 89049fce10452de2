import { describe, expect, it } from 'vitest';
import {
  buildCreateSegmentBody,
  classifyProbe,
  isSuppressionDefinition,
  profilePropertyPath,
  quoteFilterValue,
} from './account.js';

const error = (status: number, code: string, source: Record<string, string> = {}) => ({
  errors: [{ id: 'x', status, code, title: 't', detail: `detail ${code}`, source }],
});

describe('classifyProbe', () => {
  it('reads 400 from body validation as the scope being there, 403 as missing', () => {
    expect(classifyProbe({ status: 400, body: error(400, 'invalid', { pointer: '/data' }) }).kind).toBe(
      'granted',
    );
    expect(classifyProbe({ status: 200, body: { data: [] } }).kind).toBe('granted');
    expect(classifyProbe({ status: 403, body: error(403, 'permission_denied') })).toMatchObject({
      kind: 'missing_scope',
      detail: 'detail permission_denied',
    });
  });

  it('tells a rejected key, a refused revision, throttling and oddities apart', () => {
    expect(classifyProbe({ status: 401, body: error(401, 'authentication_failed') }).kind).toBe(
      'key_rejected',
    );
    expect(classifyProbe({ status: 400, body: error(400, 'invalid', { header: 'revision' }) }).kind).toBe(
      'revision_refused',
    );
    expect(classifyProbe({ status: 429, body: undefined }).kind).toBe('rate_limited');
    expect(classifyProbe({ status: 503, body: undefined }).kind).toBe('unavailable');
    expect(classifyProbe({ status: 404, body: undefined }).kind).toBe('unavailable');
    expect(classifyProbe({ status: 302, body: undefined }).kind).toBe('unavailable');
  });
});

describe('segment body', () => {
  it('is a profile-property condition on the property with boolean equals true', () => {
    expect(buildCreateSegmentBody('In a Gladly conversation', 'In Gladly Conversation')).toEqual({
      data: {
        type: 'segment',
        attributes: {
          name: 'In a Gladly conversation',
          definition: {
            condition_groups: [
              {
                conditions: [
                  {
                    type: 'profile-property',
                    property: "properties['In Gladly Conversation']",
                    filter: { type: 'boolean', operator: 'equals', value: true },
                  },
                ],
              },
            ],
          },
        },
      },
    });
  });

  it('recognises its own definition and nothing else', () => {
    const mine = buildCreateSegmentBody('n', 'P').data.attributes.definition;
    expect(isSuppressionDefinition(mine, 'P')).toBe(true);
    expect(isSuppressionDefinition(mine, 'Q')).toBe(false);
    const inverted = structuredClone(mine);
    (inverted.condition_groups[0]?.conditions[0]?.filter as { value: boolean }).value = false;
    expect(isSuppressionDefinition(inverted, 'P')).toBe(false);
    expect(isSuppressionDefinition(null, 'P')).toBe(false);
  });

  it('escapes quotes in property paths and filter values', () => {
    expect(profilePropertyPath("Bob's flag")).toBe("properties['Bob\\'s flag']");
    expect(quoteFilterValue('say "hi" \\')).toBe('"say \\"hi\\" \\\\"');
  });
});
