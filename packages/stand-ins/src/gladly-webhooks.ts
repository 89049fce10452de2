import { randomUUID } from 'node:crypto';

/**
 * Gladly's webhooks as its REST API shows them (`GET /api/v1/webhooks/{id}`): credentials and
 * headers are write-only, so only `hasCredentials` and `headerKeys` come back.
 */
export interface GladlyWebhookView {
  id: string;
  name: string;
  url: string;
  events: string[];
  hasCredentials: boolean;
  headerKeys: string[];
  createdAt: string;
  updatedAt: string;
  enabled: boolean;
  /** RFC 3339; set when Gladly deactivated the webhook after its retries, cleared on enable. */
  disabledAtDueToRetryLimit?: string;
}

/** One POST Gladly's sender made (PINGs included). */
export interface GladlyDeliveryRecord {
  webhookId: string;
  eventId: string;
  type: string;
  /** 0 = the first delivery, 1…4 = Gladly's retries. */
  attempt: number;
  at: number;
  /** 0 when there was no answer (refused, reset, timeout); -1 when the sender dropped it unsent. */
  status: number;
}

export interface GladlySenderOptions {
  /**
   * Gladly's retry delays (30 s, 5 min, 30 min, 1 h after the first attempt) are multiplied by
   * this; tests scale the hour down (0.001 → 3.6 s). Default 1.
   */
  timeFactor?: number;
  /** Chance that a delivery is lost without any attempt or retry (a webhook Gladly never sends). */
  dropRate?: number;
  /** No answer within this long is a failure. Gladly: 15 s. */
  timeoutMs?: number;
  /** Each first delivery leaves after a random 0…this many ms (Gladly's own queueing). Default 0. */
  maxSendDelayMs?: number;
  random?: () => number;
}

/** Gladly retries a failed delivery 4 times within an hour, then deactivates the webhook. */
export const GLADLY_RETRY_OFFSETS_MS = [30_000, 300_000, 1_800_000, 3_600_000] as const;
/** Gladly allows at most 20 webhooks per organisation. */
const MAX_WEBHOOKS = 20;

interface StoredWebhook {
  id: string;
  name: string;
  url: string;
  events: string[];
  credentials?: { username: string; password: string; realm?: string };
  headers: Record<string, string>;
  createdAt: string;
  updatedAt: string;
  enabled: boolean;
  disabledAtDueToRetryLimit?: string;
  /** Bumped on every disable, so retries scheduled before it are cancelled. */
  generation: number;
}

export class WebhookInputError extends Error {
  constructor(
    readonly status: number,
    readonly attr: string,
    readonly code: string,
    detail: string,
  ) {
    super(detail);
  }
}

/** What an API request may set (POST: all required but headers/credentials; PATCH: any). */
export interface WebhookInput {
  name?: unknown;
  url?: unknown;
  events?: unknown;
  enabled?: unknown;
  credentials?: unknown;
  headers?: unknown;
}

/**
 * Gladly's webhooks and its sender: deliveries to every enabled webhook subscribed to an event's
 * type, retried at Gladly's offsets, then deactivation (`enabled: false`,
 * `disabledAtDueToRetryLimit`). Enabling a webhook or changing its URL sends a PING first, and
 * the change is refused unless it gets a 2xx.
 */
export class GladlyWebhooks {
  private readonly hooks = new Map<string, StoredWebhook>();
  private readonly timers = new Set<NodeJS.Timeout>();
  private readonly inFlight = new Set<AbortController>();
  readonly deliveries: GladlyDeliveryRecord[] = [];
  private options: Required<Omit<GladlySenderOptions, 'random'>> & { random: () => number };
  private closed = false;

  constructor(options: GladlySenderOptions = {}) {
    this.options = { timeFactor: 1, dropRate: 0, timeoutMs: 15_000, maxSendDelayMs: 0, random: Math.random };
    this.configure(options);
  }

  configure(options: GladlySenderOptions): void {
    this.options = { ...this.options, ...options };
  }

  list(): GladlyWebhookView[] {
    return [...this.hooks.values()].map(view);
  }

  get(id: string): GladlyWebhookView | undefined {
    const hook = this.hooks.get(id);
    return hook ? view(hook) : undefined;
  }

