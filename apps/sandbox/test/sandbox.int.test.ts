import { spawn } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { freePort, trackChild, waitFor } from '@gk/testing';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { createSandbox, type Sandbox } from '../src/sandbox.js';

const GLADLY = { user: 'api@acme.test', token: 'gladly-token-1' };
const KLAVIYO_KEY = 'pk_test_sandbox';
const event = JSON.parse(
  readFileSync(
    fileURLToPath(new URL('../../../fixtures/klaviyo/create-event.json', import.meta.url)),
    'utf8',
  ),
) as { data: { attributes: Record<string, unknown> & { unique_id: string } } };

let sandbox: Sandbox;
let randoms: number[];

beforeEach(async () => {
  randoms = [];
  sandbox = await createSandbox({
    gladly: { ...GLADLY, ratePerSecond: 0 },
    klaviyo: { apiKey: KLAVIYO_KEY },
    random: () => randoms.shift() ?? 1,
  });
});
afterEach(async () => {
  await sandbox.close();
});

const gladlyAuth = `Basic ${Buffer.from(`${GLADLY.user}:${GLADLY.token}`).toString('base64')}`;
const lookup = (id: string, authorization = gladlyAuth) =>
  fetch(`${sandbox.url}/api/v1/customer-profiles/${encodeURIComponent(id)}`, {
    headers: { authorization },
    redirect: 'manual',
  });

function createEvent(uniqueId: string, email = 'Rosa.Alvarez@example.com', body?: unknown) {
  const payload = body ?? {
    data: {
      ...event.data,
      attributes: {
        ...event.data.attributes,
        unique_id: uniqueId,
        profile: {
          data: { type: 'profile', attributes: { email, properties: { 'In Gladly Conversation': true } } },
        },
      },
    },
  };
  return fetch(`${sandbox.url}/api/events`, {
    method: 'POST',
    headers: {
      authorization: `Klaviyo-API-Key ${KLAVIYO_KEY}`,
      revision: '2026-07-15',
      accept: 'application/vnd.api+json',
      'content-type': 'application/vnd.api+json',
    },
    body: JSON.stringify(payload),
  });
}

