import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { createSandbox, type Sandbox } from '../src/sandbox.js';

const KEY = 'pk_sandbox_profiles';
let sandbox: Sandbox;

beforeEach(async () => {
  sandbox = await createSandbox({
    gladly: { user: 'api@acme.test', token: 'gladly-token-p', ratePerSecond: 0 },
    klaviyo: { apiKey: KEY },
  });
});
afterEach(async () => {
  await sandbox.close();
});

const lookup = async (email: string) => {
  const filter = encodeURIComponent(`equals(email,"${email}")`);
  const res = await fetch(`${sandbox.url}/api/profiles?filter=${filter}`, {
    headers: {
      authorization: `Klaviyo-API-Key ${KEY}`,
      revision: '2026-07-15',
      accept: 'application/vnd.api+json',
    },
  });
  return { status: res.status, data: ((await res.json()) as { data: unknown[] }).data };
};

describe('sandbox: Klaviyo Get Profiles for KLAVIYO_CREATE_PROFILES=false', () => {
  it('knows every demo address but those of the customer new to Klaviyo', async () => {
    const customers = sandbox.state().customers;
    const known = customers.find((c) => c.id === 'demo-mei-tanaka')?.deliversTo[0] as string;
    const fresh = customers.find((c) => c.newToKlaviyo)?.deliversTo[0] as string;
    expect((await lookup(known)).data).toHaveLength(1);
    expect((await lookup(known.toUpperCase())).data).toHaveLength(1);
    expect(await lookup(fresh)).toEqual({ status: 200, data: [] });
    expect(sandbox.state().counts.klaviyo.profileLookups).toBe(3);
    // Looking up creates nothing on the page.
    expect(sandbox.state().profiles).toHaveLength(0);
  });
});
