/**
 * Property-based fuzzing of `POST /webhooks/gladly` (`npm run test:fuzz`) against the built
 * ingest (`node apps/ingest/dist/main.js`) and a real redis-server: arbitrary bytes, JSON shapes,
 * headers, content types, encodings and sizes, with and without valid credentials. Every answer
 * must be the one the contract gives (webhook-oracle.ts): never a 5xx, except 503 while Redis is
 * down (with the spool off: spool.int.test.ts covers it); a job exactly for each valid transition
 * or customer change sent with valid credentials, for nothing else;
 * the process never crashes or hangs; no answer and no log line holds a secret.
 *
 * FUZZ_RUNS sets the number of requests while Redis is up (default 5000; a quarter as many while
 * it is down), FUZZ_SEED replays a run; the report goes to test-results/fuzz-report.json.
 */
import { mkdirSync, writeFileSync } from 'node:fs';
import { request } from 'node:http';
import { dirname } from 'node:path';
import { fileURLToPath } from 'node:url';
import {
  closeQueues,
  createProducerConnection,
  createQueues,
  customerChangeJobId,
  transitionJobId,
} from '@gk/queue';
import {
  findLogLeaks,
  freePort,
  type RedisServer,
  type ServiceProcess,
  startRedisServer,
  startServiceProcess,
  waitFor,
} from '@gk/testing';
import fc from 'fast-check';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import {
  BODY_LIMIT_BYTES,
  CUSTOMER_MERGED_TYPES,
  CUSTOMER_PROFILE_TYPES,
  type Expected,
  expectedAnswer,
  TRANSITION_TYPES,
} from './webhook-oracle.js';

const MAIN = fileURLToPath(new URL('../../dist/main.js', import.meta.url));
const REPORT =
  process.env.FUZZ_REPORT ??
  fileURLToPath(new URL('../../../../test-results/fuzz-report.json', import.meta.url));
const RUNS = Number(process.env.FUZZ_RUNS ?? 5000);
const SEED = process.env.FUZZ_SEED ? Number(process.env.FUZZ_SEED) : Math.floor(Math.random() * 2 ** 31);

const HOOK_USER = 'gladly';
const HOOK_PASSWORDS = ['fz-hook-pw-one-8c2d51', 'fz-hook-pw-two-1e7b09'];
const HOOK_TOKEN = 'fz-hook-token-4a9c31e2';
const ADMIN_USER = 'admin';
const ADMIN_PASSWORD = 'fz-admin-pw-77d0b3';
const b64 = (s: string) => Buffer.from(s, 'utf8').toString('base64');
const SECRETS = [
  ...HOOK_PASSWORDS,
  HOOK_TOKEN,
  ADMIN_PASSWORD,
  ...HOOK_PASSWORDS.map((p) => b64(`${HOOK_USER}:${p}`)),
  b64(`${ADMIN_USER}:${ADMIN_PASSWORD}`),
];
/** Put into bodies: it must never come back in an answer or reach a log line. */
const CUSTOMER_EMAIL = 'fuzz.customer@example.com';

let redis: RedisServer;
let ingest: ServiceProcess;
let port: number;
let queues: ReturnType<typeof createQueues>;
let connection: ReturnType<typeof createProducerConnection>;
const prefix = 'fuzz';

beforeAll(async () => {
  redis = await startRedisServer();
  port = await freePort();
  ingest = await startServiceProcess({
    script: MAIN,
    env: {
      REDIS_URL: redis.url,
      QUEUE_PREFIX: prefix,
      HOST: '127.0.0.1',
      PORT: String(port),
      WEBHOOK_BASIC_AUTH: JSON.stringify(HOOK_PASSWORDS.map((p) => `${HOOK_USER}:${p}`)),
      WEBHOOK_TOKENS: HOOK_TOKEN,
      ADMIN_USERNAME: ADMIN_USER,
      ADMIN_PASSWORD,
      LOG_LEVEL: 'debug',
      // The Redis-down property below is the 503 path; spool.int.test.ts covers the spool.
      INGEST_SPOOL_ENABLED: 'false',
    },
    readyUrl: `http://127.0.0.1:${port}/readyz`,
  });
  connection = createProducerConnection({ url: redis.url }, 'fuzz-monitor');
  queues = createQueues(connection, prefix);
});

