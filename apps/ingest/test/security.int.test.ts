/**
 * Security promises of the built ingest (`node apps/ingest/dist/main.js`, logging at debug):
 * no secret in any answer or log line whatever a client sends or Redis does, the same 401 for a
 * wrong user and a wrong password on both the webhook and the dashboard, each refusing the other's
 * credentials, and the dashboard's security headers on every answer it gives.
 * (The in-process checks of the same kind live in webhook.int.test.ts; the fuzz suite sends
 * thousands more requests: test/fuzz/.)
 */
import { fileURLToPath } from 'node:url';
import {
  findLogLeaks,
  freePort,
  type RedisServer,
  type ServiceProcess,
  startRedisServer,
  startServiceProcess,
  waitFor,
} from '@gk/testing';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { basicAuth, freshEvent } from './helpers.js';

const MAIN = fileURLToPath(new URL('../dist/main.js', import.meta.url));
const HOOK_USER = 'gladly';
const HOOK_PASSWORD = 'sec-hook-pw-0b7e4c19';
const HOOK_TOKEN = 'sec-hook-token-6f2a8d53';
const ADMIN_USER = 'operator';
const ADMIN_PASSWORD = 'sec-admin-pw-93c1e0';
const SECRETS = [
  HOOK_PASSWORD,
  HOOK_TOKEN,
  ADMIN_PASSWORD,
  Buffer.from(`${HOOK_USER}:${HOOK_PASSWORD}`).toString('base64'),
  Buffer.from(`${ADMIN_USER}:${ADMIN_PASSWORD}`).toString('base64'),
];
const CUSTOMER_EMAIL = 'maria.lopez@example.com';

let redis: RedisServer;
let ingest: ServiceProcess;
let base: string;
/** Every answer body seen, to check none holds a secret. */
const bodies: string[] = [];

beforeAll(async () => {
  redis = await startRedisServer();
  const port = await freePort();
  base = `http://127.0.0.1:${port}`;
  ingest = await startServiceProcess({
    script: MAIN,
    env: {
      REDIS_URL: redis.url,
      QUEUE_PREFIX: 'security',
      HOST: '127.0.0.1',
      PORT: String(port),
      WEBHOOK_BASIC_AUTH: `${HOOK_USER}:${HOOK_PASSWORD}`,
      WEBHOOK_TOKENS: HOOK_TOKEN,
      ADMIN_USERNAME: ADMIN_USER,
      ADMIN_PASSWORD,
      LOG_LEVEL: 'trace',
      // The outage below goes through the 503 path (spool.int.test.ts covers the spool).
      INGEST_SPOOL_ENABLED: 'false',
    },
    readyUrl: `${base}/readyz`,
  });
});

afterAll(async () => {
  await ingest?.kill();
  await redis?.stop();
});

async function call(path: string, init: RequestInit = {}): Promise<{ res: Response; text: string }> {
  const res = await fetch(`${base}${path}`, init);
  const text = await res.text();
  bodies.push(text);
  return { res, text };
}

const postHook = (body: unknown, headers: Record<string, string>) =>
  call('/webhooks/gladly', {
    method: 'POST',
    headers: { 'content-type': 'application/json', ...headers },
    body: typeof body === 'string' ? body : JSON.stringify(body),
  });

/** What a client can compare between two 401s: status, challenge, type, body. */
const shape = ({ res, text }: { res: Response; text: string }) => ({
  status: res.status,
  challenge: res.headers.get('www-authenticate'),
  type: res.headers.get('content-type'),
  body: text,
});

describe('the same 401 whatever was wrong', () => {
  it('on the webhook: no credentials, wrong user, wrong password, wrong token, dashboard pair', async () => {
    const event = freshEvent();
    const answers = [
      await postHook(event, {}),
      await postHook(event, { authorization: basicAuth('someone-else', HOOK_PASSWORD) }),
      await postHook(event, { authorization: basicAuth(HOOK_USER, 'not-the-password') }),
      await postHook(event, { 'x-gladly-token': 'not-the-token' }),
      await postHook(event, { authorization: basicAuth(ADMIN_USER, ADMIN_PASSWORD) }),
    ].map(shape);
    expect(answers[0]?.status).toBe(401);
    for (const answer of answers) expect(answer).toEqual(answers[0]);
  });

  it('on the dashboard: no credentials, wrong user, wrong password, the webhook pair and token', async () => {
    const answers = [
      await call('/admin/queues'),
      await call('/admin/queues', { headers: { authorization: basicAuth('someone-else', ADMIN_PASSWORD) } }),
      await call('/admin/queues', { headers: { authorization: basicAuth(ADMIN_USER, 'not-the-password') } }),
      await call('/admin/queues', { headers: { authorization: basicAuth(HOOK_USER, HOOK_PASSWORD) } }),
      await call('/admin/queues', { headers: { 'x-gladly-token': HOOK_TOKEN } }),
      await call('/admin/queues/api/queues', { headers: { authorization: basicAuth(ADMIN_USER, 'nope') } }),
    ].map(shape);
    expect(answers[0]?.status).toBe(401);
    expect(answers[0]?.challenge).toBe('Basic realm="gk-admin"');
    for (const answer of answers) expect(answer).toEqual(answers[0]);
  });
});

