import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { type GladlyStandIn, startGladlyStandIn } from '@gk/stand-ins';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { BRIDGE_WEBHOOK_EVENTS, createGladlyWebhooksClient, GladlyError } from '../src/index.js';

const USER = 'bridge@acme.example';
const TOKEN = 'tok-webhooks-s3cret';
const HOOK_PASSWORD = 'hook-pw-91c2';

/** A receiver standing in for the ingest: answers `status()` and remembers what it got. */
interface Receiver {
  url: string;
  status: number;
  received: { type: string; id: string; authorization: string | undefined }[];
  close(): Promise<void>;
}

async function startReceiver(): Promise<Receiver> {
  const receiver: Receiver = { url: '', status: 200, received: [], close: async () => {} };
  const server: Server = createServer((req, res) => {
    let body = '';
    req.on('data', (c) => {
      body += String(c);
    });
    req.on('end', () => {
      const parsed = JSON.parse(body) as { type: string; id: string };
      receiver.received.push({ type: parsed.type, id: parsed.id, authorization: req.headers.authorization });
      res.writeHead(receiver.status).end();
    });
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  receiver.url = `http://127.0.0.1:${(server.address() as AddressInfo).port}/webhooks/gladly`;
  receiver.close = () =>
    new Promise((resolve) => {
      server.closeAllConnections();
      server.close(() => resolve());
    });
  return receiver;
}

let gladly: GladlyStandIn;
let receiver: Receiver;

beforeEach(async () => {
  // Gladly's hour of retries scaled down to 0.36 s.
  gladly = await startGladlyStandIn({ user: USER, token: TOKEN, sender: { timeFactor: 0.0001 } });
  receiver = await startReceiver();
});

afterEach(async () => {
  await gladly.close();
  await receiver.close();
});

const client = (token = TOKEN) => createGladlyWebhooksClient({ baseUrl: gladly.url, user: USER, token });
const conversationEvent = (id: string) => ({
  id,
  type: 'CONVERSATION/CREATED',
  timestamp: new Date().toISOString(),
  initiator: { id: 'agent1', type: 'AGENT' },
  content: { customerId: 'cust1', conversationId: 'conv1' },
});

async function until(check: () => boolean, what: string, timeoutMs = 5_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!check()) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 20));
  }
}

describe('Gladly webhooks client against the stand-in', () => {
  it('creates a webhook (PING first), finds it by URL, never shows its credentials back', async () => {
    const created = await client().create({
      name: 'bridge',
      url: receiver.url,
      events: BRIDGE_WEBHOOK_EVENTS,
      credentials: { username: 'gladly', password: HOOK_PASSWORD },
    });
    expect(created.enabled).toBe(true);
    expect(created.hasCredentials).toBe(true);
    expect(JSON.stringify(created)).not.toContain(HOOK_PASSWORD);
    expect(receiver.received.map((r) => r.type)).toEqual(['PING']);
    expect(receiver.received[0]?.authorization).toBe(
      `Basic ${Buffer.from(`gladly:${HOOK_PASSWORD}`).toString('base64')}`,
    );
    const found = await client().findByUrl(`${receiver.url}/`);
    expect(found?.id).toBe(created.id);
    expect(await client().findByUrl('https://elsewhere.example/webhooks/gladly')).toBeUndefined();
  });

  it('refuses to enable a webhook whose PING fails, and says why', async () => {
    receiver.status = 503;
    const err = await client()
      .create({ name: 'bridge', url: receiver.url, events: ['CONVERSATION/CREATED'] })
      .catch((e: unknown) => e);
    expect(err).toBeInstanceOf(GladlyError);
    expect((err as GladlyError).kind).toBe('protocol');
    expect((err as GladlyError).message).toMatch(/PING .*503/);
    expect(await client().list()).toEqual([]);
  });

  it('rejects wrong credentials as an auth error', async () => {
    const err = await client('wrong')
      .list()
      .catch((e: unknown) => e);
    expect((err as GladlyError).kind).toBe('auth');
  });

  it('retries a failed delivery 4 times, then deactivates the webhook; enabling needs a good PING', async () => {
    const hook = await client().create({
      name: 'bridge',
      url: receiver.url,
      events: ['CONVERSATION/CREATED'],
    });
    receiver.status = 500;
    gladly.emitEvents(conversationEvent('ev-1'));
    await until(() => gladly.webhooks.get(hook.id)?.enabled === false, 'deactivation');
    const attempts = gladly.webhooks.deliveries.filter((d) => d.eventId === 'ev-1');
    expect(attempts.map((d) => d.attempt)).toEqual([0, 1, 2, 3, 4]);
    const disabled = await client().findByUrl(receiver.url);
    expect(disabled?.enabled).toBe(false);
    expect(Date.parse(disabled?.disabledAtDueToRetryLimit ?? '')).toBeGreaterThan(Date.now() - 10_000);

    // Disabled: later events are recorded for the Events API but not delivered.
    gladly.emitEvents(conversationEvent('ev-2'));
    expect(gladly.events.map((e) => e.id)).toContain('ev-2');
    expect(gladly.webhooks.deliveries.some((d) => d.eventId === 'ev-2')).toBe(false);

    await expect(client().patch(hook.id, { enabled: true })).rejects.toThrow(/PING/);
    receiver.status = 200;
    const enabled = await client().patch(hook.id, { enabled: true });
    expect(enabled.enabled).toBe(true);
    expect(enabled.disabledAtDueToRetryLimit).toBeUndefined();
    gladly.emitEvents(conversationEvent('ev-3'));
    await until(() => receiver.received.some((r) => r.id === 'ev-3'), 'ev-3 delivered');
  });

  it('drops the configured share of deliveries without retrying them', async () => {
    await client().create({ name: 'bridge', url: receiver.url, events: ['CONVERSATION/CREATED'] });
    gladly.webhooks.configure({ dropRate: 1 });
    gladly.emitEvents(conversationEvent('lost'));
    await new Promise((r) => setTimeout(r, 100));
    expect(receiver.received.some((r) => r.id === 'lost')).toBe(false);
    expect(gladly.webhooks.deliveries.find((d) => d.eventId === 'lost')?.status).toBe(-1);
  });
});