afterAll(async () => {
  if (queues) await closeQueues(queues);
  connection?.disconnect();
  await ingest?.kill();
  await redis?.stop();
});

// ---- what a request is made of --------------------------------------------------------------

interface Credentials {
  label: string;
  valid: boolean;
  headers: Record<string, string>;
}

const basic = (user: string, password: string) => `Basic ${b64(`${user}:${password}`)}`;
const printable = fc.string({
  unit: fc.integer({ min: 0x20, max: 0x7e }).map((c) => String.fromCharCode(c)),
  maxLength: 60,
});

const validCredentials: fc.Arbitrary<Credentials> = fc.oneof(
  fc.constantFrom(...HOOK_PASSWORDS).map((p) => ({
    label: 'basic',
    valid: true,
    headers: { authorization: basic(HOOK_USER, p) },
  })),
  fc.constant({
    label: 'basic-lowercase-scheme',
    valid: true,
    headers: { authorization: `basic ${b64(`${HOOK_USER}:${HOOK_PASSWORDS[0]}`)}` },
  }),
  fc.constantFrom('X-Gladly-Token', 'x-gladly-token').map((name) => ({
    label: 'token',
    valid: true,
    headers: { [name]: HOOK_TOKEN },
  })),
  // Either way in is enough: a wrong Basic pair next to a right token, and the reverse.
  printable.map((t) => ({
    label: 'wrong-basic-valid-token',
    valid: true,
    headers: { authorization: basic(HOOK_USER, `x${t}`), 'x-gladly-token': HOOK_TOKEN },
  })),
  printable.map((t) => ({
    label: 'valid-basic-wrong-token',
    valid: true,
    headers: { authorization: basic(HOOK_USER, HOOK_PASSWORDS[1] ?? ''), 'x-gladly-token': `x${t}` },
  })),
);

const invalidCredentials: fc.Arbitrary<Credentials> = fc.oneof(
  fc.constant({ label: 'none', valid: false, headers: {} }),
  printable.map((p) => ({
    label: 'wrong-password',
    valid: false,
    headers: { authorization: basic(HOOK_USER, `x${p}`) },
  })),
  printable.map((u) => ({
    label: 'wrong-user',
    valid: false,
    headers: { authorization: basic(`x${u}`, HOOK_PASSWORDS[0] ?? '') },
  })),
  fc.constant({
    label: 'dashboard-credentials',
    valid: false,
    headers: { authorization: basic(ADMIN_USER, ADMIN_PASSWORD) },
  }),
  fc.constant({ label: 'token-as-bearer', valid: false, headers: { authorization: `Bearer ${HOOK_TOKEN}` } }),
  fc.constant({ label: 'token-in-other-header', valid: false, headers: { 'x-api-key': HOOK_TOKEN } }),
  fc.constant({
    label: 'token-as-basic-password',
    valid: false,
    headers: { authorization: basic(HOOK_USER, HOOK_TOKEN) },
  }),
  printable.map((t) => ({ label: 'wrong-token', valid: false, headers: { 'x-gladly-token': `t${t}` } })),
  printable.map((a) => ({
    label: 'garbage-authorization',
    valid: false,
    headers: { authorization: `G${a}` },
  })),
);

const credentials = fc.oneof(
  { weight: 3, arbitrary: validCredentials },
  { weight: 2, arbitrary: invalidCredentials },
);

interface MediaType {
  value: string | undefined;
  kind: 'json' | 'json-bad-charset' | 'not-json';
}

