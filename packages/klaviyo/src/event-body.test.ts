import { readFileSync } from 'node:fs';
import { describe, expect, it } from 'vitest';
import { buildCreateEventBody, type KlaviyoEventInput } from './event-body.js';

const fixture: unknown = JSON.parse(
  readFileSync(new URL('../../../fixtures/klaviyo/create-event.json', import.meta.url), 'utf8'),
);

const started: KlaviyoEventInput = {
  email: 'Rosa.Alvarez@example.com',
  metricName: 'started conversation in Gladly',
  propertyName: 'In Gladly Conversation',
  value: true,
  uniqueId: 'e7Qk2mLxT1aVb0cD9fGh3w',
  time: '2026-11-20T14:03:27.512Z',
  backfill: false,
};

describe('buildCreateEventBody', () => {
  it('builds exactly the documented sample for a live transition', () => {
    expect(buildCreateEventBody(started)).toStrictEqual(fixture);
  });

  it('keeps unique_id snake_case and the email as given', () => {
    const body = JSON.stringify(buildCreateEventBody({ ...started, email: ' MiXeD@Example.com' }));
    expect(body).toContain('"unique_id":"e7Qk2mLxT1aVb0cD9fGh3w"');
    expect(body).toContain('"email":" MiXeD@Example.com"');
  });

  it('adds the conversation id to event properties only when given, never to the profile', () => {
    const body = buildCreateEventBody({ ...started, conversationId: 'c0nv1' }) as typeof fixture & {
      data: {
        attributes: { properties: unknown; profile: { data: { attributes: { properties: unknown } } } };
      };
    };
    expect(body.data.attributes.properties).toEqual({
      'In Gladly Conversation': true,
      'Gladly Conversation ID': 'c0nv1',
    });
    expect(body.data.attributes.profile.data.attributes.properties).toEqual({
      'In Gladly Conversation': true,
    });
  });

  it('a backfilled close is marked backfill and leaves the profile properties alone', () => {
    const body = buildCreateEventBody({
      ...started,
      metricName: 'closed conversation in Gladly',
      value: false,
      backfill: true,
    });
    expect(body).toStrictEqual({
      data: {
        type: 'event',
        attributes: {
          properties: { 'In Gladly Conversation': false },
          time: '2026-11-20T14:03:27.512Z',
          unique_id: 'e7Qk2mLxT1aVb0cD9fGh3w',
          backfill: true,
          metric: { data: { type: 'metric', attributes: { name: 'closed conversation in Gladly' } } },
          profile: { data: { type: 'profile', attributes: { email: 'Rosa.Alvarez@example.com' } } },
        },
      },
    });
  });

  it('uses the configured property name', () => {
    const body = JSON.stringify(buildCreateEventBody({ ...started, propertyName: 'Support Open' }));
    expect(body).not.toContain('In Gladly Conversation');
    expect(body.match(/"Support Open":true/g)).toHaveLength(2);
  });
});
