import { readFileSync } from 'node:fs';
import { createServer, type IncomingMessage, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import type { Logger } from '@gk/runtime';
import {
  type GladlyStandIn,
  type InjectedFault,
  type KlaviyoStandIn,
  startGladlyStandIn,
  startKlaviyoStandIn,
} from '@gk/stand-ins';
import { z } from 'zod';
import {
  DEMO_CUSTOMERS,
  type DemoCustomer,
  type DemoCustomerView,
  describeDemoCustomers,
} from './demo-customers.js';
import { demoHistory, type HistoryEvent } from './demo-history.js';
import { createProxy } from './proxy.js';

export const GLADLY_PROFILE_PATH = '/api/v1/customer-profiles/';
export const GLADLY_EVENTS_PATH = '/api/v1/events';
export const GLADLY_WEBHOOKS_PATH = '/api/v1/webhooks';
export const KLAVIYO_EVENTS_PATH = '/api/events';
export const KLAVIYO_BULK_PATH = '/api/event-bulk-create-jobs';

export type FaultTarget = 'gladly' | 'klaviyo';

export interface SandboxOptions {
  /** Default 0: any free port. */
  port?: number;
  /** Default 127.0.0.1. */
  host?: string;
  gladly: { user: string; token: string; ratePerSecond?: number; failureRate?: number };
  klaviyo: {
    apiKey: string;
    ratePerSecond?: number;
    failureRate?: number;
    /** The key's scopes; null/absent = full access. */
    scopes?: readonly string[] | null;
    /** Oldest revision accepted. */
    revisionMin?: string | undefined;
  };
  /** Default: the demo customers. */
  customers?: readonly DemoCustomer[];
  /** What Gladly's Events API holds at start. Default: a made-up last day of the demo customers. */
  history?: readonly HistoryEvent[];
  /** For the failure rates; tests pass a fixed sequence. */
  random?: () => number;
  logger?: Logger;
}

export interface SandboxEventView {
  metric: string;
  /** The Gladly event's timestamp, as sent. */
  time: string;
  uniqueId: string;
  backfill: boolean;
  properties: Record<string, unknown>;
  /** ISO time the sandbox recorded it. */
  receivedAt: string;
}

export interface SandboxProfileView {
  email: string;
  /** The seeded customer this address belongs to, when it is one of them. */
  customerId?: string;
  name?: string;
  properties: Record<string, unknown>;
  /** In the order Klaviyo received them; only the first of a repeated unique_id. */
  events: SandboxEventView[];
}

export interface SandboxCustomerView extends DemoCustomerView {
  lookups: number;
  /** The status of the last lookup answered for this id; 0 = dropped; null = never looked up. */
  lastLookupStatus: number | null;
}

export interface SandboxState {
  customers: SandboxCustomerView[];
  profiles: SandboxProfileView[];
  counts: {
    klaviyo: {
      posts: number;
      accepted: number;
      duplicates: number;
      throttled: number;
      events: number;
      /** Get Profiles requests (the worker asks only with KLAVIYO_CREATE_PROFILES=false). */
      profileLookups: number;
      /** Bulk Create Events requests received, answered 202, answered 429 (its events are in `events`). */
      bulkPosts: number;
      bulkAccepted: number;
      bulkThrottled: number;
    };
    gladly: { lookups: number; byStatus: Record<string, number>; events: number };
  };
  settings: {
    gladlyRatePerSecond: number;
    klaviyoRatePerSecond: number;
    gladlyFailureRate: number;
    klaviyoFailureRate: number;
  };
}

export interface Sandbox {
  /** http://HOST:PORT: both GLADLY_API_URL and KLAVIYO_API_URL for the worker, and the page. */
  url: string;
  port: number;
  gladly: GladlyStandIn;
  klaviyo: KlaviyoStandIn;
  injectFaults(target: FaultTarget, ...faults: InjectedFault[]): void;
  state(): SandboxState;
  /** Forgets recorded events and lookups; keeps customers, credentials and limits. */
  reset(): void;
  close(): Promise<void>;
}

const FaultRequest = z
  .object({
    target: z.enum(['gladly', 'klaviyo']),
    status: z.number().int().min(400).max(599).optional(),
    retryAfterSeconds: z.number().int().min(0).max(3_600).optional(),
    drop: z.boolean().optional(),
    delayMs: z.number().int().min(0).max(60_000).optional(),
    count: z.number().int().min(1).max(1_000).default(1),
  })
  .strict()
  .refine((f) => f.status !== undefined || f.drop === true || f.delayMs !== undefined, {
    message: 'give at least one of status, drop or delayMs',
  });

/** Events recorded through `/_sandbox/gladly-events`: Gladly's envelope, anything else kept as sent. */
const RecordedEvents = z
  .array(
    z
      .object({
        id: z.string().min(1).max(200),
        type: z.string().min(1).max(200),
        timestamp: z.iso.datetime({ offset: true }),
      })
      .loose(),
  )
  .max(1_000);

const CUSTOMER_CHANGE_PATH = '/_sandbox/customers/';
const gladlyId = z.string().trim().min(1).max(200);
const CustomerEmailsChange = z.object({ emails: z.array(z.string().max(254)).max(50) }).strict();
const MergeChange = z
  .object({
    sourceCustomerId: gladlyId,
    destinationCustomerId: gladlyId,
    sourceConversationId: gladlyId.optional(),
    destinationConversationId: gladlyId.optional(),
  })
  .strict();

const PAGE_FILE = new URL('../public/index.html', import.meta.url);
const PAGE_HEADERS = {
  'content-type': 'text/html; charset=utf-8',
  'cache-control': 'no-store',
  'content-security-policy':
    "default-src 'none'; script-src 'unsafe-inline'; style-src 'unsafe-inline'; connect-src 'self'; img-src data:",
  'x-content-type-options': 'nosniff',
  'referrer-policy': 'no-referrer',
};

/** How often an idle event stream gets a comment, so proxies and browsers keep it open. */
const STREAM_HEARTBEAT_MS = 15_000;
/** Changes within this window reach the page as one notification. */
const NOTIFY_COALESCE_MS = 50;

/**
 * One HTTP server standing in for Gladly's customer-profiles API and Klaviyo's Events API on
 * one port, with a live page at `/`. The stand-ins from @gk/stand-ins run on loopback ports
 * behind it; everything they answer is passed through unchanged.
 */
export async function createSandbox(options: SandboxOptions): Promise<Sandbox> {
  const page = readFileSync(PAGE_FILE, 'utf8');
  const customers = options.customers ?? DEMO_CUSTOMERS;
  const random = options.random ?? Math.random;
  const logger = options.logger;
  const settings = {
    gladlyRatePerSecond: options.gladly.ratePerSecond ?? 0,
    klaviyoRatePerSecond: options.klaviyo.ratePerSecond ?? 0,
    gladlyFailureRate: options.gladly.failureRate ?? 0,
    klaviyoFailureRate: options.klaviyo.failureRate ?? 0,
  };

  const gladly = await startGladlyStandIn({
    user: options.gladly.user,
    token: options.gladly.token,
    customers: Object.fromEntries(
      customers.filter((c) => c.kind !== 'unknown' && c.kind !== 'merged').map((c) => [c.id, c.emails]),
    ),
    merges: Object.fromEntries(
      customers.flatMap((c) => (c.kind === 'merged' && c.mergedInto ? [[c.id, c.mergedInto]] : [])),
    ),
    events: [...(options.history ?? demoHistory(customers, new Date()))],
  });
  // Klaviyo already has a profile for every demo address but those of customers new to it, so
  // KLAVIYO_CREATE_PROFILES=false can be tried (Get Profiles is answered by the stand-in).
  const klaviyo = await startKlaviyoStandIn({
    apiKey: options.klaviyo.apiKey,
    scopes: options.klaviyo.scopes ?? null,
    ...(options.klaviyo.revisionMin ? { revisionMin: options.klaviyo.revisionMin } : {}),
    profiles: describeDemoCustomers(customers).flatMap((c) => (c.newToKlaviyo ? [] : c.deliversTo)),
  });
  if (settings.gladlyRatePerSecond > 0) gladly.setRateLimit(settings.gladlyRatePerSecond);
  if (settings.klaviyoRatePerSecond > 0) klaviyo.setRateLimit(settings.klaviyoRatePerSecond);

  const proxy = createProxy();
  // The customers as Gladly holds them now: `/_sandbox/customers/{id}` and `/_sandbox/merges`
  // change them at run time.
  let current: DemoCustomer[] = [...customers];
  let views = describeDemoCustomers(current);
  const customerByEmail = new Map<string, DemoCustomer>();
  const seeded = new Map(customers.map((c) => [c.id, c.emails]));
  const describe = () => {
    // `seedEmails`: what the customer had at start (the demo gives it back after a change).
    views = describeDemoCustomers(current).map((v) => ({ ...v, seedEmails: seeded.get(v.id) ?? [] }));
    // Names stay on addresses a customer no longer has: their profiles are still that person's.
    for (const view of views) {
      if (view.kind === 'merged') continue;
      for (const email of view.deliversTo) customerByEmail.set(email.toLowerCase(), view);
    }
  };
  describe();
  let lookups: { customerId: string; status: number }[] = [];

  const streams = new Set<ServerResponse>();
  let notifyTimer: NodeJS.Timeout | undefined;
  const notify = () => {
    if (notifyTimer || streams.size === 0) return;
    notifyTimer = setTimeout(() => {
      notifyTimer = undefined;
      const counts = JSON.stringify(currentState().counts);
      for (const stream of streams) stream.write(`event: change\ndata: ${counts}\n\n`);
    }, NOTIFY_COALESCE_MS);
  };
  const heartbeat = setInterval(() => {
    for (const stream of streams) stream.write(': keep-alive\n\n');
  }, STREAM_HEARTBEAT_MS);
  heartbeat.unref();
  klaviyo.on('event', notify);

  const injectFaults = (target: FaultTarget, ...faults: InjectedFault[]) => {
    (target === 'gladly' ? gladly : klaviyo).injectFaults(...faults);
  };

  function currentState(): SandboxState {
    const perCustomer = new Map<string, { count: number; last: number }>();
    const byStatus: Record<string, number> = {};
    for (const lookup of lookups) {
      const entry = perCustomer.get(lookup.customerId) ?? { count: 0, last: 0 };
      entry.count += 1;
      entry.last = lookup.status;
      perCustomer.set(lookup.customerId, entry);
      byStatus[String(lookup.status)] = (byStatus[String(lookup.status)] ?? 0) + 1;
    }
    return {
      customers: views.map((view) => ({
        ...view,
        lookups: perCustomer.get(view.id)?.count ?? 0,
        lastLookupStatus: perCustomer.get(view.id)?.last ?? null,
      })),
      profiles: klaviyo.profiles().map((profile) => {
        const customer = customerByEmail.get(profile.email.toLowerCase());
        return {
          email: profile.email,
          ...(customer ? { customerId: customer.id, name: customer.name } : {}),
          properties: profile.properties,
          events: profile.events.map((e) => ({
            metric: e.metricName,
            time: e.time,
            uniqueId: e.uniqueId,
            backfill: e.backfill,
            properties: e.properties,
            receivedAt: new Date(e.receivedAt).toISOString(),
          })),
        };
      }),
      counts: {
        klaviyo: {
          posts: klaviyo.posts,
          accepted: klaviyo.accepted,
          duplicates: klaviyo.duplicates,
          throttled: klaviyo.throttled,
          events: klaviyo.events.length,
          profileLookups: klaviyo.profileLookups,
          bulkPosts: klaviyo.bulkPosts,
          bulkAccepted: klaviyo.bulkAccepted,
          bulkThrottled: klaviyo.bulkThrottled,
        },
        gladly: { lookups: lookups.length, byStatus, events: gladly.events.length },
      },
      settings,
    };
  }

  async function forwardToGladly(req: IncomingMessage, res: ServerResponse, path: string): Promise<void> {
    if (settings.gladlyFailureRate > 0 && random() < settings.gladlyFailureRate) {
      gladly.injectFaults({ status: 503 });
    }
    const status = await proxy.forward(req, res, gladly.url);
    let customerId = path.slice(GLADLY_PROFILE_PATH.length);
    try {
      customerId = decodeURIComponent(customerId);
    } catch {
      // Recorded as sent; the stand-in already answered 400.
    }
    lookups.push({ customerId, status });
    logger?.debug({ customerId, status }, 'gladly lookup');
    notify();
  }

  async function forwardToKlaviyo(req: IncomingMessage, res: ServerResponse, path: string): Promise<void> {
    // Bulk Create Events is a create too: the failure rate and the live view apply to it.
    const isBulk = path.replace(/\/+$/, '') === KLAVIYO_BULK_PATH && req.method === 'POST';
    const isCreate = isBulk || (path === KLAVIYO_EVENTS_PATH && req.method === 'POST');
    if (isCreate && settings.klaviyoFailureRate > 0 && random() < settings.klaviyoFailureRate) {
      klaviyo.injectFaults({ status: 503 });
    }
    const status = await proxy.forward(req, res, klaviyo.url);
    if (isCreate) {
      if (status !== 202) logger?.info({ status, bulk: isBulk }, 'klaviyo create event refused');
      notify();
    }
  }

  async function handleFaults(req: IncomingMessage, res: ServerResponse): Promise<void> {
    let body: unknown;
    try {
      body = JSON.parse(await readText(req));
    } catch {
      return sendJson(res, 400, {
        error: 'body must be JSON, e.g. {"target":"klaviyo","status":503,"count":3}',
      });
    }
    const parsed = FaultRequest.safeParse(body);
    if (!parsed.success) {
      return sendJson(res, 400, {
        error: 'invalid fault',
        issues: parsed.error.issues.map((i) => `${i.path.join('.') || '(body)'}: ${i.message}`),
      });
    }
    const { target, count, ...fault } = parsed.data;
    injectFaults(target, ...Array.from({ length: count }, () => ({ ...fault })));
    logger?.info({ target, count, fault }, 'faults injected');
    sendJson(res, 202, { injected: count, target, fault });
  }

  /**
   * Adds events to what Gladly's Events API answers, as Gladly would have recorded them: `npm run
   * demo` posts each webhook it sends here too, so a backfill afterwards finds them already present.
   * With `?deliver=true`, Gladly's sender also delivers them to every enabled webhook subscribed
   * to their type (registered with `npm run gladly -- webhook register`), retrying as Gladly does.
   */
  async function handleRecordEvents(req: IncomingMessage, res: ServerResponse): Promise<void> {
    let body: unknown;
    try {
      body = JSON.parse(await readText(req));
    } catch {
      return sendJson(res, 400, { error: 'body must be a JSON event or a JSON array of events' });
    }
    const parsed = RecordedEvents.safeParse(Array.isArray(body) ? body : [body]);
    if (!parsed.success) {
      return sendJson(res, 400, {
        error: 'invalid event',
        issues: parsed.error.issues.map((i) => `${i.path.join('.') || '(body)'}: ${i.message}`),
      });
    }
    const deliver = new URL(req.url ?? '/', 'http://sandbox.invalid').searchParams.get('deliver') === 'true';
    if (deliver) gladly.emitEvents(...parsed.data);
    else gladly.recordEvents(...parsed.data);
    sendJson(res, 202, { recorded: parsed.data.length, ...(deliver ? { delivering: true } : {}) });
  }

  async function readJsonBody<T>(req: IncomingMessage, res: ServerResponse, schema: z.ZodType<T>) {
    let body: unknown;
    try {
      body = JSON.parse(await readText(req));
    } catch {
      sendJson(res, 400, { error: 'body must be JSON' });
      return undefined;
    }
    const parsed = schema.safeParse(body);
    if (!parsed.success) {
      sendJson(res, 400, {
        error: 'invalid body',
        issues: parsed.error.issues.map((i) => `${i.path.join('.') || '(body)'}: ${i.message}`),
      });
      return undefined;
    }
    return parsed.data;
  }

  /**
   * `POST /_sandbox/customers/{id}` `{ emails }`: an agent edits the customer's addresses. Gladly
   * answers the new ones and emits CUSTOMER_PROFILE/UPDATED (Events API, registered webhooks);
   * the answer carries the event, for a caller that delivers it to the ingest itself.
   */
  async function handleCustomerChange(req: IncomingMessage, res: ServerResponse, path: string) {
    let id: string;
    try {
      id = decodeURIComponent(path.slice(CUSTOMER_CHANGE_PATH.length));
    } catch {
      return sendJson(res, 400, { error: 'bad customer id encoding' }, req);
    }
    if (id === '' || id.length > 200) return sendJson(res, 400, { error: 'a customer id is required' }, req);
    const body = await readJsonBody(req, res, CustomerEmailsChange);
    if (!body) return;
    const event = gladly.updateCustomer(id, body.emails);
    const known = current.find((c) => c.id === id);
    const changed: DemoCustomer = known
      ? { ...known, emails: body.emails, kind: known.kind === 'several-emails' ? known.kind : 'ordinary' }
      : { id, name: id, kind: 'ordinary', emails: body.emails, note: 'added at run time' };
    delete changed.mergedInto;
    // In place: the order is the seeded one (the demo picks customers by it).
    current = known ? current.map((c) => (c.id === id ? changed : c)) : [...current, changed];
    describe();
    notify();
    sendJson(res, 200, { event });
  }

  /**
   * `POST /_sandbox/merges` `{ sourceCustomerId, destinationCustomerId, sourceConversationId?,
   * destinationConversationId? }`: an agent merges two customers. The source answers 301 to the
   * destination (whose addresses stay as they were) and CUSTOMER/MERGED is emitted.
   */
  async function handleMerge(req: IncomingMessage, res: ServerResponse) {
    const body = await readJsonBody(req, res, MergeChange);
    if (!body) return;
    if (body.sourceCustomerId === body.destinationCustomerId) {
      return sendJson(res, 400, { error: 'a customer cannot be merged into itself' });
    }
    const event = gladly.mergeCustomers(body);
    current = current.map((c) =>
      c.id === body.sourceCustomerId
        ? { ...c, kind: 'merged' as const, mergedInto: body.destinationCustomerId }
        : c,
    );
    describe();
    notify();
    sendJson(res, 200, { event });
  }

  function openStream(req: IncomingMessage, res: ServerResponse): void {
    res.writeHead(200, {
      'content-type': 'text/event-stream',
      'cache-control': 'no-store',
      connection: 'keep-alive',
    });
    res.write('retry: 1000\n\n');
    streams.add(res);
    req.once('close', () => streams.delete(res));
  }

  async function handle(req: IncomingMessage, res: ServerResponse): Promise<void> {
    const path = (req.url ?? '/').split('?')[0] ?? '/';
    const method = req.method ?? 'GET';
    if (path.startsWith(GLADLY_PROFILE_PATH)) return forwardToGladly(req, res, path);
    // The Events API (npm run backfill): passed through, not counted as a customer lookup.
    // The webhooks API too (npm run gladly -- webhook …, the worker's watchdog).
    if (
      path === GLADLY_EVENTS_PATH ||
      path === GLADLY_WEBHOOKS_PATH ||
      path.startsWith(`${GLADLY_WEBHOOKS_PATH}/`)
    ) {
      await proxy.forward(req, res, gladly.url);
      return;
    }
    if (path.startsWith('/api/')) return forwardToKlaviyo(req, res, path);

    if (method === 'GET' && (path === '/' || path === '/index.html')) {
      req.resume();
      res.writeHead(200, PAGE_HEADERS);
      res.end(page);
      return;
    }
    if (method === 'GET' && path === '/healthz') return sendJson(res, 200, { status: 'ok' }, req);
    if (method === 'GET' && path === '/_sandbox/state') return sendJson(res, 200, currentState(), req);
    if (method === 'GET' && path === '/_sandbox/customers') return sendJson(res, 200, views, req);
    if (method === 'GET' && path === '/_sandbox/stream') return openStream(req, res);
    if (method === 'POST' && path === '/_sandbox/faults') return handleFaults(req, res);
    if (method === 'POST' && path === '/_sandbox/gladly-events') return handleRecordEvents(req, res);
    if (method === 'POST' && path.startsWith(CUSTOMER_CHANGE_PATH))
      return handleCustomerChange(req, res, path);
    if (method === 'POST' && path === '/_sandbox/merges') return handleMerge(req, res);
    if (method === 'POST' && path === '/_sandbox/reset') {
      reset();
      return sendJson(res, 200, { status: 'reset' }, req);
    }
    sendJson(res, 404, { error: `no such sandbox endpoint: ${method} ${path}` }, req);
  }

  function reset(): void {
    klaviyo.reset();
    lookups = [];
    notify();
  }

  const server = createServer((req, res) => {
    handle(req, res).catch((err: unknown) => {
      logger?.error({ err }, 'sandbox request failed');
      if (!res.headersSent) sendJson(res, 500, { error: 'sandbox failure' });
      else res.destroy();
    });
  });
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(options.port ?? 0, options.host ?? '127.0.0.1', () => {
      server.off('error', reject);
      resolve();
    });
  });
  const address = server.address() as AddressInfo;
  const host = address.family === 'IPv6' ? `[${address.address}]` : address.address;
  const shownHost = host === '0.0.0.0' || host === '[::]' ? '127.0.0.1' : host;

  return {
    url: `http://${shownHost}:${address.port}`,
    port: address.port,
    gladly,
    klaviyo,
    injectFaults,
    state: currentState,
    reset,
    async close() {
      clearInterval(heartbeat);
      clearTimeout(notifyTimer);
      klaviyo.off('event', notify);
      for (const stream of streams) stream.end();
      streams.clear();
      await new Promise<void>((resolve) => {
        server.close(() => resolve());
        server.closeAllConnections();
      });
      proxy.close();
      await Promise.all([gladly.close(), klaviyo.close()]);
    },
  };
}

function sendJson(res: ServerResponse, status: number, body: unknown, req?: IncomingMessage): void {
  req?.resume();
  const text = JSON.stringify(body);
  res.writeHead(status, {
    'content-type': 'application/json',
    'content-length': String(Buffer.byteLength(text)),
    'cache-control': 'no-store',
  });
  res.end(text);
}

function readText(req: IncomingMessage, limitBytes = 64 * 1024): Promise<string> {
  return new Promise((resolve, reject) => {
    let size = 0;
    const chunks: Buffer[] = [];
    req.on('data', (chunk: Buffer) => {
      size += chunk.length;
      if (size <= limitBytes) chunks.push(chunk);
    });
    req.once('end', () =>
      size > limitBytes
        ? reject(new Error('body too large'))
        : resolve(Buffer.concat(chunks).toString('utf8')),
    );
    req.once('error', reject);
  });
}
