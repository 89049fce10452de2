import { readFileSync } from 'node:fs';
import { describe, expect, it } from 'vitest';
import { readGladlyEvent } from './gladly-event.js';

const fixture = (name: string) =>
  JSON.parse(readFileSync(new URL(`../../../fixtures/gladly/${name}`, import.meta.url), 'utf8'));
const receivedAt = new Date('2026-11-20T15:00:00.000Z');

describe('readGladlyEvent', () => {
  it('reads a conversation transition', () => {
    const reading = readGladlyEvent(fixture('conversation-closed.json'), receivedAt);
    expect(reading).toMatchObject({
      kind: 'transition',
      type: 'CONVERSATION/CLOSED',
      transition: { eventId: 'r4Zp8nKwS2bYc1dE0hJi5x', kind: 'closed', receivedAt: receivedAt.toISOString() },
    });
  });

  it('reads CUSTOMER_PROFILE/UPDATED as a change to that customer', () => {
    expect(readGladlyEvent(fixture('customer-profile-updated.json'), receivedAt)).toEqual({
      kind: 'customer_change',
      id: 'uPd4teEvEnTid0000000001',
      type: 'CUSTOMER_PROFILE/UPDATED',
      change: {
        eventId: 'uPd4teEvEnTid0000000001',
        gladlyType: 'CUSTOMER_PROFILE/UPDATED',
        customerIds: ['cUs7omErIdX0000000001a'],
        occurredAt: '2026-11-20T14:20:05.118Z',
        receivedAt: '2026-11-20T15:00:00.000Z',
      },
    });
  });

  it('reads CUSTOMER/MERGED (and its deprecated spelling) as a change to both customers', () => {
    const merged = fixture('customer-merged.json');
    for (const type of ['CUSTOMER/MERGED', 'CUSTOMER_PROFILE/MERGED']) {
      const reading = readGladlyEvent({ ...merged, type }, receivedAt);
      expect(reading.kind).toBe('customer_change');
      if (reading.kind !== 'customer_change') continue;
      expect(reading.change.customerIds).toEqual(['oLdCuStOmErId000000001b', 'cUs7omErIdX0000000001a']);
      expect(reading.change.merge).toEqual({
        sourceCustomerId: 'oLdCuStOmErId000000001b',
        destinationCustomerId: 'cUs7omErIdX0000000001a',
        sourceConversationId: 'c0nvErsaTi0nId0000009z',
        destinationConversationId: 'c0nvErsaTi0nId0000001a',
      });
    }
  });

  it('names the missing customer id of a customer change', () => {
    const bad = fixture('customer-merged.json');
    delete bad.content.sourceCustomerId;
    const reading = readGladlyEvent(bad, receivedAt);
    expect(reading.kind).toBe('invalid');
    if (reading.kind === 'invalid')
      expect(reading.error.issues[0]?.path).toEqual(['content', 'sourceCustomerId']);
    const noContent = { ...fixture('customer-profile-updated.json'), content: {} };
    const second = readGladlyEvent(noContent, receivedAt);
    if (second.kind !== 'invalid') throw new Error(`expected invalid, got ${second.kind}`);
    expect(second.error.issues[0]?.path).toEqual(['content', 'customerId']);
  });

  it('tells PING, ignored types and malformed envelopes apart', () => {
    expect(readGladlyEvent(fixture('ping.json'), receivedAt).kind).toBe('ping');
    expect(readGladlyEvent(fixture('conversation-status-updated.json'), receivedAt)).toMatchObject({
      kind: 'ignored',
      type: 'CONVERSATION_STATUS/UPDATED',
    });
    // An ignored type needs only its id and type, never a valid payload.
    expect(readGladlyEvent({ id: 'x', type: 'CONVERSATION/NOTE_CREATED' }, receivedAt).kind).toBe('ignored');
    expect(readGladlyEvent({ type: 'CONVERSATION/CLOSED' }, receivedAt)).toMatchObject({
      kind: 'malformed',
      rawType: 'CONVERSATION/CLOSED',
    });
    expect(readGladlyEvent([1, 2], receivedAt).kind).toBe('malformed');
    expect(readGladlyEvent(null, receivedAt).kind).toBe('malformed');
  });

  it('reads every line of an Events API answer like the webhook of the same type', () => {
    const lines = readFileSync(
      new URL('../../../fixtures/gladly/events-conversation.jsonl', import.meta.url),
      'utf8',
    )
      .split('\n')
      .filter(Boolean);
    expect(lines.map((line) => readGladlyEvent(JSON.parse(line), receivedAt).kind)).toEqual([
      'transition',
      'ignored',
      'transition',
    ]);
  });
});
