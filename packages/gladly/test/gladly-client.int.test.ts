import { type GladlyStandIn, startGladlyStandIn } from '@gk/stand-ins';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { createGladlyClient, GladlyError, type GladlyErrorKind } from '../src/index.js';

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

async function lookupError(promise: Promise<unknown>): Promise<GladlyError> {
  const err = await promise.then(
    () => undefined,
    (e: unknown) => e,
  );
  expect(err).toBeInstanceOf(GladlyError);
  const error = err as GladlyError;
  // Never the token or an email in what ends up in logs.
  expect(error.message).not.toContain(TOKEN);
  expect(error.message).not.toMatch(/@/);
  return error;
}

const expectKind = async (promise: Promise<unknown>, kind: GladlyErrorKind) => {
  const error = await lookupError(promise);
  expect(error.kind).toBe(kind);
  return error;
};

describe('getCustomerEmails against the Gladly stand-in', () => {
  it('returns every email as Gladly spells it, in Gladly order', async () => {
    await expect(client().getCustomerEmails('cust1')).resolves.toEqual({
      status: 'found',
      customerId: 'cust1',
      emails: ['Rosa.Alvarez@example.com', 'rosa@work.example.org', 'ROSA@home.example.net'],
      hops: 0,
    });
    expect(gladly.requests.map((r) => [r.customerId, r.status])).toEqual([['cust1', 200]]);
  });

  it('encodes ids in the path', async () => {
    gladly.setCustomer('odd/id ü', ['a@b.co']);
    await expect(client().getCustomerEmails('odd/id ü')).resolves.toMatchObject({
      status: 'found',
      emails: ['a@b.co'],
    });
  });

  it('follows a merge (301) to the surviving customer', async () => {
    gladly.mergeCustomer('old1', 'cust1');
    await expect(client().getCustomerEmails('old1')).resolves.toMatchObject({
      status: 'found',
      customerId: 'cust1',
      hops: 1,
    });
    expect(gladly.requests.map((r) => [r.customerId, r.status])).toEqual([
      ['old1', 301],
      ['cust1', 200],
    ]);
  });

  it('follows merge chains up to maxMergeHops, then gives up as protocol', async () => {
    gladly.mergeCustomer('a', 'b');
    gladly.mergeCustomer('b', 'cust1');
    await expect(client({ maxMergeHops: 2 }).getCustomerEmails('a')).resolves.toMatchObject({ hops: 2 });
    await expectKind(client({ maxMergeHops: 1 }).getCustomerEmails('a'), 'protocol');
  });

  it('stops on a merge loop as protocol, without spinning', async () => {
    gladly.mergeCustomer('x', 'y');
    gladly.mergeCustomer('y', 'x');
    await expectKind(client({ maxMergeHops: 50 }).getCustomerEmails('x'), 'protocol');
    expect(gladly.requests).toHaveLength(2);
  });

  it('reports an unknown customer as not_found (also after a merge)', async () => {
    await expect(client().getCustomerEmails('nobody')).resolves.toEqual({
      status: 'not_found',
      customerId: 'nobody',
    });
    gladly.mergeCustomer('old2', 'gone');
    await expect(client().getCustomerEmails('old2')).resolves.toEqual({
      status: 'not_found',
      customerId: 'gone',
    });
  });

  it('429 → rate_limited with Retry-After (injected and from the rate limit)', async () => {
    gladly.injectFaults({ status: 429, retryAfterSeconds: 2 });
    const injected = await expectKind(client().getCustomerEmails('cust1'), 'rate_limited');
    expect(injected).toMatchObject({ status: 429, retryAfterMs: 2000 });

    gladly.setRateLimit(1);
    await expect(client().getCustomerEmails('cust1')).resolves.toMatchObject({ status: 'found' });
    const limited = await expectKind(client().getCustomerEmails('cust1'), 'rate_limited');
    expect(limited.retryAfterMs).toBe(1000);
  });

  it('503 → server', async () => {
    gladly.injectFaults({ status: 503 });
    expect(await expectKind(client().getCustomerEmails('cust1'), 'server')).toMatchObject({ status: 503 });
    // Faults are one-shot: the next lookup is normal again.
    await expect(client().getCustomerEmails('cust1')).resolves.toMatchObject({ status: 'found' });
  });

  it('a dropped connection → network', async () => {
    gladly.injectFaults({ drop: true });
    await expectKind(client().getCustomerEmails('cust1'), 'network');
  });

  it('a refused connection → network', async () => {
    const url = gladly.url;
    await gladly.close();
    await expectKind(
      createGladlyClient({ baseUrl: url, user: USER, token: TOKEN }).getCustomerEmails('c'),
      'network',
    );
    gladly = await startGladlyStandIn();
  });

  it('no answer within timeoutMs → timeout, promptly', async () => {
    gladly.injectFaults({ delayMs: 5_000 });
    const started = Date.now();
    await expectKind(client({ timeoutMs: 150 }).getCustomerEmails('cust1'), 'timeout');
    expect(Date.now() - started).toBeLessThan(2_000);
  });

  it('wrong credentials → auth (401), without leaking the token', async () => {
    gladly.setCredentials(USER, 'rotated-token');
    const error = await expectKind(client().getCustomerEmails('cust1'), 'auth');
    expect(error.status).toBe(401);
    expect(JSON.stringify(error)).not.toContain(TOKEN);
  });
});
