import { describe, expect, it } from 'vitest';
import { emailKey, hashEmail, isValidEmail, maskEmail, normalizeEmails, redactEmails } from './emails.js';

describe('normalizeEmails', () => {
  it('trims, dedupes case-insensitively keeping the first spelling, and skips invalid entries', () => {
    const result = normalizeEmails([
      ' Rosa.Alvarez@example.com ',
      'rosa.alvarez@EXAMPLE.com',
      'rosa@work.example.org',
      'not-an-email',
      '',
      'two@@example.com',
    ]);
    expect(result.emails).toEqual(['Rosa.Alvarez@example.com', 'rosa@work.example.org']);
    expect(result.invalid).toEqual(['not-an-email', '', 'two@@example.com']);
  });

  it('returns nothing for a customer without emails', () => {
    expect(normalizeEmails([])).toEqual({ emails: [], invalid: [] });
  });
});

describe('isValidEmail', () => {
  it.each([
    ['a@b.co', true],
    ['first.last+tag@sub.example.org', true],
    ['no-at-sign.example.com', false],
    ['space in@example.com', false],
    ['nodot@localhost', false],
    ['trailing@example.', false],
    [`${'x'.repeat(65)}@example.com`, false],
  ])('%s → %s', (email, valid) => {
    expect(isValidEmail(email)).toBe(valid);
  });
});

describe('email identity in logs', () => {
  it('hashes case-insensitively, without revealing the address', () => {
    expect(hashEmail('Rosa@Example.com', 'k1')).toBe(hashEmail(' rosa@example.com', 'k1'));
    expect(hashEmail('rosa@example.com', 'k1')).not.toContain('rosa');
    expect(hashEmail('rosa@example.com', 'k1')).not.toBe(hashEmail('rosa@example.com', 'k2'));
    expect(emailKey(' A@B.CO ')).toBe('a@b.co');
  });

  it('masks all but the first letter and the domain', () => {
    expect(maskEmail('rosa.alvarez@example.com')).toBe('r***@example.com');
    expect(maskEmail('broken')).toBe('***');
  });
});

describe('redactEmails', () => {
  it('masks addresses inside free text and leaves the rest', () => {
    expect(redactEmails("Invalid email 'rosa@example.com' in /data")).toBe(
      "Invalid email 'r***@example.com' in /data",
    );
    expect(redactEmails('no address here')).toBe('no address here');
  });
});
