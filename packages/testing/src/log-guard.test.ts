import { describe, expect, it } from 'vitest';
import {
  captureLogOutput,
  findLogLeaks,
  registerTestSecrets,
  secretsFromEnv,
  takeLogLeaks,
  treatAsReport,
} from './log-guard.js';

describe('findLogLeaks', () => {
  it('finds an email in clear, not a mask or a hash', () => {
    const text = [
      '{"msg":"delivered","emailHash":"3f9a1c77e0b2"}',
      '{"msg":"failed","reason":"klaviyo 400: invalid R***@example.com"}',
      '{"msg":"oops","email":"Rosa.Alvarez@example.com"}',
      'plain text mentioning rosa+tag@work.example.org here',
    ].join('\n');
    const leaks = findLogLeaks('test', text, { secrets: [] });
    expect(leaks.map((l) => l.what)).toEqual(['email', 'email']);
    expect(leaks[0]?.line).toBe('{"msg":"oops","email":"[Ro…]"}');
    expect(JSON.stringify(leaks)).not.toContain('Alvarez');
    expect(JSON.stringify(leaks)).not.toContain('rosa+tag');
  });

  it('finds a secret anywhere in a line, and blanks it in the report', () => {
    const leaks = findLogLeaks('svc#1', 'auth failed for header wh-pass-3f9a1c77 from 10.0.0.1', {
      secrets: ['wh-pass-3f9a1c77'],
    });
    expect(leaks).toEqual([
      { source: 'svc#1', line: 'auth failed for header [wh…] from 10.0.0.1', what: 'secret' },
    ]);
  });

  it('can skip the email check (a report meant to show sandbox data) but never the secret check', () => {
    const text = 'rosa@example.com 2 events\npassword: s3cret-value-1';
    expect(findLogLeaks('demo', text, { secrets: ['s3cret-value-1'], checkEmails: false })).toHaveLength(1);
  });
});

describe('secretsFromEnv', () => {
  it('takes passwords, tokens, keys and Basic pairs (password and header form), nothing else', () => {
    const found = secretsFromEnv({
      REDIS_URL: 'redis://127.0.0.1:6379',
      QUEUE_PREFIX: 'gk',
      GLADLY_API_USER: 'api@acme.test',
      GLADLY_API_TOKEN: 'tok-1',
      KLAVIYO_API_KEY: 'pk_live_1',
      WEBHOOK_TOKENS: 'a-token, b-token',
      WEBHOOK_BASIC_AUTH: 'gladly:pw-one,gladly:pw-two',
      ADMIN_PASSWORD: 'dash',
      LOG_EMAIL_HASH_KEY: 'hash-key',
    });
    expect(found).toEqual(
      expect.arrayContaining([
        'tok-1',
        'pk_live_1',
        'a-token',
        'b-token',
        'pw-one',
        'pw-two',
        'dash',
        'hash-key',
      ]),
    );
    expect(found).toContain(Buffer.from('gladly:pw-one').toString('base64'));
    expect(found).not.toContain('gk');
    expect(found).not.toContain('redis://127.0.0.1:6379');
  });
});

describe('capture and take', () => {
  it('joins chunks per source before splitting lines, so a value split across writes is still found', () => {
    registerTestSecrets('short', 'split-secret-value');
    captureLogOutput('proc#1', '{"msg":"a","x":"split-sec');
    captureLogOutput('proc#1', 'ret-value"}\n{"msg":"b"}\n');
    captureLogOutput('proc#2', '{"msg":"short is too short to count"}\n');
    const { leaks, linesChecked } = takeLogLeaks();
    expect(linesChecked).toBe(3);
    expect(leaks).toHaveLength(1);
    expect(leaks[0]?.source).toBe('proc#1');
    expect(takeLogLeaks()).toEqual({ leaks: [], linesChecked: 0 });
  });

  it('skips the email check only for report lines, never for service log lines', () => {
    treatAsReport(/^demo\.mjs#/);
    treatAsReport(/^start\.mjs#/, { logLines: /^\w+\s*│/ });
    captureLogOutput('demo.mjs#7', 'Rosa  rosa@example.com  2 events\n');
    captureLogOutput(
      'start.mjs#9',
      '   Gladly  sandbox@acme.test\nworker   │ info delivered email=rosa@example.com\n',
    );
    captureLogOutput('main.js#8', '{"email":"rosa@example.com"}\n');
    expect(takeLogLeaks().leaks.map((l) => `${l.source} ${l.line}`)).toEqual([
      'start.mjs#9 worker   │ info delivered email=[ro…]',
      'main.js#8 {"email":"[ro…]"}',
    ]);
  });
});