  async create(input: WebhookInput): Promise<GladlyWebhookView> {
    if (this.hooks.size >= MAX_WEBHOOKS) {
      throw new WebhookInputError(400, 'webhooks', 'limit', `at most ${MAX_WEBHOOKS} webhooks`);
    }
    const now = new Date().toISOString();
    const hook: StoredWebhook = {
      id: randomUUID().replaceAll('-', '').slice(0, 22),
      name: requireString(input.name, 'name'),
      url: this.requireUniqueUrl(input.url, undefined),
      events: requireEvents(input.events),
      headers: input.headers === undefined ? {} : readHeaders(input.headers),
      createdAt: now,
      updatedAt: now,
      enabled: input.enabled === undefined ? true : requireBoolean(input.enabled, 'enabled'),
      generation: 0,
    };
    if (input.credentials !== undefined) hook.credentials = readCredentials(input.credentials);
    if (hook.enabled) await this.ping(hook, hook);
    this.hooks.set(hook.id, hook);
    return view(hook);
  }

  async update(id: string, input: WebhookInput): Promise<GladlyWebhookView | undefined> {
    const current = this.hooks.get(id);
    if (!current) return undefined;
    const next: StoredWebhook = { ...current, headers: { ...current.headers } };
    if (input.name !== undefined) next.name = requireString(input.name, 'name');
    if (input.url !== undefined) next.url = this.requireUniqueUrl(input.url, id);
    if (input.events !== undefined) next.events = requireEvents(input.events);
    if (input.headers !== undefined) next.headers = readHeaders(input.headers);
    if (input.credentials !== undefined) next.credentials = readCredentials(input.credentials);
    if (input.enabled !== undefined) next.enabled = requireBoolean(input.enabled, 'enabled');
    const enabling = next.enabled && !current.enabled;
    if (next.enabled && (enabling || next.url !== current.url)) await this.ping(next, current);
    if (enabling) delete next.disabledAtDueToRetryLimit;
    if (!next.enabled && current.enabled) next.generation += 1;
    next.updatedAt = new Date().toISOString();
    this.hooks.set(id, next);
    return view(next);
  }

  remove(id: string): boolean {
    const hook = this.hooks.get(id);
    if (hook) hook.generation += 1;
    return this.hooks.delete(id);
  }

  /** Delivers `event` to every enabled webhook subscribed to its type. */
  send(event: { id: string; type: string }): void {
    for (const hook of this.hooks.values()) {
      if (!hook.enabled || !hook.events.includes(event.type)) continue;
      if (this.options.random() < this.options.dropRate) {
        this.deliveries.push({
          webhookId: hook.id,
          eventId: event.id,
          type: event.type,
          attempt: 0,
          at: Date.now(),
          status: -1,
        });
        continue;
      }
      const delayMs =
        this.options.maxSendDelayMs > 0 ? this.options.random() * this.options.maxSendDelayMs : 0;
      if (delayMs === 0) {
        void this.attempt(hook.id, hook.generation, event, 0, Date.now());
        continue;
      }
      const { id, generation } = hook;
      const timer = setTimeout(() => {
        this.timers.delete(timer);
        void this.attempt(id, generation, event, 0, Date.now());
      }, delayMs);
      this.timers.add(timer);
    }
  }

  close(): void {
    this.closed = true;
    for (const t of this.timers) clearTimeout(t);
    this.timers.clear();
    for (const c of this.inFlight) c.abort();
  }

  private async attempt(
    hookId: string,
    generation: number,
    event: { id: string; type: string },
    attempt: number,
    firstAt: number,
  ): Promise<void> {
    const hook = this.hooks.get(hookId);
    if (this.closed || !hook || hook.generation !== generation || !hook.enabled) return;
    const status = await this.post(hook, event);
    this.deliveries.push({
      webhookId: hookId,
      eventId: event.id,
      type: event.type,
      attempt,
      at: Date.now(),
      status,
    });
    if (status >= 200 && status < 300) return;
    const offset = GLADLY_RETRY_OFFSETS_MS[attempt];
    if (offset === undefined) {
      // The fourth retry failed: Gladly deactivates the webhook (and emails its API users).
      const latest = this.hooks.get(hookId);
      if (latest && latest.generation === generation && latest.enabled) {
        const now = new Date().toISOString();
        this.hooks.set(hookId, {
          ...latest,
          enabled: false,
          disabledAtDueToRetryLimit: now,
          updatedAt: now,
          generation: latest.generation + 1,
        });
      }
      return;
    }
    const due = firstAt + offset * this.options.timeFactor;
    const timer = setTimeout(
      () => {
        this.timers.delete(timer);
        void this.attempt(hookId, generation, event, attempt + 1, firstAt);
      },
      Math.max(0, due - Date.now()),
    );
    this.timers.add(timer);
  }

