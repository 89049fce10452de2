import { hash, timingSafeEqual } from 'node:crypto';
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

/** SHA-256 of the UTF-8 bytes; the one-shot `hash` costs about half of `createHash().update().digest()`. */
const digest = (value: string): Buffer => hash('sha256', value, 'buffer');

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
 * what the request presented, once whatever the number of candidates. A Basic pair is hashed as
 * one string, the user's length first so that no other split of the same characters gives it.
 */
const pairDigest = (c: BasicCredential): Buffer => digest(`${c.username.length}:${c.username}:${c.password}`);

function digestCredentials(accepted: readonly BasicCredential[]): Buffer[] {
  return accepted.map(pairDigest);
}

function matchesDigestedCredential(accepted: readonly Buffer[], presented: BasicCredential | null): boolean {
  const given = pairDigest(presented ?? { username: '', password: '' });
  let matched = 0;
  for (const candidate of accepted) matched |= Number(timingSafeEqual(candidate, given));
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
 * together, with no early exit: a wrong user, a wrong password and a missing header take the
 * same path, so timing tells an attacker nothing about which half was right.
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
