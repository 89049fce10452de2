import { createServer } from 'node:http';
import type { AddressInfo } from 'node:net';
import { readGladlyEvent } from '@gk/domain';
import { createGladlyWebhooksClient } from '@gk/gladly';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { createSandbox, type Sandbox } from '../src/sandbox.js';

const GLADLY = { user: 'api@acme.test', token: 'gladly-token-events' };
const auth = `Basic ${Buffer.from(`${GLADLY.user}:${GLADLY.token}`).toString('base64')}`;

let sandbox: Sandbox;

beforeEach(async () => {
  sandbox = await createSandbox({
    gladly: { ...GLADLY, ratePerSecond: 0 },
    klaviyo: { apiKey: 'pk_events' },
  });
});
afterEach(async () => {
  await sandbox.close();
});

async function events(since: Date, authorization = auth) {
  const url = `${sandbox.url}/api/v1/events?startAt=${encodeURIComponent(since.toISOString())}&entities=CONVERSATION`;
  const res = await fetch(url, { headers: { authorization } });
  const text = await res.text();
  return {
    status: res.status,
    type: res.headers.get('content-type'),
    lines: text.split('\n').filter(Boolean),
  };
}

describe('sandbox: Gladly Events API for npm run backfill', () => {
  it('serves a made-up last day of the demo customers’ conversations as JSON lines', async () => {
    const hour = await events(new Date(Date.now() - 3600_000));
    expect(hour.status).toBe(200);
    expect(hour.type).toBe('application/x-jsonlines');
    const readings = hour.lines.map((l) => readGladlyEvent(JSON.parse(l), new Date()));
    expect(readings.filter((r) => r.kind === 'transition').length).toBeGreaterThanOrEqual(4);
    expect(readings.some((r) => r.kind === 'ignored')).toBe(true);
    const day = await events(new Date(Date.now() - 24 * 3600_000 + 60_000));
    expect(day.lines.length).toBeGreaterThan(hour.lines.length);
    expect(day.lines.length).toBe(sandbox.state().counts.gladly.events);
    // Reading events is not looking customers up.
    expect(sandbox.state().counts.gladly.lookups).toBe(0);
  });

  it('needs the Gladly API credentials', async () => {
    expect((await events(new Date(Date.now() - 3600_000), 'Basic bm9wZTpub3Bl')).status).toBe(401);
  });

  it('records events posted to /_sandbox/gladly-events (what npm run demo sends), and refuses junk', async () => {
    const event = {
      id: 'demoRecorded0000000001',
      type: 'CONVERSATION/CREATED',
      timestamp: new Date(Date.now() - 1_000).toISOString(),
      content: { customerId: 'demo-mei-tanaka', conversationId: 'c1' },
    };
    const res = await fetch(`${sandbox.url}/_sandbox/gladly-events`, {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify(event),
    });
    expect(res.status).toBe(202);
    expect(await res.json()).toEqual({ recorded: 1 });
    const recent = await events(new Date(Date.now() - 10_000));
    expect(recent.lines.map((l) => JSON.parse(l).id)).toContain(event.id);

    const bad = await fetch(`${sandbox.url}/_sandbox/gladly-events`, {
      method: 'POST',
      body: JSON.stringify([{ id: 'x', type: 'CONVERSATION/CLOSED', timestamp: 'yesterday' }]),
    });
    expect(bad.status).toBe(400);
    expect(((await bad.json()) as { issues: string[] }).issues[0]).toMatch(/^0\.timestamp/);
  });

  it("serves Gladly's webhooks API, and ?deliver=true sends recorded events to the registered webhook", async () => {
    const received: string[] = [];
    const receiver = createServer((req, res) => {
      let body = '';
      req.on('data', (c) => {
        body += String(c);
      });
      req.on('end', () => {
        received.push((JSON.parse(body) as { type: string }).type);
        res.writeHead(200).end();
      });
    });
    await new Promise<void>((resolve) => receiver.listen(0, '127.0.0.1', resolve));
    try {
      const url = `http://127.0.0.1:${(receiver.address() as AddressInfo).port}/webhooks/gladly`;
      const client = createGladlyWebhooksClient({ baseUrl: sandbox.url, ...GLADLY });
      const hook = await client.create({ name: 'bridge', url, events: ['CONVERSATION/CREATED'] });
      expect((await client.findByUrl(url))?.id).toBe(hook.id);
      const res = await fetch(`${sandbox.url}/_sandbox/gladly-events?deliver=true`, {
        method: 'POST',
        body: JSON.stringify({
          id: 'demoDelivered000000001',
          type: 'CONVERSATION/CREATED',
          timestamp: new Date().toISOString(),
          content: { customerId: 'demo-mei-tanaka', conversationId: 'c1' },
        }),
      });
      expect(res.status).toBe(202);
      const deadline = Date.now() + 5_000;
      while (received.length < 2 && Date.now() < deadline) await new Promise((r) => setTimeout(r, 20));
      expect(received).toEqual(['PING', 'CONVERSATION/CREATED']);
    } finally {
      receiver.closeAllConnections();
      await new Promise((resolve) => receiver.close(resolve));
    }
  });
});