describe('the sandbox on one port', () => {
  it("answers Gladly's customer-profiles API for the seeded customers", async () => {
    const rosa = await lookup('demo-rosa-alvarez');
    expect(rosa.status).toBe(200);
    const body = (await rosa.json()) as { emails: { original: string }[] };
    expect(body.emails.map((e) => e.original)).toEqual([
      'Rosa.Alvarez@example.com',
      'rosa@work.example.org',
      ' ROSA.ALVAREZ@example.com ',
      'rosa at example',
    ]);

    const merged = await lookup('demo-ben-okafor-old');
    expect(merged.status).toBe(301);
    expect(((await merged.json()) as { errors: { meta: { new: string } }[] }).errors[0]?.meta.new).toBe(
      'demo-ben-okafor',
    );

    const unknown = await lookup('demo-unknown-customer');
    expect(unknown.status).toBe(404);
    expect(((await unknown.json()) as { errors: { code: string }[] }).errors[0]?.code).toBe('not_exist');

    const phoneOnly = await lookup('demo-sam-phone-only');
    expect(((await phoneOnly.json()) as { emails: unknown[] }).emails).toEqual([]);

    expect((await lookup('demo-rosa-alvarez', 'Basic bm9ib2R5Om5vcGU=')).status).toBe(401);
    const state = sandbox.state();
    expect(state.counts.gladly.lookups).toBe(5);
    expect(state.customers.find((c) => c.id === 'demo-unknown-customer')?.lastLookupStatus).toBe(404);
  });

  it('validates Klaviyo requests as Klaviyo does and dedupes on unique_id per profile and metric', async () => {
    const bad = await createEvent('x', undefined, { data: { type: 'event' } });
    expect(bad.status).toBe(400);
    const errors = ((await bad.json()) as { errors: { status: number; code: string; source: unknown }[] })
      .errors;
    expect(errors[0]).toMatchObject({ status: 400, code: 'invalid' });
    expect(errors[0]?.source).toBeDefined();

    expect((await createEvent('evt-1')).status).toBe(202);
    expect((await createEvent('evt-1', 'ROSA.alvarez@example.com')).status).toBe(202);
    expect((await createEvent('evt-2')).status).toBe(202);

    const state = sandbox.state();
    expect(state.counts.klaviyo).toMatchObject({ accepted: 3, duplicates: 1, events: 2 });
    expect(state.profiles).toHaveLength(1);
    expect(state.profiles[0]).toMatchObject({
      email: 'Rosa.Alvarez@example.com',
      name: 'Rosa Alvarez',
      customerId: 'demo-rosa-alvarez',
      properties: { 'In Gladly Conversation': true },
    });
    expect(state.profiles[0]?.events.map((e) => e.uniqueId)).toEqual(['evt-1', 'evt-2']);

    const recorded = await (await fetch(`${sandbox.url}/api/events/_recorded`)).json();
    expect((recorded as { events: unknown[] }).events).toHaveLength(2);
  });

  it('answers 429 with Retry-After once the configured Klaviyo rate is crossed', async () => {
    await sandbox.close();
    sandbox = await createSandbox({ gladly: GLADLY, klaviyo: { apiKey: KLAVIYO_KEY, ratePerSecond: 2 } });
    const statuses = [];
    for (let i = 0; i < 4; i += 1) {
      const res = await createEvent(`rate-${i}`);
      statuses.push(res.status);
      if (res.status === 429) expect(Number(res.headers.get('retry-after'))).toBeGreaterThanOrEqual(1);
    }
    expect(statuses.slice(0, 2)).toEqual([202, 202]);
    expect(statuses).toContain(429);
  });

  it('serves Bulk Create Events through the same port, with the failure rate and faults', async () => {
    const bulk = (uniqueId: string) =>
      fetch(`${sandbox.url}/api/event-bulk-create-jobs`, {
        method: 'POST',
        headers: {
          authorization: `Klaviyo-API-Key ${KLAVIYO_KEY}`,
          revision: '2026-07-15',
          'content-type': 'application/vnd.api+json',
        },
        body: JSON.stringify({
          data: {
            type: 'event-bulk-create-job',
            attributes: {
              'events-bulk-create': {
                data: [
                  {
                    type: 'event-bulk-create',
                    attributes: {
                      profile: { data: { type: 'profile', attributes: { email: 'bulk@example.com' } } },
                      events: {
                        data: [
                          {
                            type: 'event',
                            attributes: {
                              properties: {},
                              time: '2026-11-20T14:03:27Z',
                              unique_id: uniqueId,
                              metric: { data: { type: 'metric', attributes: { name: 'started' } } },
                            },
                          },
                        ],
                      },
                    },
                  },
                ],
              },
            },
          },
        }),
      });
    expect((await bulk('b-1')).status).toBe(202);
    sandbox.injectFaults('klaviyo', { status: 503 });
    expect((await bulk('b-2')).status).toBe(503);
    expect(sandbox.state().counts.klaviyo).toMatchObject({ bulkPosts: 2, bulkAccepted: 1, events: 1 });
  });

  it('injects faults on request: a 503 for the next POSTs, a dropped Gladly connection', async () => {
    const injected = await fetch(`${sandbox.url}/_sandbox/faults`, {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify({ target: 'klaviyo', status: 503, count: 2 }),
    });
    expect(injected.status).toBe(202);
    expect((await createEvent('f-1')).status).toBe(503);
    expect((await createEvent('f-1')).status).toBe(503);
    expect((await createEvent('f-1')).status).toBe(202);

    sandbox.injectFaults('gladly', { drop: true });
    await expect(lookup('demo-mei-tanaka')).rejects.toThrow();
    expect((await lookup('demo-mei-tanaka')).status).toBe(200);

    const invalid = await fetch(`${sandbox.url}/_sandbox/faults`, {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify({ target: 'klaviyo' }),
    });
    expect(invalid.status).toBe(400);
  });

  it('fails the configured share of requests when given a failure rate', async () => {
    await sandbox.close();
    randoms = [0.05, 0.9, 0.05, 0.9];
    sandbox = await createSandbox({
      gladly: { ...GLADLY, failureRate: 0.1 },
      klaviyo: { apiKey: KLAVIYO_KEY, failureRate: 0.1 },
      random: () => randoms.shift() ?? 1,
    });
    expect((await createEvent('r-1')).status).toBe(503);
    expect((await createEvent('r-1')).status).toBe(202);
    expect((await lookup('demo-mei-tanaka')).status).toBe(503);
    expect((await lookup('demo-mei-tanaka')).status).toBe(200);
  });

  it('serves the page and tells it about every change on the event stream', async () => {
    const page = await fetch(`${sandbox.url}/`);
    expect(page.headers.get('content-type')).toContain('text/html');
    expect(await page.text()).toContain('Gladly → Klaviyo sandbox');

    const controller = new AbortController();
    const stream = await fetch(`${sandbox.url}/_sandbox/stream`, { signal: controller.signal });
    expect(stream.headers.get('content-type')).toBe('text/event-stream');
    const reader = stream.body?.getReader();
    let text = '';
    const read = (async () => {
      while (reader && !text.includes('event: change')) {
        const { value, done } = await reader.read();
        if (done) break;
        text += new TextDecoder().decode(value);
      }
    })();
    await createEvent('live-1');
    await waitFor(() => text.includes('event: change'), { what: 'a change notification' });
    expect(text).toContain('"events":1');
    controller.abort();
    await read.catch(() => {});
  });
});