const mediaTypes: fc.Arbitrary<MediaType> = fc.oneof(
  {
    weight: 12,
    arbitrary: fc.constantFrom<MediaType>(
      { value: 'application/json', kind: 'json' },
      { value: 'application/json; charset=utf-8', kind: 'json' },
      { value: 'application/json;charset=UTF-8', kind: 'json' },
      { value: 'APPLICATION/JSON', kind: 'json' },
      { value: 'application/vnd.gladly+json', kind: 'json' },
      { value: 'application/problem+json; charset=utf-8', kind: 'json' },
    ),
  },
  {
    weight: 2,
    arbitrary: fc.constantFrom<MediaType>(
      { value: 'application/json; charset=latin1', kind: 'json-bad-charset' },
      { value: 'application/json; charset=us-ascii', kind: 'json-bad-charset' },
      { value: undefined, kind: 'not-json' },
      { value: 'text/plain', kind: 'not-json' },
      { value: 'text/json', kind: 'not-json' },
      { value: 'application/x-www-form-urlencoded', kind: 'not-json' },
      { value: 'multipart/form-data; boundary=zzz', kind: 'not-json' },
      { value: 'application/octet-stream', kind: 'not-json' },
      { value: 'application/jsonp', kind: 'not-json' },
      { value: 'json', kind: 'not-json' },
    ),
  },
  {
    weight: 1,
    arbitrary: printable
      .filter((s) => !/json/i.test(s))
      .map((value): MediaType => ({ value, kind: 'not-json' })),
  },
);

/** Header names Node or HTTP give a meaning of their own (`expect` gets a 417 from Node itself). */
const RESERVED = new Set([
  'authorization',
  'x-gladly-token',
  'content-type',
  'content-length',
  'content-encoding',
  'transfer-encoding',
  'host',
  'connection',
  'expect',
  'upgrade',
  'te',
  'trailer',
  'keep-alive',
]);
const headerName = fc.stringMatching(/^[a-z][a-z0-9-]{0,20}$/).filter((n) => !RESERVED.has(n));
const extraHeaders = fc.dictionary(headerName, printable, { maxKeys: 4 });

const isoDate = fc
  .date({ min: new Date('1970-01-01T00:00:00Z'), max: new Date('2100-01-01T00:00:00Z'), noInvalidDate: true })
  .map((d) => d.toISOString());
const timestamp = fc.oneof(
  { weight: 8, arbitrary: isoDate },
  { weight: 1, arbitrary: isoDate.map((s) => s.replace('Z', '+02:00')) },
  {
    weight: 2,
    arbitrary: fc.constantFrom(
      '2026-11-20T14:03Z',
      '2026-02-30T10:00:00Z',
      '2026-13-01T00:00:00Z',
      '2026-11-20T24:00:00Z',
      '2026-11-20 14:03:27Z',
      '2026-11-20T14:03:27+0200',
      '2026-11-20t14:03:27z',
      'yesterday',
      '',
      '2024-02-29T00:00:00Z',
    ),
  },
  { weight: 1, arbitrary: fc.jsonValue({ maxDepth: 1 }) },
);
/** Ids as Gladly sends them (base62), and anything else a string can hold, padded or too long. */
const idString = fc.oneof(
  { weight: 6, arbitrary: fc.stringMatching(/^[A-Za-z0-9]{22}$/) },
  { weight: 3, arbitrary: fc.string({ minLength: 0, maxLength: 40, unit: 'binary' }) },
  { weight: 1, arbitrary: fc.string({ minLength: 190, maxLength: 210 }) },
  { weight: 1, arbitrary: fc.stringMatching(/^[A-Za-z0-9]{1,10}$/).map((s) => `  ${s}\t`) },
);
const transitionType = fc.constantFrom(...TRANSITION_TYPES);
const customerChangeType = fc.constantFrom(...CUSTOMER_PROFILE_TYPES, ...CUSTOMER_MERGED_TYPES);
const anyType = fc.oneof(
  { weight: 6, arbitrary: transitionType },
  { weight: 2, arbitrary: customerChangeType },
  {
    weight: 1,
    arbitrary: fc.constantFrom(
      'PING',
      'CONVERSATION_STATUS/UPDATED',
      'CUSTOMER/UPDATED',
      ' CONVERSATION/CLOSED ',
      'customer/merged',
      'conversation/created',
    ),
  },
  { weight: 1, arbitrary: fc.string({ maxLength: 30 }) },
  { weight: 1, arbitrary: fc.jsonValue({ maxDepth: 1 }) },
);