describe('dashboard security headers', () => {
  const expectHeaders = (res: Response) => {
    expect(res.headers.get('x-content-type-options')).toBe('nosniff');
    expect(res.headers.get('x-frame-options')).toBe('DENY');
    expect(res.headers.get('referrer-policy')).toBe('no-referrer');
    expect(res.headers.get('cache-control')).toBe('no-store');
  };
  const admin = { authorization: basicAuth(ADMIN_USER, ADMIN_PASSWORD) };

  it('on the page, its API, its static files, its 404s and its 401s', async () => {
    const page = await call('/admin/queues', { headers: admin });
    expect(page.res.status).toBe(200);
    expectHeaders(page.res);
    const api = await call('/admin/queues/api/queues', { headers: admin });
    expect(api.res.status).toBe(200);
    expectHeaders(api.res);
    const asset = /(?:src|href)="((?:[^"]*\/)?static\/[^"]+)"/.exec(page.text)?.[1];
    expect(asset, 'the page links a static file').toBeDefined();
    const staticFile = await call(new URL(asset ?? '', `${base}/admin/queues/`).pathname, { headers: admin });
    expect(staticFile.res.status).toBe(200);
    expectHeaders(staticFile.res);
    const missing = await call('/admin/queues/api/queues/no-such-queue/jobs', { headers: admin });
    expect(missing.res.status).toBeGreaterThanOrEqual(400);
    expectHeaders(missing.res);
    const refused = await call('/admin/queues/api/queues');
    expect(refused.res.status).toBe(401);
    expectHeaders(refused.res);
  });
});

describe('no secret in any answer or log line', () => {
  it('through errors of every kind, a Redis outage and recovery', async () => {
    const good = { authorization: basicAuth(HOOK_USER, HOOK_PASSWORD) };
    const withSecrets = {
      ...freshEvent(),
      content: {
        customerId: HOOK_PASSWORD,
        conversationId: 'c1',
        context: { email: CUSTOMER_EMAIL, token: HOOK_TOKEN, admin: ADMIN_PASSWORD },
      },
    };
    await postHook(withSecrets, good);
    await postHook({ ...withSecrets, timestamp: HOOK_TOKEN }, good); // 400 naming the field
    await postHook(`{"id": "${HOOK_TOKEN}", "email": "${CUSTOMER_EMAIL}"`, good); // malformed JSON
    await postHook({ ...withSecrets, pad: 'x'.repeat(70_000) }, good); // 413
    await call('/webhooks/gladly', {
      method: 'POST',
      headers: { ...good, 'content-type': 'text/plain' },
      body: HOOK_PASSWORD,
    });
    await postHook(withSecrets, { authorization: basicAuth(HOOK_USER, `${HOOK_PASSWORD}x`) });
    await postHook(withSecrets, { authorization: `Bearer ${HOOK_TOKEN}` });
    await postHook(withSecrets, { 'x-gladly-token': `${HOOK_TOKEN}x`, cookie: `session=${ADMIN_PASSWORD}` });
    await call(`/webhooks/gladly?token=${HOOK_TOKEN}`, { headers: good }); // 405, query not logged
    // A token in the query string is not a way in (401), and is not logged either.
    const byQuery = await call(`/webhooks/gladly?token=${HOOK_TOKEN}`, {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify(freshEvent()),
    });
    expect(byQuery.res.status).toBe(401);
    await call(`/nowhere?password=${ADMIN_PASSWORD}`); // 404
    await call('/admin/queues', { headers: { authorization: basicAuth(ADMIN_USER, `${ADMIN_PASSWORD}x`) } });

    await redis.kill();
    const unavailable = await postHook(freshEvent(), good);
    expect(unavailable.res.status).toBe(503);
    await call('/readyz');
    await redis.restart();
    await waitFor(async () => (await fetch(`${base}/readyz`)).status === 200, { what: 'ready again' });
    expect((await postHook(freshEvent(), good)).res.status).toBe(200);

    for (const body of bodies) {
      for (const secret of SECRETS)
        expect(body.includes(secret), `a secret in: ${body.slice(0, 80)}`).toBe(false);
      expect(body.includes(CUSTOMER_EMAIL)).toBe(false);
    }
    const output = ingest.output();
    expect(output.split('\n').length).toBeGreaterThan(20);
    expect(findLogLeaks('ingest', output, { secrets: SECRETS })).toEqual([]);
  });
});