describe('the built sandbox process', () => {
  const MAIN = fileURLToPath(new URL('../dist/main.js', import.meta.url));

  function run(env: Record<string, string>) {
    let out = '';
    const child = trackChild(
      spawn(process.execPath, [MAIN], {
        env: { PATH: process.env.PATH ?? '', ...env },
        stdio: ['ignore', 'pipe', 'pipe'],
      }),
    );
    child.stdout.on('data', (d) => {
      out += String(d);
    });
    child.stderr.on('data', (d) => {
      out += String(d);
    });
    const exited = new Promise<number | null>((resolve) => child.once('exit', (code) => resolve(code)));
    return { child, exited, output: () => out };
  }

  it('refuses a bad variable, naming it', async () => {
    const p = run({ SANDBOX_PORT: 'lots', SANDBOX_KLAVIYO_FAILURE_RATE: '2' });
    expect(await p.exited).toBe(1);
    expect(p.output()).toContain('SANDBOX_PORT');
    expect(p.output()).toContain('SANDBOX_KLAVIYO_FAILURE_RATE');
  });

  it('serves on SANDBOX_PORT and exits 0 on SIGTERM', async () => {
    const port = await freePort();
    const p = run({ SANDBOX_PORT: String(port) });
    await waitFor(
      async () => (await fetch(`http://127.0.0.1:${port}/healthz`).catch(() => null))?.status === 200,
      { timeoutMs: 10_000, what: 'the sandbox to answer' },
    );
    // The dev defaults are what npm start gives the worker.
    const auth = `Basic ${Buffer.from('sandbox-api-user@example.com:dev-gladly-token').toString('base64')}`;
    const res = await fetch(`http://127.0.0.1:${port}/api/v1/customer-profiles/demo-tom-becker`, {
      headers: { authorization: auth },
    });
    expect(res.status).toBe(200);
    p.child.kill('SIGTERM');
    expect(await p.exited).toBe(0);
  });
});

describe('customers changed at run time', () => {
  const post = (path: string, body: unknown) =>
    fetch(`${sandbox.url}${path}`, {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: typeof body === 'string' ? body : JSON.stringify(body),
    });

  it('POST /_sandbox/customers/{id} changes the addresses Gladly answers and returns CUSTOMER_PROFILE/UPDATED', async () => {
    const res = await post('/_sandbox/customers/demo-mei-tanaka', { emails: ['mei@new.example.com'] });
    expect(res.status).toBe(200);
    const { event: updated } = (await res.json()) as { event: Record<string, unknown> };
    expect(updated).toMatchObject({
      type: 'CUSTOMER_PROFILE/UPDATED',
      content: { customerId: 'demo-mei-tanaka' },
    });
    const profile = (await (await lookup('demo-mei-tanaka')).json()) as { emails: { original: string }[] };
    expect(profile.emails.map((e) => e.original)).toEqual(['mei@new.example.com']);
    const customers = (await (await fetch(`${sandbox.url}/_sandbox/customers`)).json()) as {
      id: string;
      deliversTo: string[];
    }[];
    expect(customers.find((c) => c.id === 'demo-mei-tanaka')?.deliversTo).toEqual(['mei@new.example.com']);
    // Recorded in the Events API like Gladly's own.
    expect(sandbox.gladly.events.map((e) => e.id)).toContain(updated.id);
  });

  it('POST /_sandbox/merges merges two customers (301 to the destination) and returns CUSTOMER/MERGED', async () => {
    const merge = {
      sourceCustomerId: 'demo-priya-shah',
      destinationCustomerId: 'demo-mei-tanaka',
      sourceConversationId: 'convPriya',
      destinationConversationId: 'convMei',
    };
    const res = await post('/_sandbox/merges', merge);
    expect(res.status).toBe(200);
    expect(((await res.json()) as { event: unknown }).event).toMatchObject({
      type: 'CUSTOMER/MERGED',
      content: merge,
    });
    expect((await lookup('demo-priya-shah')).status).toBe(301);
    const customers = (await (await fetch(`${sandbox.url}/_sandbox/customers`)).json()) as {
      id: string;
      kind: string;
      deliversTo: string[];
    }[];
    expect(customers.find((c) => c.id === 'demo-priya-shah')).toMatchObject({
      kind: 'merged',
      deliversTo: ['mei.tanaka@example.com'],
    });
  });

  it('refuses bodies it cannot use with 400 and says why', async () => {
    expect((await post('/_sandbox/customers/demo-mei-tanaka', 'not json')).status).toBe(400);
    const bad = await post('/_sandbox/customers/demo-mei-tanaka', { emails: 'one@example.com' });
    expect(bad.status).toBe(400);
    expect(((await bad.json()) as { issues: string[] }).issues[0]).toMatch(/^emails:/);
    expect((await post('/_sandbox/customers/', { emails: [] })).status).toBe(400);
    expect((await post('/_sandbox/merges', { sourceCustomerId: 'a' })).status).toBe(400);
    const self = await post('/_sandbox/merges', { sourceCustomerId: 'a', destinationCustomerId: 'a' });
    expect(self.status).toBe(400);
    expect((await lookup('demo-mei-tanaka')).status).toBe(200);
  });
});