const gladlyId = fc.stringMatching(/^[A-Za-z0-9]{22}$/);
const context = fc.oneof(
  fc.jsonValue({ maxDepth: 3 }),
  // Secrets and an address where a careless error message or log line might echo them.
  fc.constant({ email: CUSTOMER_EMAIL, note: `${HOOK_TOKEN} ${HOOK_PASSWORDS[0]} ${ADMIN_PASSWORD}` }),
);

/** A transition as Gladly sends it. */
const validEvent = fc.record(
  {
    id: gladlyId,
    type: transitionType,
    timestamp: fc.oneof(
      isoDate,
      isoDate.map((s) => s.replace('Z', '+02:00')),
    ),
    initiator: fc.record({ id: gladlyId, type: fc.constantFrom('AGENT', 'CUSTOMER') }),
    content: fc.record(
      { customerId: gladlyId, conversationId: gladlyId, context },
      { requiredKeys: ['customerId', 'conversationId'] },
    ),
  },
  { requiredKeys: ['id', 'type', 'timestamp', 'content'] },
);

/** A customer webhook as Gladly sends it: a profile updated or deleted, or two customers merged. */
const validCustomerEvent = fc.oneof(
  fc.record({
    id: gladlyId,
    type: fc.constantFrom(...CUSTOMER_PROFILE_TYPES),
    timestamp: isoDate,
    content: fc.record({ customerId: gladlyId }),
  }),
  fc.record(
    {
      id: gladlyId,
      type: fc.constantFrom(...CUSTOMER_MERGED_TYPES),
      timestamp: isoDate,
      initiator: fc.record({ id: gladlyId, type: fc.constant('AGENT') }),
      content: fc.record(
        {
          sourceCustomerId: gladlyId,
          destinationCustomerId: gladlyId,
          sourceConversationId: gladlyId,
          destinationConversationId: gladlyId,
        },
        { requiredKeys: ['sourceCustomerId', 'destinationCustomerId'] },
      ),
    },
    { requiredKeys: ['id', 'type', 'timestamp', 'content'] },
  ),
);
const anyValidEvent = fc.oneof(
  { weight: 3, arbitrary: validEvent },
  { weight: 1, arbitrary: validCustomerEvent },
);

/** One field of a valid event removed or replaced by something else (maybe still valid). */
const FIELDS = [
  'id',
  'type',
  'timestamp',
  'initiator',
  'content',
  'content.customerId',
  'content.conversationId',
  'content.context',
  'content.sourceCustomerId',
  'content.destinationConversationId',
  'initiator.id',
] as const;
const replacement = fc.oneof(idString, anyType, timestamp, fc.jsonValue({ maxDepth: 2 }));
const mutatedEvent = fc
  .tuple(anyValidEvent, fc.constantFrom(...FIELDS), fc.option(replacement, { freq: 4 }))
  .map(([event, field, value]) => {
    const copy = structuredClone(event) as Record<string, unknown>;
    const [head, tail] = field.split('.') as [string, string | undefined];
    let target: Record<string, unknown> = copy;
    let key = head;
    if (tail !== undefined) {
      const inner = copy[head];
      if (typeof inner !== 'object' || inner === null) return copy;
      target = inner as Record<string, unknown>;
      key = tail;
    }
    if (value === null) delete target[key];
    else target[key] = value;
    return copy;
  })
  .filter((e) => !containsSecret(JSON.stringify({ id: e.id, type: e.type })));

function containsSecret(text: string): boolean {
  return SECRETS.some((s) => text.includes(s));
}

interface Body {
  label: string;
  bytes: Buffer;
}

