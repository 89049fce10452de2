import { describe, expect, it } from 'vitest';
import {
  constantTimeEqual,
  createBasicAuthenticator,
  createWebhookAuthenticator,
  matchesBasicCredential,
  matchesToken,
  parseBasicAuthorization,
} from './auth.js';

const basic = (user: string, password: string) =>
  `Basic ${Buffer.from(`${user}:${password}`, 'utf8').toString('base64')}`;

describe('parseBasicAuthorization', () => {
  it('decodes user and password, splitting at the first colon', () => {
    expect(parseBasicAuthorization(basic('gladly', 'pa:ss'))).toEqual({
      username: 'gladly',
      password: 'pa:ss',
    });
    expect(parseBasicAuthorization(`basic ${Buffer.from('u:p').toString('base64')}`)).toEqual({
      username: 'u',
      password: 'p',
    });
    expect(parseBasicAuthorization(basic('ünï', 'cødé'))).toEqual({ username: 'ünï', password: 'cødé' });
  });

  it.each([
    undefined,
    '',
    'Bearer abc',
    'Basic',
    'Basic !!!',
    `Basic ${Buffer.from('no-colon').toString('base64')}`,
  ])('%s → null', (header) => {
    expect(parseBasicAuthorization(header)).toBeNull();
  });
});

describe('constant-time matching', () => {
  it('compares strings of any length', () => {
    expect(constantTimeEqual('a', 'a')).toBe(true);
    expect(constantTimeEqual('a', 'ab')).toBe(false);
    expect(constantTimeEqual('', '')).toBe(true);
  });

  const accepted = [
    { username: 'gladly', password: 'old' },
    { username: 'gladly', password: 'new' },
  ];

  it('accepts any configured pair (rotation) and nothing else', () => {
    expect(matchesBasicCredential(accepted, { username: 'gladly', password: 'old' })).toBe(true);
    expect(matchesBasicCredential(accepted, { username: 'gladly', password: 'new' })).toBe(true);
    expect(matchesBasicCredential(accepted, { username: 'gladly', password: 'wrong' })).toBe(false);
    expect(matchesBasicCredential(accepted, { username: 'other', password: 'old' })).toBe(false);
    expect(matchesBasicCredential(accepted, null)).toBe(false);
    expect(matchesBasicCredential([], { username: '', password: '' })).toBe(false);
  });

  it('does not mix the user of one pair with the password of another', () => {
    const pairs = [
      { username: 'a', password: '1' },
      { username: 'b', password: '2' },
    ];
    expect(matchesBasicCredential(pairs, { username: 'a', password: '2' })).toBe(false);
  });

  it('accepts any configured token, never an empty or missing one', () => {
    expect(matchesToken(['t1', 't2'], 't2')).toBe(true);
    expect(matchesToken(['t1', 't2'], 't3')).toBe(false);
    expect(matchesToken(['t1'], undefined)).toBe(false);
    expect(matchesToken(['t1'], '')).toBe(false);
    expect(matchesToken([], '')).toBe(false);
  });
});

describe('createWebhookAuthenticator', () => {
  const check = createWebhookAuthenticator({
    disabled: false,
    basic: [{ username: 'gladly', password: 'pw' }],
    tokenHeader: 'X-Gladly-Token',
    tokens: ['tok'],
  });

  it('lets in Basic credentials or the token header', () => {
    expect(check({ authorization: basic('gladly', 'pw') })).toBe(true);
    expect(check({ 'x-gladly-token': 'tok' })).toBe(true);
  });

  it('refuses missing, wrong or misplaced credentials', () => {
    expect(check({})).toBe(false);
    expect(check({ authorization: basic('gladly', 'nope') })).toBe(false);
    expect(check({ authorization: basic('nope', 'pw') })).toBe(false);
    expect(check({ 'x-gladly-token': 'nope' })).toBe(false);
    expect(check({ authorization: 'tok' })).toBe(false);
    expect(check({ authorization: 'Bearer tok' })).toBe(false);
  });

  it('only lets everything in when disabled', () => {
    const open = createWebhookAuthenticator({
      disabled: true,
      basic: [],
      tokenHeader: 'X-Gladly-Token',
      tokens: [],
    });
    expect(open({})).toBe(true);
  });

  it('keeps the webhook and dashboard credentials apart', () => {
    const admin = createBasicAuthenticator([{ username: 'ops', password: 'dash' }]);
    expect(admin({ authorization: basic('gladly', 'pw') })).toBe(false);
    expect(admin({ authorization: basic('ops', 'dash') })).toBe(true);
    expect(check({ authorization: basic('ops', 'dash') })).toBe(false);
  });
});
