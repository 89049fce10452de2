import { BRIDGE_WEBHOOK_EVENTS } from '@gk/gladly';
import { describe, expect, it } from 'vitest';
import { describeWebhook, formatWebhook, parseGladlyArgs, webhookAuth } from './gladly-run.js';

const URL = 'https://bridge.acme.com/webhooks/gladly';
const hook = {
  id: 'wh1',
  name: 'bridge',
  url: URL,
  events: [...BRIDGE_WEBHOOK_EVENTS],
  enabled: true,
  hasCredentials: true,
  headerKeys: [],
};

describe('gk-gladly', () => {
  it('parses webhook status|register|enable with --json, and refuses anything else', () => {
    expect(parseGladlyArgs(['webhook', 'status'])).toEqual({ kind: 'status', json: false });
    expect(parseGladlyArgs(['webhook', 'register', '--json'])).toEqual({ kind: 'register', json: true });
    expect(parseGladlyArgs(['--json', 'webhook', 'enable'])).toEqual({ kind: 'enable', json: true });
    expect(parseGladlyArgs([])).toEqual({ kind: 'help' });
    expect(() => parseGladlyArgs(['webhook'])).toThrow(/status, register or enable/);
    expect(() => parseGladlyArgs(['webhook', 'delete'])).toThrow(/unknown webhook command/);
    expect(() => parseGladlyArgs(['segment', 'ensure'])).toThrow(/unknown command/);
    expect(() => parseGladlyArgs(['webhook', 'status', 'extra'])).toThrow(/unexpected argument/);
  });

  it("sends the ingest's first Basic pair, else its first token in its token header", () => {
    const pairs = [
      { username: 'gladly', password: 'new:pw' },
      { username: 'gladly', password: 'old' },
    ];
    expect(webhookAuth({ basic: pairs, tokenHeader: 'X-Gladly-Token', tokens: ['t1'] })).toEqual({
      credentials: { username: 'gladly', password: 'new:pw' },
    });
    expect(webhookAuth({ basic: [], tokenHeader: 'X-Token', tokens: ['t1', 't2'] })).toEqual({
      headers: { 'X-Token': 't1' },
    });
    expect(webhookAuth({ basic: [], tokenHeader: 'X-Gladly-Token', tokens: [] })).toBeUndefined();
  });

  it('says why a webhook is not receiving: missing, deactivated by Gladly, disabled by hand, lacking events', () => {
    expect(describeWebhook(URL, undefined).problem).toMatch(/webhook register/);
    expect(describeWebhook(URL, hook).problem).toBeUndefined();
    const deactivated = describeWebhook(URL, {
      ...hook,
      enabled: false,
      disabledAtDueToRetryLimit: '2026-12-02T10:00:00Z',
    });
    expect(deactivated.problem).toMatch(/Gladly disabled it at 2026-12-02T10:00:00Z after its retries/);
    expect(formatWebhook(deactivated)).toMatch(/disabled: +2026-12-02T10:00:00Z \(Gladly's retry limit\)/);
    expect(describeWebhook(URL, { ...hook, enabled: false }).problem).toMatch(/by hand/);
    const lacking = describeWebhook(URL, { ...hook, events: ['CONVERSATION/CREATED'] });
    expect(lacking.missingEvents).toHaveLength(5);
    expect(lacking.problem).toMatch(/not subscribed to CONVERSATION\/CLOSED/);
  });
});
