import { readFileSync } from 'node:fs';
import { createServer } from 'node:http';
import {
  type BridgeQueues,
  closeQueues,
  createProducerConnection,
  createQueues,
  type RedisConnection,
  type RedisTarget,
} from '@gk/queue';
import { closeServer, createLogger, listen, watchRedisConnection } from '@gk/runtime';
import { captureLogOutput, freePort, registerTestSecrets } from '@gk/testing';
import type { Registry } from 'prom-client';
import { createApp } from '../src/app.js';
import type { WebhookAuthConfig } from '../src/auth.js';
import type { AdminConfig, SpoolConfig } from '../src/config.js';
import { JobStore } from '../src/store/job-store.js';
import { Spool, type SpoolOptions } from '../src/store/spool.js';

/** Credentials used across the integration tests; none of them may ever show up in a log line. */
export const WEBHOOK_USER = 'gladly-hook';
export const WEBHOOK_PASSWORD = 'wh-pass-3f9a1c77';
export const WEBHOOK_PASSWORD_NEXT = 'wh-pass-next-82be40d1';
export const WEBHOOK_TOKEN = 'wh-token-5d0c9e21b7';
export const ADMIN = {
  username: 'ops-admin',
  password: 'dash-pass-a61f03',
  readOnly: false,
} satisfies AdminConfig;
export const SECRETS = [WEBHOOK_PASSWORD, WEBHOOK_PASSWORD_NEXT, WEBHOOK_TOKEN, ADMIN.password];

export const defaultWebhookAuth: WebhookAuthConfig = {
  disabled: false,
  basic: [
    { username: WEBHOOK_USER, password: WEBHOOK_PASSWORD },
    { username: WEBHOOK_USER, password: WEBHOOK_PASSWORD_NEXT },
  ],
  tokenHeader: 'X-Gladly-Token',
  tokens: [WEBHOOK_TOKEN],
};

export const basicAuth = (user: string, password: string) =>
  `Basic ${Buffer.from(`${user}:${password}`, 'utf8').toString('base64')}`;

export const webhookAuthHeader = basicAuth(WEBHOOK_USER, WEBHOOK_PASSWORD);
export const adminAuthHeader = basicAuth(ADMIN.username, ADMIN.password);
// The suite-wide log guard fails any test file whose log lines show one of these.
registerTestSecrets(
  ...SECRETS,
  webhookAuthHeader.slice('Basic '.length),
  adminAuthHeader.slice('Basic '.length),
);

export function fixture(name: string): Record<string, unknown> {
  return JSON.parse(readFileSync(new URL(`../../../fixtures/gladly/${name}`, import.meta.url), 'utf8'));
}

let counter = 0;
/** A fixture with a fresh event id, so tests in one file never collide on job ids. */
export function freshEvent(name = 'conversation-created.json'): Record<string, unknown> & { id: string } {
  counter += 1;
  return {
    ...fixture(name),
    id: `evt${Date.now().toString(36)}x${counter}x${Math.random().toString(36).slice(2, 8)}`,
  };
}

export interface RunningIngest {
  url: string;
  queues: BridgeQueues;
  connection: RedisConnection;
  registry: Registry;
  store: JobStore;
  /** Every log line the app wrote, as raw JSON text. */
  logs: string[];
  logEntries(): Record<string, unknown>[];
  close(): Promise<void>;
}

export interface StartIngestOptions {
  redis: RedisTarget;
  prefix: string;
  webhookAuth?: WebhookAuthConfig;
  admin?: AdminConfig | null;
  now?: () => Date;
  registry?: Registry;
  /** A local spool for webhooks Redis does not store; none (503 while Redis is down) when absent. */
  spool?: SpoolConfig;
  /** Relay waits between attempts while Redis does not answer (tests shorten them). */
  relayRetryMs?: { min: number; max: number };
  /** Spool options beyond the config's: fault seam, lock timings. */
  spoolOptions?: Partial<SpoolOptions>;
  /** Readiness: relay stall time. */
  stallSeconds?: number;
  poisonAttempts?: number;
}

