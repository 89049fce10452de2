import { createHash, timingSafeEqual } from 'node:crypto';
import type { IncomingHttpHeaders } from 'node:http';

export interface BasicCredential {
  username: string;
  password: string;
}

export interface WebhookAuthConfig {
  /** Local runs only: every request is let in (config refuses it in production). */
  disabled: boolean;
  /** Accepted HTTP Basic pairs; several so a password can be rotated without downtime. */
  basic: readonly BasicCredential[];
  /** Header carrying a static token (Gladly's "static headers" webhook authentication). */
  tokenHeader: string;
  /** Accepted tokens; several for rotation. */
  tokens: readonly string[];
}

/** Realms for `WWW-Authenticate`; distinct so a browser never offers one set of credentials for the other. */
export const WEBHOOK_REALM = 'gladly-webhook';
export const ADMIN_REALM = 'gk-admin';

export function basicChallenge(realm: string): string {
  return `Basic realm="${realm}"`;
}

const digest = (value: string): Buffer => createHash('sha256').update(value, 'utf8').digest();

/**
 * Compares in time that does not depend on where (or whether) the strings differ: both sides are
 * hashed to 32 bytes first, so timingSafeEqual applies whatever their lengths and leaks no length.
 */
export function constantTimeEqual(a: string, b: string): boolean {
  return timingSafeEqual(digest(a), digest(b));
}

/** `Authorization: Basic base64(user:password)` (RFC 7617); null when absent or not Basic. */
export function parseBasicAuthorization(header: string | undefined): BasicCredential | null {
  if (!header) return null;
  const match = /^Basic +([A-Za-z0-9+/]+=*) *$/i.exec(header);
  const encoded = match?.[1];
  if (!encoded) return null;
  const decoded = Buffer.from(encoded, 'base64').toString('utf8');
  const colon = decoded.indexOf(':');
  if (colon < 0) return null;
  return { username: decoded.slice(0, colon), password: decoded.slice(colon + 1) };
}

/**
 * Accepted secrets are hashed once, when the authenticator is made: a check then hashes only
 * what the request presented (once, whatever the number of candidates) and compares digests.
 */
interface DigestedCredential {
  username: Buffer;
  password: Buffer;
}

function digestCredentials(accepted: readonly BasicCredential[]): DigestedCredential[] {
  return accepted.map((c) => ({ username: digest(c.username), password: digest(c.password) }));
}

function matchesDigestedCredential(
  accepted: readonly DigestedCredential[],
  presented: BasicCredential | null,
): boolean {
  const given = presented ?? { username: '', password: '' };
  const username = digest(given.username);
  const password = digest(given.password);
  let matched = 0;
  for (const candidate of accepted) {
    const user = Number(timingSafeEqual(candidate.username, username));
    const pass = Number(timingSafeEqual(candidate.password, password));
    matched |= user & pass;
  }
  return presented !== null && matched === 1;
}

function matchesDigestedToken(accepted: readonly Buffer[], presented: string | undefined): boolean {
  if (accepted.length === 0) return false;
  const given = digest(presented ?? '');
  let matched = 0;
  for (const token of accepted) matched |= Number(timingSafeEqual(token, given));
  return presented !== undefined && presented.length > 0 && matched === 1;
}

/**
 * True when `presented` equals one of `accepted`. Every candidate is checked, user and password
 * both, with no early exit: a wrong user, a wrong password and a missing header take the same
 * path, so timing tells an attacker nothing about which half was right.
 */
export function matchesBasicCredential(
  accepted: readonly BasicCredential[],
  presented: BasicCredential | null,
): boolean {
  return matchesDigestedCredential(digestCredentials(accepted), presented);
}

/** True when `presented` equals one of `accepted`, checking every token without early exit. */
export function matchesToken(accepted: readonly string[], presented: string | undefined): boolean {
  return matchesDigestedToken(accepted.map(digest), presented);
}

function singleHeader(value: string | string[] | undefined): string | undefined {
  return typeof value === 'string' ? value : undefined;
}

export type Authenticator = (headers: IncomingHttpHeaders) => boolean;

/**
 * Gladly authenticates webhooks with Basic credentials or a static header (it does not sign
 * them); both are accepted. Both checks always run so the answer time does not say which one
 * was tried.
 */
export function createWebhookAuthenticator(config: WebhookAuthConfig): Authenticator {
  if (config.disabled) return () => true;
  const tokenHeader = config.tokenHeader.toLowerCase();
  const basic = digestCredentials(config.basic);
  const tokens = config.tokens.map(digest);
  return (headers) => {
    const basicOk = matchesDigestedCredential(basic, parseBasicAuthorization(headers.authorization));
    const tokenOk = matchesDigestedToken(tokens, singleHeader(headers[tokenHeader]));
    return basicOk || tokenOk;
  };
}

/** Basic auth against a fixed list (the dashboard's one admin pair). */
export function createBasicAuthenticator(accepted: readonly BasicCredential[]): Authenticator {
  const digested = digestCredentials(accepted);
  return (headers) => matchesDigestedCredential(digested, parseBasicAuthorization(headers.authorization));
}
