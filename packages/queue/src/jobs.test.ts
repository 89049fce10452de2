import { createHash } from 'node:crypto';
import { describe, expect, it } from 'vitest';
import {
  customerChangeJobId,
  deliveryJobId,
  deliveryJobOptions,
  legacyDeliveryJobId,
  transitionJobId,
} from './jobs.js';
import { queuePrefix } from './names.js';

describe('job ids', () => {
  it('are deterministic per Gladly event id', () => {
    expect(transitionJobId('e7Qk2mLxT1aVb0cD9fGh3w')).toBe('t-e7Qk2mLxT1aVb0cD9fGh3w');
    expect(transitionJobId('e7Qk2mLxT1aVb0cD9fGh3w')).toBe(transitionJobId('e7Qk2mLxT1aVb0cD9fGh3w'));
    expect(transitionJobId('a')).not.toBe(transitionJobId('b'));
  });

  it('never contain a colon nor are all digits, whatever Gladly sends', () => {
    for (const id of ['12345', 'a:b:c', 'with space', 'ü-ñ', 'x'.repeat(500)]) {
      const jobId = transitionJobId(id);
      expect(jobId).not.toContain(':');
      expect(jobId).not.toMatch(/^\d+$/);
      expect(jobId.length).toBeLessThanOrEqual(102);
    }
    expect(transitionJobId('a:b')).not.toBe(transitionJobId('a_b'));
  });

  it('one delivery id per event and email, case-insensitive on the email, without the email in it', () => {
    const id = deliveryJobId('evt1', 'Rosa@Example.com', 'k1');
    expect(id).toBe(deliveryJobId('evt1', 'rosa@example.com ', 'k1'));
    expect(id).not.toBe(deliveryJobId('evt2', 'rosa@example.com', 'k1'));
    expect(id).not.toBe(deliveryJobId('evt1', 'other@example.com', 'k1'));
    expect(id.toLowerCase()).not.toContain('rosa');
    expect(id).not.toContain(':');
  });

  it('keys the email part: without the key, a candidate address cannot be matched to an id', () => {
    const id = deliveryJobId('evt1', 'rosa@example.com', 'k1');
    expect(id).not.toBe(deliveryJobId('evt1', 'rosa@example.com', 'k2'));
    // The unkeyed id of versions before keyed pseudonyms is still worked out (to find their jobs).
    expect(legacyDeliveryJobId('evt1', 'rosa@example.com')).toBe(
      `d-evt1-${createHash('sha256').update('rosa@example.com').digest('hex').slice(0, 24)}`,
    );
    expect(legacyDeliveryJobId('evt1', 'rosa@example.com')).not.toBe(id);
  });
});

describe('retention and attempts', () => {
  it('keeps completed jobs past Gladly’s retry hour and a 24 h backfill window', () => {
    const age = (deliveryJobOptions.removeOnComplete as { age: number }).age;
    expect(age).toBeGreaterThanOrEqual(25 * 3600);
    expect(deliveryJobOptions.attempts).toBeGreaterThanOrEqual(150);
  });
});

describe('queuePrefix', () => {
  it('hash-tags the prefix on a cluster only', () => {
    expect(queuePrefix('gk', false)).toBe('gk');
    expect(queuePrefix('gk', true)).toBe('{gk}');
    expect(queuePrefix('{gk}', true)).toBe('{gk}');
  });
});

describe('customer-change jobs', () => {
  it('have their own deterministic ids, apart from transitions of the same event id', () => {
    expect(customerChangeJobId('uPd4teEvEnTid0000000001')).toBe('c-uPd4teEvEnTid0000000001');
    expect(customerChangeJobId('x')).not.toBe(transitionJobId('x'));
    expect(customerChangeJobId('a:b')).not.toContain(':');
  });
});