const json =
  (label: string) =>
  (value: unknown): Body => ({ label, bytes: Buffer.from(JSON.stringify(value) ?? '', 'utf8') });

/** A valid transition grown with padding to about `size` bytes (around the 64 KiB limit). */
const padded = fc
  .tuple(transitionType, fc.integer({ min: BODY_LIMIT_BYTES - 64, max: BODY_LIMIT_BYTES + 64 }))
  .map(([type, size]): Body => {
    const base = {
      id: `pad${size}`,
      type,
      timestamp: '2026-11-20T14:03:27.512Z',
      content: { customerId: 'c1', conversationId: 'v1', context: { pad: '' } },
    };
    const overhead = Buffer.byteLength(JSON.stringify(base));
    base.content.context.pad = 'x'.repeat(Math.max(0, size - overhead));
    return { label: 'near-limit', bytes: Buffer.from(JSON.stringify(base), 'utf8') };
  });

const bodies: fc.Arbitrary<Body> = fc.oneof(
  { weight: 5, arbitrary: validEvent.map(json('event')) },
  { weight: 2, arbitrary: validCustomerEvent.map(json('customer-event')) },
  { weight: 6, arbitrary: mutatedEvent.map(json('mutated-event')) },
  { weight: 2, arbitrary: fc.jsonValue({ maxDepth: 4 }).map(json('json-value')) },
  {
    weight: 2,
    arbitrary: fc
      .uint8Array({ maxLength: 2048 })
      .map((b): Body => ({ label: 'bytes', bytes: Buffer.from(b) })),
  },
  {
    weight: 1,
    arbitrary: fc
      .string({ maxLength: 200, unit: 'grapheme' })
      .map((s): Body => ({ label: 'text', bytes: Buffer.from(s, 'utf8') })),
  },
  {
    weight: 1,
    arbitrary: validEvent
      .map((e) => JSON.stringify(e))
      .chain((s) =>
        fc
          .nat({ max: Math.max(0, s.length - 1) })
          .map((n): Body => ({ label: 'truncated', bytes: Buffer.from(s.slice(0, n), 'utf8') })),
      ),
  },
  {
    weight: 1,
    arbitrary: validEvent.map(
      (e): Body => ({
        label: 'bom-and-space',
        bytes: Buffer.from(`\uFEFF \n${JSON.stringify(e)}\t`, 'utf8'),
      }),
    ),
  },
  { weight: 1, arbitrary: padded },
  {
    weight: 1,
    arbitrary: fc
      .integer({ min: BODY_LIMIT_BYTES + 1, max: 4 * BODY_LIMIT_BYTES })
      .map((n): Body => ({ label: 'oversized', bytes: Buffer.alloc(n, 0x7b) })),
  },
);

const contentEncoding = fc.option(fc.constantFrom('identity', 'gzip', 'br', 'x-unknown'), { freq: 12 });

interface FuzzRequest {
  credentials: Credentials;
  mediaType: MediaType;
  contentEncoding: string | null;
  extra: Record<string, string>;
  body: Body;
  chunked: boolean;
}

const fuzzRequest: fc.Arbitrary<FuzzRequest> = fc.record({
  credentials,
  mediaType: mediaTypes,
  contentEncoding,
  extra: extraHeaders,
  body: bodies,
  chunked: fc.boolean(),
});

// ---- sending --------------------------------------------------------------------------------

interface Answer {
  status: number;
  headers: Record<string, string | string[] | undefined>;
  body: string;
  ms: number;
}