  /** The answer's status, or 0 for no answer within the timeout. */
  private async post(hook: StoredWebhook, event: { id: string; type: string }): Promise<number> {
    const controller = new AbortController();
    this.inFlight.add(controller);
    const timer = setTimeout(() => controller.abort(), this.options.timeoutMs);
    try {
      const headers: Record<string, string> = { 'content-type': 'application/json', ...hook.headers };
      if (hook.credentials) {
        const { username, password } = hook.credentials;
        headers.authorization = `Basic ${Buffer.from(`${username}:${password}`).toString('base64')}`;
      }
      const res = await fetch(hook.url, {
        method: 'POST',
        headers,
        body: JSON.stringify(event),
        signal: controller.signal,
        redirect: 'manual',
      });
      await res.arrayBuffer().catch(() => undefined);
      return res.status;
    } catch {
      return 0;
    } finally {
      clearTimeout(timer);
      this.inFlight.delete(controller);
    }
  }

  /** Gladly refuses to enable a webhook (or move its URL) whose PING does not get a 2xx. */
  private async ping(next: StoredWebhook, current: StoredWebhook): Promise<void> {
    const event = { id: `ping-${randomUUID()}`, type: 'PING', timestamp: new Date().toISOString() };
    const status = await this.post(next, event);
    this.deliveries.push({
      webhookId: current.id,
      eventId: event.id,
      type: 'PING',
      attempt: 0,
      at: Date.now(),
      status,
    });
    if (status < 200 || status >= 300) {
      throw new WebhookInputError(
        400,
        'url',
        'ping_failed',
        status === 0 ? 'PING to the webhook URL got no answer' : `PING to the webhook URL answered ${status}`,
      );
    }
  }

  private requireUniqueUrl(value: unknown, selfId: string | undefined): string {
    const url = requireString(value, 'url');
    let parsed: URL;
    try {
      parsed = new URL(url);
    } catch {
      throw new WebhookInputError(400, 'url', 'invalid', 'url must be an absolute URL');
    }
    // Gladly requires HTTPS; the stand-in also takes http on loopback, where the tests' ingest listens.
    const loopback = ['127.0.0.1', 'localhost', '[::1]'].includes(parsed.hostname);
    if (parsed.protocol !== 'https:' && !(parsed.protocol === 'http:' && loopback)) {
      throw new WebhookInputError(400, 'url', 'invalid', 'url must use https');
    }
    for (const hook of this.hooks.values()) {
      if (hook.url === url && hook.id !== selfId) {
        throw new WebhookInputError(409, 'url', 'taken', 'a webhook with this url exists');
      }
    }
    return url;
  }
}

function view(hook: StoredWebhook): GladlyWebhookView {
  return {
    id: hook.id,
    name: hook.name,
    url: hook.url,
    events: [...hook.events],
    hasCredentials: hook.credentials !== undefined,
    headerKeys: Object.keys(hook.headers),
    createdAt: hook.createdAt,
    updatedAt: hook.updatedAt,
    enabled: hook.enabled,
    ...(hook.disabledAtDueToRetryLimit ? { disabledAtDueToRetryLimit: hook.disabledAtDueToRetryLimit } : {}),
  };
}

function requireString(value: unknown, attr: string): string {
  if (typeof value !== 'string' || value.trim() === '') {
    throw new WebhookInputError(400, attr, 'blank', `${attr} cannot be blank`);
  }
  return value;
}

function requireBoolean(value: unknown, attr: string): boolean {
  if (typeof value !== 'boolean')
    throw new WebhookInputError(400, attr, 'invalid', `${attr} must be a boolean`);
  return value;
}

function requireEvents(value: unknown): string[] {
  if (!Array.isArray(value) || value.length === 0 || !value.every((v) => typeof v === 'string' && v !== '')) {
    throw new WebhookInputError(400, 'events', 'invalid', 'events must be a non-empty list of event types');
  }
  return [...new Set(value as string[])];
}

function readHeaders(value: unknown): Record<string, string> {
  if (typeof value !== 'object' || value === null || Array.isArray(value)) {
    throw new WebhookInputError(400, 'headers', 'invalid', 'headers must be an object of strings');
  }
  const out: Record<string, string> = {};
  for (const [k, v] of Object.entries(value)) {
    if (typeof v !== 'string')
      throw new WebhookInputError(400, 'headers', 'invalid', 'header values must be strings');
    out[k] = v;
  }
  return out;
}

function readCredentials(value: unknown): { username: string; password: string; realm?: string } {
  if (typeof value !== 'object' || value === null) {
    throw new WebhookInputError(400, 'credentials', 'invalid', 'credentials must be an object');
  }
  const { username, password, realm } = value as Record<string, unknown>;
  return {
    username: requireString(username, 'credentials.username'),
    password: requireString(password, 'credentials.password'),
    ...(typeof realm === 'string' ? { realm } : {}),
  };
}