/** Builds the app like main.ts does, with a logger writing into memory, on a free loopback port. */
export async function startIngest(options: StartIngestOptions): Promise<RunningIngest> {
  const logs: string[] = [];
  const webhookAuth = options.webhookAuth ?? defaultWebhookAuth;
  const logger = createLogger({
    name: 'ingest',
    level: 'debug',
    redactHeaders: [webhookAuth.tokenHeader],
    destination: {
      write: (line: string) => {
        captureLogOutput('ingest app', line);
        logs.push(line);
      },
    },
  });
  const connection = createProducerConnection(options.redis);
  watchRedisConnection(connection, logger);
  const queues = createQueues(connection, options.prefix);
  const spool = options.spool
    ? (await Spool.open({ ...options.spool, ...options.spoolOptions })).spool
    : null;
  const store = new JobStore({
    queues,
    spool,
    logger,
    ...(options.relayRetryMs ? { relayRetryMs: options.relayRetryMs } : {}),
    ...(options.stallSeconds !== undefined ? { stallSeconds: options.stallSeconds } : {}),
    ...(options.poisonAttempts !== undefined ? { poisonAttempts: options.poisonAttempts } : {}),
  });
  connection.on('ready', () => store.nudgeRelay());
  const { app, registry } = createApp({
    store,
    config: { webhookAuth, admin: options.admin === undefined ? ADMIN : options.admin },
    queues,
    connection,
    logger,
    ...(options.now ? { now: options.now } : {}),
    ...(options.registry ? { registry: options.registry } : {}),
  });
  const server = createServer(app);
  const port = await freePort();
  await listen(server, port, '127.0.0.1');
  store.startRelay();
  return {
    url: `http://127.0.0.1:${port}`,
    queues,
    connection,
    registry,
    store,
    logs,
    logEntries: () => logs.map((line) => JSON.parse(line) as Record<string, unknown>),
    close: async () => {
      server.closeAllConnections();
      await closeServer(server);
      await store.close();
      await closeQueues(queues);
      connection.disconnect();
    },
  };
}

export interface PostOptions {
  headers?: Record<string, string>;
  auth?: string | null;
  contentType?: string | null;
}

/** POSTs to the webhook with valid credentials and JSON content type unless told otherwise. */
export function postWebhook(base: string, body: unknown, options: PostOptions = {}): Promise<Response> {
  const headers: Record<string, string> = { ...options.headers };
  const auth = options.auth === undefined ? webhookAuthHeader : options.auth;
  if (auth !== null) headers.authorization = auth;
  const contentType = options.contentType === undefined ? 'application/json' : options.contentType;
  if (contentType !== null) headers['content-type'] = contentType;
  return fetch(`${base}/webhooks/gladly`, {
    method: 'POST',
    headers,
    // Bytes, not a string: fetch would add `text/plain` to a string body without a content type.
    body: Buffer.from(typeof body === 'string' ? body : JSON.stringify(body), 'utf8'),
  });
}

/** The value of one series in Prometheus text, or 0 when it is not there yet. */
export function metricValue(text: string, name: string, labels: Record<string, string>): number {
  for (const line of text.split('\n')) {
    if (!line.startsWith(`${name}{`)) continue;
    const matches = Object.entries(labels).every(([k, v]) => line.includes(`${k}="${v}"`));
    if (matches) return Number(line.slice(line.lastIndexOf(' ') + 1));
  }
  return 0;
}

export async function scrape(base: string): Promise<string> {
  const res = await fetch(`${base}/metrics`);
  return res.text();
}

/** The JSON body of an answer: a webhook answer or a problem. */
export interface AnswerBody {
  status: string | number;
  id?: string;
  jobId?: string;
  type?: string;
  detail?: string;
  errors?: { field: string; message: string }[];
}

export async function bodyOf(res: Response): Promise<AnswerBody> {
  return (await res.json()) as AnswerBody;
}