function send(r: FuzzRequest): Promise<Answer> {
  const headers: Record<string, string> = { ...r.extra, ...r.credentials.headers };
  if (r.mediaType.value !== undefined) headers['content-type'] = r.mediaType.value;
  if (r.contentEncoding !== null) headers['content-encoding'] = r.contentEncoding;
  if (!r.chunked) headers['content-length'] = String(r.body.bytes.length);
  const started = performance.now();
  return new Promise((resolve, reject) => {
    const req = request(
      { host: '127.0.0.1', port, method: 'POST', path: '/webhooks/gladly', headers, agent: false },
      (res) => {
        const chunks: Buffer[] = [];
        res.on('data', (c: Buffer) => chunks.push(c));
        res.on('end', () =>
          resolve({
            status: res.statusCode ?? 0,
            headers: res.headers,
            body: Buffer.concat(chunks).toString('utf8'),
            ms: performance.now() - started,
          }),
        );
        res.on('error', reject);
      },
    );
    // The server may answer (401, 413) and close before the whole body is written: that is fine.
    let answered = false;
    req.on('response', () => {
      answered = true;
    });
    req.on('error', (err) => {
      if (!answered) reject(err);
    });
    req.setTimeout(5_000, () => req.destroy(new Error('no answer within 5 s (hang)')));
    if (r.chunked) {
      const half = Math.floor(r.body.bytes.length / 2);
      if (half > 0) req.write(r.body.bytes.subarray(0, half));
      req.end(r.body.bytes.subarray(half));
    } else req.end(r.body.bytes);
  });
}

function expectedFor(r: FuzzRequest): Expected {
  return expectedAnswer({
    credentialsValid: r.credentials.valid,
    mediaType: r.mediaType.kind,
    ...(r.contentEncoding !== null ? { contentEncoding: r.contentEncoding } : {}),
    body: r.body.bytes,
  });
}

const STATES = ['waiting', 'active', 'delayed', 'completed', 'failed'] as const;

/** Jobs in every queue (no worker runs here, so they stay where the ingest put them). */
async function jobCount(): Promise<number> {
  const all: Record<string, number>[] = await Promise.all(
    Object.values(queues).map((q) => q.getJobCounts(...STATES)),
  );
  return all.flatMap((c) => Object.values(c)).reduce((n, c) => n + c, 0);
}

/** `queue|event id` of every job in every queue. */
async function storedEventIds(): Promise<Set<string>> {
  const ids = new Set<string>();
  for (const queue of Object.values(queues))
    for (const job of await queue.getJobs([...STATES], 0, -1)) ids.add(`${queue.name}|${job.data.eventId}`);
  return ids;
}

const alive = () => ingest.child.exitCode === null && ingest.child.signalCode === null;

// ---- the properties -------------------------------------------------------------------------

const report = {
  seed: SEED,
  inputs: 0,
  redisUp: {
    inputs: 0,
    byStatus: {} as Record<string, number>,
    byBody: {} as Record<string, number>,
    byCredentials: {} as Record<string, number>,
    jobsStored: 0,
  },
  redisDown: { inputs: 0, byStatus: {} as Record<string, number> },
  slowestAnswerMs: 0,
  logLinesChecked: 0,
};
const bump = (m: Record<string, number>, k: string) => {
  m[k] = (m[k] ?? 0) + 1;
};

