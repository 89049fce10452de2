import { createHmac } from 'node:crypto';

/**
 * A pragmatic address check: one `@`, a non-empty local part without spaces, a dotted domain.
 * Klaviyo rejects what this rejects; it is not a full RFC 5321 parser.
 */
const EMAIL = /^[^\s@]{1,64}@(?=.{1,253}$)[^\s@.]+(\.[^\s@.]+)+$/;

export function isValidEmail(email: string): boolean {
  return email.length <= 254 && EMAIL.test(email);
}

export interface NormalizedEmails {
  /** Distinct valid addresses, trimmed, first spelling kept, in Gladly's order. */
  emails: string[];
  /** How many entries were not valid addresses (never sent, counted). */
  invalid: string[];
}

/** Trims, drops invalid entries, and dedupes case-insensitively (keeping the first spelling). */
export function normalizeEmails(originals: readonly string[]): NormalizedEmails {
  const seen = new Set<string>();
  const emails: string[] = [];
  const invalid: string[] = [];
  for (const raw of originals) {
    const email = raw.trim();
    if (!isValidEmail(email)) {
      invalid.push(email);
      continue;
    }
    const key = emailKey(email);
    if (seen.has(key)) continue;
    seen.add(key);
    emails.push(email);
  }
  return { emails, invalid };
}

/** The identity of an address for dedupe and per-email ordering: case-insensitive. */
export function emailKey(email: string): string {
  return email.trim().toLowerCase();
}

/**
 * A keyed hash of an address (its pseudonym) for logs, job ids and Redis keys: stable, so one
 * address can be followed across log lines, but without the key a list of candidate addresses
 * cannot be matched against it.
 */
export function hashEmail(email: string, key: string): string {
  return createHmac('sha256', key).update(emailKey(email)).digest('hex').slice(0, 24);
}

/**
 * The fixed, public key versions before keyed pseudonyms hashed Redis keys with: read only, so
 * ordering marks and leases written by them are still honoured after an upgrade.
 */
export const LEGACY_EMAIL_HASH_KEY = 'gladly-klaviyo-bridge';

/** `r***@example.com`: enough for an operator to recognise an address, not to read it. */
export function maskEmail(email: string): string {
  const at = email.lastIndexOf('@');
  if (at <= 0) return '***';
  return `${email[0]}***${email.slice(at)}`;
}

/** Masks every address-looking token in free text (upstream error details may echo an email). */
export function redactEmails(text: string): string {
  return text.replace(/[^\s@'"<>(),;:]+@[^\s@'"<>(),;:]+/g, (m) => maskEmail(m));
}
