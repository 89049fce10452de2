/**
 * The customer email cache: against a real Redis first (hit/miss, TTLs, invalidation through
 * merges, the invalidate-while-looking-up race), then end to end through the built ingest and
 * worker with the Gladly and Klaviyo stand-ins: a create and a close cost one Gladly lookup, and
 * CUSTOMER_PROFILE/UPDATED and CUSTOMER/MERGED webhooks make the next transition see Gladly's
 * new emails.
 */
import { fileURLToPath } from 'node:url';
import type { CustomerEmailsResult } from '@gk/gladly';
import { createWorkerConnection, type RedisConnection } from '@gk/queue';
import {
  type GladlyStandIn,
  type KlaviyoStandIn,
  startGladlyStandIn,
  startKlaviyoStandIn,
} from '@gk/stand-ins';
import {
  freePort,
  registerTestSecrets,
  type ServiceProcess,
  sleep,
  startServiceProcess,
  type TestRedis,
  uniquePrefix,
  useTestRedis,
  waitFor,
} from '@gk/testing';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { CustomerCache } from '../src/state/customer-cache.js';
import { GLADLY_TOKEN, GLADLY_USER, KLAVIYO_KEY } from './harness.js';
import { startWorkerProcess, type WorkerProcess } from './worker-process.js';

const INGEST_MAIN = fileURLToPath(new URL('../../ingest/dist/main.js', import.meta.url));
const HOOK_PASSWORD = 'cache-hook-pw-5c1e07';
registerTestSecrets(HOOK_PASSWORD);

let redis: TestRedis;
let connection: RedisConnection;

beforeAll(async () => {
  redis = await useTestRedis();
  connection = createWorkerConnection(redis.target, 'cache-test');
});

afterAll(async () => {
  connection?.disconnect();
  await redis?.stop();
});

const found = (customerId: string, emails: string[], hops = 0): CustomerEmailsResult => ({
  status: 'found',
  customerId,
  emails,
  hops,
});

describe('CustomerCache on Redis', () => {
  const newCache = (options: { ttlSeconds?: number; maxLookupMs?: number } = {}) =>
    new CustomerCache(connection, { prefix: uniquePrefix('cache'), ttlSeconds: 3600, ...options });

  it('misses, stores with the TTL, then hits with the same result', async () => {
    const cache = newCache();
    const first = await cache.read('c1');
    expect(first.hit).toBe(false);
    if (first.hit) return;
    expect(await cache.write('c1', found('c1', ['a@example.com']), first.ticket)).toBe(true);
    expect(await cache.read('c1')).toEqual({ hit: true, value: found('c1', ['a@example.com']) });
  });

  it('keeps "not found" only briefly (60 s), a found customer for the TTL', async () => {
    const prefix = uniquePrefix('cache-ttl');
    const cache = new CustomerCache(connection, { prefix, ttlSeconds: 3600 });
    const a = await cache.read('gone');
    const b = await cache.read('here');
    if (a.hit || b.hit) throw new Error('expected misses');
    await cache.write('gone', { status: 'not_found', customerId: 'gone' }, a.ticket);
    await cache.write('here', found('here', ['h@example.com']), b.ticket);
    const ttlGone = await connection.ttl(`${prefix}:cust:e:gone`);
    const ttlHere = await connection.ttl(`${prefix}:cust:e:here`);
    expect(ttlGone).toBeGreaterThan(50);
    expect(ttlGone).toBeLessThanOrEqual(60);
    expect(ttlHere).toBeGreaterThan(3500);
    expect(await cache.read('gone')).toEqual({
      hit: true,
      value: { status: 'not_found', customerId: 'gone' },
    });
  });

  it('an invalidation drops the entry', async () => {
    const cache = newCache();
    const miss = await cache.read('c2');
    if (miss.hit) throw new Error('expected a miss');
    await cache.write('c2', found('c2', ['old@example.com']), miss.ticket);
    expect(await cache.invalidate(['c2'])).toBe(1);
    expect((await cache.read('c2')).hit).toBe(false);
  });

  it('a lookup that was running when its customer was invalidated does not store what it read', async () => {
    const cache = newCache();
    const miss = await cache.read('c3');
    if (miss.hit) throw new Error('expected a miss');
    // The worker is talking to Gladly (it may read the old emails) while the change arrives.
    await cache.invalidate(['c3']);
    expect(await cache.write('c3', found('c3', ['old@example.com']), miss.ticket)).toBe(false);
    expect((await cache.read('c3')).hit).toBe(false);
    // A lookup that starts after the invalidation stores as usual.
    const next = await cache.read('c3');
    if (next.hit) throw new Error('expected a miss');
    expect(await cache.write('c3', found('c3', ['new@example.com']), next.ticket)).toBe(true);
  });

  it('an entry that resolved through a merge is dropped when the surviving customer changes', async () => {
    const cache = newCache();
    const old = await cache.read('old-id');
    if (old.hit) throw new Error('expected a miss');
    await cache.write('old-id', found('survivor', ['s@example.com'], 1), old.ticket);
    // Following the merge also told us the survivor's emails: stored under its id too.
    expect(await cache.read('survivor')).toEqual({ hit: true, value: found('survivor', ['s@example.com']) });

    expect(await cache.invalidate(['survivor'])).toBe(2);
    expect((await cache.read('old-id')).hit).toBe(false);
    expect((await cache.read('survivor')).hit).toBe(false);
  });

  it('refuses a write whose resolved customer was invalidated during the lookup', async () => {
    const cache = newCache();
    const miss = await cache.read('merged-away');
    if (miss.hit) throw new Error('expected a miss');
    await cache.invalidate(['survivor-2']);
    expect(await cache.write('merged-away', found('survivor-2', ['x@example.com'], 1), miss.ticket)).toBe(
      false,
    );
  });

  it('refuses a write from a lookup that took longer than the limit (a frozen worker)', async () => {
    const cache = newCache({ maxLookupMs: 100 });
    const miss = await cache.read('slow');
    if (miss.hit) throw new Error('expected a miss');
    await sleep(200);
    expect(await cache.write('slow', found('slow', ['s@example.com']), miss.ticket)).toBe(false);
  });

  it('with a TTL of 0 never reads nor stores', async () => {
    const cache = newCache({ ttlSeconds: 0 });
    expect(cache.enabled).toBe(false);
    const miss = await cache.read('c4');
    expect(miss).toEqual({ hit: false, ticket: '' });
    expect(await cache.write('c4', found('c4', ['a@example.com']), '')).toBe(false);
    expect((await cache.read('c4')).hit).toBe(false);
  });
});

