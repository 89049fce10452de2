import { readFileSync } from 'node:fs';
import { describe, expect, it } from 'vitest';
import { GladlyConversationEvent, GladlyWebhookEnvelope, isTransitionType } from './gladly-webhook.js';
import { toTransition } from './transition.js';

const fixture = (name: string) =>
  JSON.parse(readFileSync(new URL(`../../../fixtures/gladly/${name}`, import.meta.url), 'utf8'));

describe('Gladly webhook schema and mapping', () => {
  it.each([
    ['conversation-created.json', 'started'],
    ['conversation-reopened.json', 'started'],
    ['conversation-closed.json', 'closed'],
  ])('%s maps to a %s transition', (file, kind) => {
    const event = GladlyConversationEvent.parse(fixture(file));
    if (!isTransitionType(event.type)) throw new Error('fixture is not a transition');
    const receivedAt = new Date('2026-11-20T15:00:00.000Z');
    const t = toTransition({ ...event, type: event.type }, receivedAt);
    expect(t).toEqual({
      eventId: event.id,
      kind,
      gladlyType: event.type,
      customerId: 'cUs7omErIdX0000000001a',
      conversationId: 'c0nvErsaTi0nId0000001a',
      occurredAt: event.timestamp,
      receivedAt: '2026-11-20T15:00:00.000Z',
    });
  });

  it('accepts a PING envelope and does not treat PING or other types as transitions', () => {
    expect(GladlyWebhookEnvelope.safeParse(fixture('ping.json')).success).toBe(true);
    expect(isTransitionType('PING')).toBe(false);
    expect(isTransitionType('CONVERSATION_STATUS/UPDATED')).toBe(false);
    expect(isTransitionType('toString')).toBe(false);
  });

  it('names the missing field', () => {
    const bad = fixture('conversation-created.json');
    delete bad.content.customerId;
    const result = GladlyConversationEvent.safeParse(bad);
    expect(result.success).toBe(false);
    expect(result.error?.issues[0]?.path).toEqual(['content', 'customerId']);
  });

  it('rejects a timestamp that is not ISO-8601', () => {
    const bad = { ...fixture('conversation-created.json'), timestamp: 'yesterday' };
    const result = GladlyConversationEvent.safeParse(bad);
    expect(result.error?.issues[0]?.path).toEqual(['timestamp']);
  });
});