describe('fuzzing POST /webhooks/gladly on the built ingest', () => {
  const stored = new Set<string>();
  let unauthorizedBody: string | undefined;

  it('answers every request as the contract says, and stores exactly the valid events', async () => {
    await fc.assert(
      fc.asyncProperty(fuzzRequest, async (r) => {
        const expected = expectedFor(r);
        const answer = await send(r);
        report.inputs += 1;
        report.redisUp.inputs += 1;
        bump(report.redisUp.byStatus, String(answer.status));
        bump(report.redisUp.byBody, r.body.label);
        bump(report.redisUp.byCredentials, r.credentials.label);
        report.slowestAnswerMs = Math.max(report.slowestAnswerMs, Math.round(answer.ms));

        expect(alive(), 'the ingest process is alive').toBe(true);
        expect(answer.status, `answer ${answer.body}`).toBe(expected.status);
        for (const secret of SECRETS)
          expect(answer.body.includes(secret), 'a secret in the answer').toBe(false);
        expect(answer.body.includes(CUSTOMER_EMAIL), 'an address in the answer').toBe(false);
        if (expected.status === 401) {
          // The same answer whatever was wrong: nothing tells a wrong user from a wrong password.
          unauthorizedBody ??= answer.body;
          expect(answer.body).toBe(unauthorizedBody);
          expect(answer.headers['www-authenticate']).toBe('Basic realm="gladly-webhook"');
        } else if (expected.status === 200) {
          const body = JSON.parse(answer.body) as { status: string; id: string };
          if (expected.outcome === 'stored') {
            const key = `${expected.queue}|${expected.eventId}`;
            expect(body.status).toBe(stored.has(key) ? 'duplicate' : 'accepted');
            stored.add(key);
            const job =
              expected.queue === 'transitions'
                ? await queues.transitions.getJob(transitionJobId(expected.eventId))
                : await queues.customerChanges.getJob(customerChangeJobId(expected.eventId));
            expect(job?.data.eventId).toBe(expected.eventId);
          } else expect(body.status).toBe(expected.outcome);
        } else {
          expect(answer.headers['content-type']).toMatch(/^application\/problem\+json/);
        }
        // A job for each valid transition sent with valid credentials, never another.
        expect(await jobCount(), 'jobs stored').toBe(stored.size);
      }),
      { numRuns: RUNS, seed: SEED },
    );
    expect(await storedEventIds()).toEqual(stored);
    report.redisUp.jobsStored = stored.size;
    expect(stored.size, 'some valid events were generated').toBeGreaterThan(RUNS / 20);
    const customerChanges = [...stored].filter((k) => k.startsWith('customer-changes|')).length;
    expect(customerChanges, 'some customer changes among them').toBeGreaterThan(RUNS / 200);
  });

  it('while Redis is down: 503 with Retry-After for a valid event, the same 4xx as ever for the rest', async () => {
    await redis.kill();
    try {
      await fc.assert(
        fc.asyncProperty(fuzzRequest, async (r) => {
          const expected = expectedFor(r);
          const answer = await send(r);
          report.inputs += 1;
          report.redisDown.inputs += 1;
          bump(report.redisDown.byStatus, String(answer.status));
          report.slowestAnswerMs = Math.max(report.slowestAnswerMs, Math.round(answer.ms));
          expect(alive(), 'the ingest process is alive').toBe(true);
          if (expected.status === 200 && expected.outcome === 'stored') {
            expect(answer.status).toBe(503);
            expect(Number(answer.headers['retry-after'])).toBeGreaterThan(0);
            // Never a hang: Gladly gives up after 15 s, the contract says a second or two.
            expect(answer.ms).toBeLessThan(2_000);
          } else {
            expect(answer.status, `answer ${answer.body}`).toBe(expected.status);
          }
          for (const secret of SECRETS) expect(answer.body.includes(secret)).toBe(false);
        }),
        { numRuns: Math.ceil(RUNS / 4), seed: SEED + 1 },
      );
    } finally {
      await redis.restart();
    }
    await waitFor(async () => (await fetch(`http://127.0.0.1:${port}/readyz`)).status === 200, {
      timeoutMs: 15_000,
      what: 'the ingest to be ready again',
    });
    // Nothing answered 503 was stored, and everything stored before survived (AOF).
    const ids = await storedEventIds();
    expect(ids).toEqual(stored);
  });

  it('never crashed, and no log line holds a secret or an address', async () => {
    expect(alive()).toBe(true);
    expect((await fetch(`http://127.0.0.1:${port}/healthz`)).status).toBe(200);
    const output = ingest.output();
    report.logLinesChecked = output.split('\n').filter(Boolean).length;
    expect(report.logLinesChecked).toBeGreaterThan(report.inputs);
    expect(findLogLeaks('ingest', output, { secrets: SECRETS })).toEqual([]);
    mkdirSync(dirname(REPORT), { recursive: true });
    writeFileSync(REPORT, `${JSON.stringify(report, null, 2)}\n`);
    console.log(`fuzz report: ${JSON.stringify(report)}`);
  });
});
