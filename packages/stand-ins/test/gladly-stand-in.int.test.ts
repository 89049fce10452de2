import { readFileSync } from 'node:fs';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { type GladlyStandIn, startGladlyStandIn } from '../src/index.js';

const fixture = (name: string): unknown =>
  JSON.parse(readFileSync(new URL(`../../../fixtures/gladly/${name}`, import.meta.url), 'utf8'));

const AUTH = `Basic ${Buffer.from('u@example.com:t0k').toString('base64')}`;
let gladly: GladlyStandIn;

beforeEach(async () => {
  gladly = await startGladlyStandIn({
    user: 'u@example.com',
    token: 't0k',
    customers: { cUs7omErIdX0000000001a: ['Rosa.Alvarez@example.com', 'rosa@work.example.org'] },
    merges: { oLdCusT0mErId000000001: 'cUs7omErIdX0000000001a' },
  });
});

afterEach(async () => {
  await gladly.close();
});

async function get(id: string, authorization = AUTH) {
  const res = await fetch(`${gladly.url}/api/v1/customer-profiles/${encodeURIComponent(id)}`, {
    headers: authorization ? { authorization } : {},
    redirect: 'manual',
  });
  return { status: res.status, headers: res.headers, json: (await res.json()) as Record<string, unknown> };
}

describe('Gladly stand-in', () => {
  it('serves a profile shaped like the fixture', async () => {
    const res = await get('cUs7omErIdX0000000001a');
    const expected = fixture('customer-profile.json') as Record<string, unknown>;
    expect(res.status).toBe(200);
    expect(res.json.id).toBe(expected.id);
    expect(res.json.emails).toEqual(expected.emails);
  });

  it('answers a merged id with the fixture’s 301 body and a Location', async () => {
    const res = await get('oLdCusT0mErId000000001');
    expect(res.status).toBe(301);
    expect(res.json).toEqual(fixture('customer-moved-301.json'));
    expect(res.headers.get('location')).toBe('/api/v1/customer-profiles/cUs7omErIdX0000000001a');
  });

  it('answers an unknown id with the fixture’s 404 body', async () => {
    gladly.removeCustomer('cUs7omErIdX0000000001a');
    const res = await get('cUs7omErIdX0000000001a');
    expect(res.status).toBe(404);
    expect(res.json).toEqual(fixture('customer-not-found-404.json'));
  });

  it('checks Basic auth on every request', async () => {
    expect((await get('cUs7omErIdX0000000001a', '')).status).toBe(401);
    expect(
      (await get('cUs7omErIdX0000000001a', `Basic ${Buffer.from('u@example.com:nope').toString('base64')}`))
        .status,
    ).toBe(401);
  });

  it('limits requests per second with 429 and Retry-After', async () => {
    gladly.setRateLimit(0.5);
    expect((await get('cUs7omErIdX0000000001a')).status).toBe(200);
    const limited = await get('cUs7omErIdX0000000001a');
    expect([limited.status, limited.headers.get('retry-after')]).toEqual([429, '2']);
    gladly.setRateLimit(null);
    expect((await get('cUs7omErIdX0000000001a')).status).toBe(200);
  });

  it('records every lookup with its status (0 for a dropped connection)', async () => {
    gladly.injectFaults({ status: 503 }, { drop: true });
    expect((await get('a')).status).toBe(503);
    await expect(get('b')).rejects.toThrow(TypeError);
    await get('oLdCusT0mErId000000001');
    expect(gladly.requests.map((r) => [r.customerId, r.status])).toEqual([
      ['a', 503],
      ['b', 0],
      ['oLdCusT0mErId000000001', 301],
    ]);
  });

  it('setCustomer on a merged id makes it a live customer again', async () => {
    gladly.setCustomer('oLdCusT0mErId000000001', ['back@example.com']);
    expect((await get('oLdCusT0mErId000000001')).status).toBe(200);
  });

  it('holds every answer for the set latency, and not once it is set back to 0', async () => {
    gladly.setLatency(300);
    const started = performance.now();
    expect((await get('cUs7omErIdX0000000001a')).status).toBe(200);
    expect(performance.now() - started).toBeGreaterThanOrEqual(290);
    gladly.setLatency(0);
    const again = performance.now();
    await get('cUs7omErIdX0000000001a');
    expect(performance.now() - again).toBeLessThan(290);
  });
});

describe('Gladly stand-in: customers changed at run time', () => {
  async function events(): Promise<Record<string, unknown>[]> {
    const startAt = new Date(Date.now() - 60_000).toISOString();
    const res = await fetch(`${gladly.url}/api/v1/events?startAt=${startAt}&entities=CUSTOMER`, {
      headers: { authorization: AUTH },
    });
    expect(res.status).toBe(200);
    return (await res.text())
      .split('\n')
      .filter(Boolean)
      .map((line) => JSON.parse(line) as Record<string, unknown>);
  }

  it('updateCustomer answers the new addresses and emits CUSTOMER_PROFILE/UPDATED', async () => {
    const event = gladly.updateCustomer('cUs7omErIdX0000000001a', ['new.rosa@example.com']);
    const res = await get('cUs7omErIdX0000000001a');
    expect((res.json.emails as { original: string }[]).map((e) => e.original)).toEqual([
      'new.rosa@example.com',
    ]);
    expect(event).toMatchObject({
      type: 'CUSTOMER_PROFILE/UPDATED',
      content: { customerId: 'cUs7omErIdX0000000001a' },
    });
    expect(event.id).toMatch(/^[A-Za-z0-9]{22}$/);
    expect(await events()).toEqual([event]);
  });

  it('mergeCustomers makes the source answer 301 to the destination and emits CUSTOMER/MERGED', async () => {
    gladly.setCustomer('sRcCustomer00000000001', ['source@example.com']);
    const merge = {
      sourceCustomerId: 'sRcCustomer00000000001',
      destinationCustomerId: 'cUs7omErIdX0000000001a',
      sourceConversationId: 'sRcConversation0000001',
      destinationConversationId: 'dStConversation0000001',
    };
    const event = gladly.mergeCustomers(merge);
    const moved = await get('sRcCustomer00000000001');
    expect(moved.status).toBe(301);
    // The destination keeps its own addresses (not the source's).
    const kept = await get('cUs7omErIdX0000000001a');
    expect((kept.json.emails as { original: string }[]).map((e) => e.original)).not.toContain(
      'source@example.com',
    );
    expect(event).toMatchObject({ type: 'CUSTOMER/MERGED', content: merge });
    const second = gladly.updateCustomer('cUs7omErIdX0000000001a', ['x@example.com']);
    expect(second.id).not.toBe(event.id);
    expect((await events()).map((e) => e.type)).toEqual(['CUSTOMER/MERGED', 'CUSTOMER_PROFILE/UPDATED']);
  });
});
