import { GladlyError } from './errors.js';
import { classifyEventsFailure } from './events.js';

/** The Gladly webhook events the bridge reads (conversation transitions and customer changes). */
export const BRIDGE_WEBHOOK_EVENTS = [
  'CONVERSATION/CREATED',
  'CONVERSATION/CLOSED',
  'CONVERSATION/REOPENED',
  'CUSTOMER/MERGED',
  'CUSTOMER_PROFILE/UPDATED',
  'CUSTOMER_PROFILE/DELETED',
] as const;

/** A webhook as Gladly answers it; credentials and headers are write-only and never come back. */
export interface GladlyWebhook {
  id: string;
  name: string;
  url: string;
  events: string[];
  hasCredentials?: boolean;
  headerKeys?: string[];
  createdAt?: string;
  updatedAt?: string;
  enabled: boolean;
  /** RFC 3339: when Gladly deactivated it after its retries. */
  disabledAtDueToRetryLimit?: string;
}

export interface GladlyWebhookInput {
  name?: string;
  url?: string;
  events?: readonly string[];
  enabled?: boolean;
  credentials?: { username: string; password: string };
  headers?: Record<string, string>;
}

export interface GladlyWebhooksClient {
  list(): Promise<GladlyWebhook[]>;
  /** The webhook whose URL is `url` (Gladly keeps URLs unique), or undefined. */
  findByUrl(url: string): Promise<GladlyWebhook | undefined>;
  create(
    input: GladlyWebhookInput & { name: string; url: string; events: readonly string[] },
  ): Promise<GladlyWebhook>;
  patch(id: string, input: GladlyWebhookInput): Promise<GladlyWebhook>;
}

export interface GladlyWebhooksClientOptions {
  baseUrl: string;
  user: string;
  token: string;
  /** Per request. Default 30 s: enabling waits for Gladly's PING, which may take up to 15 s. */
  timeoutMs?: number;
}

/**
 * Gladly's webhooks API (`GET/POST /api/v1/webhooks`, `GET/PATCH /api/v1/webhooks/{id}`). Every
 * failure rejects with a {@link GladlyError}: a refused PING (enabling a webhook whose URL does
 * not answer 200) is a `protocol` error carrying Gladly's detail.
 */
export function createGladlyWebhooksClient(options: GladlyWebhooksClientOptions): GladlyWebhooksClient {
  const base = `${options.baseUrl.replace(/\/+$/, '')}/api/v1/webhooks`;
  const timeoutMs = options.timeoutMs ?? 30_000;
  const authorization = `Basic ${Buffer.from(`${options.user}:${options.token}`).toString('base64')}`;

  async function call(method: string, url: string, what: string, body?: unknown): Promise<unknown> {
    let response: Response;
    try {
      response = await fetch(url, {
        method,
        headers: {
          authorization,
          accept: 'application/json',
          ...(body === undefined ? {} : { 'content-type': 'application/json' }),
        },
        ...(body === undefined ? {} : { body: JSON.stringify(body) }),
        redirect: 'manual',
        signal: AbortSignal.timeout(timeoutMs),
      });
    } catch (err) {
      const name = err instanceof Error ? err.name : '';
      if (name === 'TimeoutError' || name === 'AbortError') {
        throw new GladlyError('timeout', `${what}: Gladly did not answer within ${timeoutMs} ms`, {
          cause: err,
        });
      }
      throw new GladlyError('network', `${what}: network error talking to Gladly`, { cause: err });
    }
    const text = await response.text().catch(() => '');
    const parsed = parseJson(text);
    if (response.status < 200 || response.status > 299) {
      const failure = classifyEventsFailure(response.status, response.headers, parsed);
      throw new GladlyError(failure.kind, `${what}: ${failure.reason}`, {
        status: response.status,
        ...(failure.retryAfterMs === undefined ? {} : { retryAfterMs: failure.retryAfterMs }),
      });
    }
    return parsed;
  }

  const asWebhook = (value: unknown, what: string): GladlyWebhook => {
    if (!isWebhook(value)) throw new GladlyError('protocol', `${what}: Gladly answered an unexpected body`);
    return value;
  };

  const client: GladlyWebhooksClient = {
    async list() {
      const body = await call('GET', base, 'list webhooks');
      if (!Array.isArray(body))
        throw new GladlyError('protocol', 'list webhooks: Gladly answered an unexpected body');
      return body.filter(isWebhook);
    },
    async findByUrl(url) {
      return (await client.list()).find((hook) => sameUrl(hook.url, url));
    },
    async create(input) {
      return asWebhook(await call('POST', base, 'create webhook', input), 'create webhook');
    },
    async patch(id, input) {
      return asWebhook(
        await call('PATCH', `${base}/${encodeURIComponent(id)}`, 'update webhook', input),
        'update webhook',
      );
    },
  };
  return client;
}

/** Events of `wanted` the webhook is not subscribed to. */
export function missingWebhookEvents(
  hook: Pick<GladlyWebhook, 'events'>,
  wanted: readonly string[],
): string[] {
  return wanted.filter((e) => !hook.events.includes(e));
}

function sameUrl(a: string, b: string): boolean {
  return a.replace(/\/+$/, '') === b.replace(/\/+$/, '');
}

function isWebhook(value: unknown): value is GladlyWebhook {
  if (typeof value !== 'object' || value === null) return false;
  const v = value as Record<string, unknown>;
  return (
    typeof v.id === 'string' &&
    typeof v.url === 'string' &&
    typeof v.enabled === 'boolean' &&
    Array.isArray(v.events)
  );
}

function parseJson(text: string): unknown {
  try {
    return text ? JSON.parse(text) : undefined;
  } catch {
    return undefined;
  }
}