describe('end to end: built ingest and worker, Gladly and Klaviyo stand-ins', () => {
  let gladly: GladlyStandIn;
  let klaviyo: KlaviyoStandIn;
  let ingest: ServiceProcess;
  let worker: WorkerProcess;
  let ingestUrl: string;
  const prefix = uniquePrefix('cache-e2e');
  let n = 0;

  beforeAll(async () => {
    gladly = await startGladlyStandIn({ user: GLADLY_USER, token: GLADLY_TOKEN });
    klaviyo = await startKlaviyoStandIn({ apiKey: KLAVIYO_KEY });
    gladly.setCustomer('cust-rosa', ['rosa@example.com']);
    gladly.setCustomer('cust-ben', ['ben@example.com']);
    gladly.setCustomer('cust-ben-old', ['ben.old@example.com']);
    const port = await freePort();
    ingestUrl = `http://127.0.0.1:${port}`;
    ingest = await startServiceProcess({
      script: INGEST_MAIN,
      env: {
        ...redis.env,
        QUEUE_PREFIX: prefix,
        PORT: String(port),
        HOST: '127.0.0.1',
        WEBHOOK_BASIC_AUTH: `gladly:${HOOK_PASSWORD}`,
      },
      readyUrl: `${ingestUrl}/readyz`,
    });
    worker = await startWorkerProcess({
      ...redis.env,
      QUEUE_PREFIX: prefix,
      GLADLY_API_URL: gladly.url,
      GLADLY_API_USER: GLADLY_USER,
      GLADLY_API_TOKEN: GLADLY_TOKEN,
      KLAVIYO_API_URL: klaviyo.url,
      KLAVIYO_API_KEY: KLAVIYO_KEY,
    });
  });

  afterAll(async () => {
    await worker?.stop();
    await ingest?.stop();
    await Promise.all([gladly?.close(), klaviyo?.close()]);
  });

  const post = async (type: string, content: Record<string, string>) => {
    n += 1;
    const id = `cache-e2e-${n}-${Math.random().toString(36).slice(2, 8)}`;
    const res = await fetch(`${ingestUrl}/webhooks/gladly`, {
      method: 'POST',
      headers: {
        'content-type': 'application/json',
        authorization: `Basic ${Buffer.from(`gladly:${HOOK_PASSWORD}`).toString('base64')}`,
      },
      // One second apart per event, so per-email order is the order sent.
      body: JSON.stringify({
        id,
        type,
        timestamp: new Date(Date.UTC(2026, 10, 20, 10, 0, n)).toISOString(),
        content,
      }),
    });
    expect(res.status).toBe(200);
    return id;
  };
  const conversation = (type: string, customerId: string) =>
    post(type, { customerId, conversationId: `conv-${customerId}` });
  const lookups = (customerId: string) => gladly.requests.filter((r) => r.customerId === customerId).length;
  const delivered = (email: string, eventId: string) =>
    waitFor(() => klaviyo.events.some((e) => e.email === email && e.uniqueId === eventId), {
      timeoutMs: 15_000,
      what: `event ${eventId} for ${email}`,
    });
  const scrapeWorker = async () => (await fetch(`http://127.0.0.1:${worker.port}/metrics`)).text();
  const sample = (text: string, name: string) =>
    Number(new RegExp(`^${name}(?:\\{[^}]*\\})? (\\S+)$`, 'm').exec(text)?.[1] ?? Number.NaN);

  it('a create and its close cost one Gladly lookup', async () => {
    const created = await conversation('CONVERSATION/CREATED', 'cust-rosa');
    await delivered('rosa@example.com', created);
    const closed = await conversation('CONVERSATION/CLOSED', 'cust-rosa');
    await delivered('rosa@example.com', closed);
    expect(lookups('cust-rosa')).toBe(1);
    const metrics = await scrapeWorker();
    expect(sample(metrics, 'gk_customer_cache_hits_total')).toBe(1);
    expect(sample(metrics, 'gk_customer_cache_misses_total')).toBe(1);
  });

  it('after CUSTOMER_PROFILE/UPDATED the next transition sees the new emails', async () => {
    gladly.setCustomer('cust-rosa', ['rosa.new@example.com']);
    await post('CUSTOMER_PROFILE/UPDATED', { customerId: 'cust-rosa' });
    await waitFor(async () => sample(await scrapeWorker(), 'gk_customer_cache_invalidations_total') === 1, {
      timeoutMs: 10_000,
      what: 'the invalidation to be processed',
    });
    const reopened = await conversation('CONVERSATION/REOPENED', 'cust-rosa');
    await delivered('rosa.new@example.com', reopened);
    expect(lookups('cust-rosa')).toBe(2);
    expect(klaviyo.events.some((e) => e.email === 'rosa@example.com' && e.uniqueId === reopened)).toBe(false);
  });

  it('after CUSTOMER/MERGED a transition of the merged-away customer goes to the survivor’s emails', async () => {
    const before = await conversation('CONVERSATION/CREATED', 'cust-ben-old');
    await delivered('ben.old@example.com', before);
    const survivor = await conversation('CONVERSATION/CREATED', 'cust-ben');
    await delivered('ben@example.com', survivor);

    // Gladly merges the old profile into the survivor, which now holds both addresses.
    gladly.mergeCustomer('cust-ben-old', 'cust-ben');
    gladly.setCustomer('cust-ben', ['ben@example.com', 'ben.old@example.com']);
    await post('CUSTOMER/MERGED', { sourceCustomerId: 'cust-ben-old', destinationCustomerId: 'cust-ben' });
    await waitFor(async () => sample(await scrapeWorker(), 'gk_customer_cache_invalidations_total') === 3, {
      timeoutMs: 10_000,
      what: 'the merge to be processed',
    });

    const closed = await conversation('CONVERSATION/CLOSED', 'cust-ben-old');
    await delivered('ben@example.com', closed);
    await delivered('ben.old@example.com', closed);
    // Following the 301 (one request each to the old id and the survivor) cached both ids, so
    // the survivor's own close needs no lookup.
    const closedSurvivor = await conversation('CONVERSATION/CLOSED', 'cust-ben');
    await delivered('ben.old@example.com', closedSurvivor);
    expect(lookups('cust-ben-old')).toBe(2);
    expect(lookups('cust-ben')).toBe(2);
  });
});
