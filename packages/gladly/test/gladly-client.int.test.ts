import { type GladlyStandIn, startGladlyStandIn } from '@gk/stand-ins';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { type CustomerLookupOutcome, createGladlyClient } from '../src/index.js';

const USER = 'bridge@acme.example';
const TOKEN = 'tok-s3cret-value';

let gladly: GladlyStandIn;

beforeEach(async () => {
  gladly = await startGladlyStandIn({
    user: USER,
    token: TOKEN,
    customers: { cust1: ['Rosa.Alvarez@example.com', 'rosa@work.example.org', 'ROSA@home.example.net'] },
  });
});

afterEach(async () => {
  await gladly.close();
});

const client = (overrides: { token?: string; timeoutMs?: number; maxMergeHops?: number } = {}) =>
  createGladlyClient({ baseUrl: `${gladly.url}/`, user: USER, token: TOKEN, ...overrides });

/** The customer an answered lookup found (or not), for comparing whole results. */
async function customerOf(promise: Promise<CustomerLookupOutcome>) {
  const outcome = await promise;
  if (outcome.kind !== 'answered') throw new Error(`expected an answer, got ${JSON.stringify(outcome)}`);
  return outcome.customer;
}

/** A failure of the given kind; its reason never carries the token or an email (it is logged). */
const expectKind = async (promise: Promise<CustomerLookupOutcome>, kind: CustomerLookupOutcome['kind']) => {
  const outcome = await promise;
  expect(outcome.kind).toBe(kind);
  const text = JSON.stringify(outcome);
  expect(text).not.toContain(TOKEN);
  expect(text).not.toMatch(/@/);
  expect(outcome.durationMs).toBeGreaterThanOrEqual(0);
  return outcome;
};

describe('getCustomerEmails against the Gladly stand-in', () => {
  it('returns every email as Gladly spells it, in Gladly order', async () => {
    await expect(customerOf(client().getCustomerEmails('cust1'))).resolves.toEqual({
      status: 'found',
      customerId: 'cust1',
      emails: ['Rosa.Alvarez@example.com', 'rosa@work.example.org', 'ROSA@home.example.net'],
      hops: 0,
    });
    expect(gladly.requests.map((r) => [r.customerId, r.status])).toEqual([['cust1', 200]]);
  });

  it('encodes ids in the path', async () => {
    gladly.setCustomer('odd/id ü', ['a@b.co']);
    await expect(customerOf(client().getCustomerEmails('odd/id ü'))).resolves.toMatchObject({
      status: 'found',
      emails: ['a@b.co'],
    });
  });

  it('follows a merge (301) to the surviving customer', async () => {
    gladly.mergeCustomer('old1', 'cust1');
    await expect(customerOf(client().getCustomerEmails('old1'))).resolves.toMatchObject({
      status: 'found',
      customerId: 'cust1',
      hops: 1,
    });
    expect(gladly.requests.map((r) => [r.customerId, r.status])).toEqual([
      ['old1', 301],
      ['cust1', 200],
    ]);
  });

  it('follows merge chains up to maxMergeHops, then gives up (retryable)', async () => {
    gladly.mergeCustomer('a', 'b');
    gladly.mergeCustomer('b', 'cust1');
    await expect(customerOf(client({ maxMergeHops: 2 }).getCustomerEmails('a'))).resolves.toMatchObject({
      hops: 2,
    });
    expect(await expectKind(client({ maxMergeHops: 1 }).getCustomerEmails('a'), 'retryable')).toMatchObject({
      status: 301,
    });
  });

  it('stops on a merge loop (retryable), without spinning', async () => {
    gladly.mergeCustomer('x', 'y');
    gladly.mergeCustomer('y', 'x');
    await expectKind(client({ maxMergeHops: 50 }).getCustomerEmails('x'), 'retryable');
    expect(gladly.requests).toHaveLength(2);
  });

  it('reports an unknown customer as not_found (also after a merge)', async () => {
    await expect(customerOf(client().getCustomerEmails('nobody'))).resolves.toEqual({
      status: 'not_found',
      customerId: 'nobody',
    });
    gladly.mergeCustomer('old2', 'gone');
    await expect(customerOf(client().getCustomerEmails('old2'))).resolves.toEqual({
      status: 'not_found',
      customerId: 'gone',
    });
  });

  it('429 → rate_limited with the raw Retry-After (injected and from the rate limit)', async () => {
    gladly.injectFaults({ status: 429, retryAfterSeconds: 2 });
    const injected = await expectKind(client().getCustomerEmails('cust1'), 'rate_limited');
    expect(injected).toMatchObject({ status: 429, retryAfter: '2' });

    gladly.setRateLimit(1);
    await expect(customerOf(client().getCustomerEmails('cust1'))).resolves.toMatchObject({ status: 'found' });
    const limited = await expectKind(client().getCustomerEmails('cust1'), 'rate_limited');
    expect(limited).toMatchObject({ retryAfter: '1' });
  });

  it('503 → retryable', async () => {
    gladly.injectFaults({ status: 503 });
    expect(await expectKind(client().getCustomerEmails('cust1'), 'retryable')).toMatchObject({ status: 503 });
    // Faults are one-shot: the next lookup is normal again.
    await expect(customerOf(client().getCustomerEmails('cust1'))).resolves.toMatchObject({ status: 'found' });
  });

  it('a dropped connection → retryable', async () => {
    gladly.injectFaults({ drop: true });
    expect(await expectKind(client().getCustomerEmails('cust1'), 'retryable')).toMatchObject({
      reason: expect.stringMatching(/network error/),
    });
  });

  it('a refused connection → retryable', async () => {
    const url = gladly.url;
    await gladly.close();
    await expectKind(
      createGladlyClient({ baseUrl: url, user: USER, token: TOKEN }).getCustomerEmails('c'),
      'retryable',
    );
    gladly = await startGladlyStandIn();
  });

  it('no answer within timeoutMs → retryable, promptly', async () => {
    gladly.injectFaults({ delayMs: 5_000 });
    const started = Date.now();
    expect(
      await expectKind(client({ timeoutMs: 150 }).getCustomerEmails('cust1'), 'retryable'),
    ).toMatchObject({
      reason: expect.stringMatching(/did not answer within 150 ms/),
    });
    expect(Date.now() - started).toBeLessThan(2_000);
  });

  it('wrong credentials → auth (401), without leaking the token', async () => {
    gladly.setCredentials(USER, 'rotated-token');
    const outcome = await expectKind(client().getCustomerEmails('cust1'), 'auth');
    expect(outcome).toMatchObject({ status: 401 });
  });
});
