import {
  BRIDGE_WEBHOOK_EVENTS,
  createGladlyWebhooksClient,
  GladlyError,
  type GladlyWebhook,
  type GladlyWebhookInput,
  type GladlyWebhooksClient,
  missingWebhookEvents,
} from '@gk/gladly';
import { loadConfig as loadIngestConfig } from '@gk/ingest/config';
import { ConfigError, envUrl, parseEnv } from '@gk/runtime';
import { z } from 'zod';

export const GLADLY_USAGE = `Usage: npm run gladly -- webhook <status|register|enable> [--json]   (bin: gk-gladly)

  webhook status     the Gladly webhook whose URL is GLADLY_WEBHOOK_URL: enabled, events, and
                     when and why Gladly disabled it
  webhook register   create it, or update it, with the events the bridge uses and the bridge's
                     own webhook credentials (the first pair of WEBHOOK_BASIC_AUTH, else the first
                     token of WEBHOOK_TOKENS in WEBHOOK_TOKEN_HEADER); safe to run again
  webhook enable     enable it again (Gladly sends a PING the ingest must answer 200)

  --json             print the result as JSON

Reads GLADLY_API_URL, GLADLY_API_USER, GLADLY_API_TOKEN and GLADLY_WEBHOOK_URL.
Exit status: 0 done (status: enabled with every event), 1 Gladly or configuration failed,
2 usage mistake, 3 (status) the webhook is missing, disabled or lacks events.`;

export const EXIT = { ok: 0, failed: 1, usage: 2, unhealthy: 3 } as const;
/** The name `register` gives a webhook it creates. */
export const WEBHOOK_NAME = 'Gladly → Klaviyo bridge';

export interface CliIo {
  stdout: (text: string) => void;
  stderr: (text: string) => void;
}

type Command = { kind: 'help' } | { kind: 'status' | 'register' | 'enable'; json: boolean };

class UsageError extends Error {}

export function parseGladlyArgs(argv: readonly string[]): Command {
  const json = argv.includes('--json');
  const rest = argv.filter((a) => a !== '--json');
  if (rest.length === 0 || rest.includes('--help') || rest.includes('-h') || rest[0] === 'help') {
    return { kind: 'help' };
  }
  const [topic, action, ...extra] = rest;
  if (topic !== 'webhook') throw new UsageError(`unknown command: ${topic}`);
  if (extra.length > 0) throw new UsageError(`unexpected argument: ${extra[0]}`);
  if (action !== 'status' && action !== 'register' && action !== 'enable') {
    throw new UsageError(
      action ? `unknown webhook command: ${action}` : 'webhook needs status, register or enable',
    );
  }
  return { kind: action, json };
}

const required = (what: string) =>
  z.preprocess(
    (v) => (typeof v === 'string' && v.trim() === '' ? undefined : v),
    z.string({ message: `is required (${what})` }).min(1),
  );

const GladlyCliEnv = z.object({
  GLADLY_API_URL: envUrl().pipe(
    z.string({ message: 'is required: an http(s) URL such as https://acme.gladly.com' }),
  ),
  GLADLY_API_USER: required("the Gladly API user's email"),
  GLADLY_API_TOKEN: required('a Gladly API token'),
  GLADLY_WEBHOOK_URL: envUrl().pipe(
    z.string({ message: 'is required: the public URL of POST /webhooks/gladly as Gladly calls it' }),
  ),
});
type GladlyCliEnv = z.infer<typeof GladlyCliEnv>;

/** The ingest's webhook credentials, as its own configuration reads them. */
export interface IngestWebhookAuth {
  basic: readonly { username: string; password: string }[];
  tokenHeader: string;
  tokens: readonly string[];
}

/**
 * What Gladly should send: the first Basic pair the ingest accepts, else its first token in its
 * token header. Credentials are write-only in Gladly, so register always sends them.
 */
export function webhookAuth(
  auth: IngestWebhookAuth,
): Pick<GladlyWebhookInput, 'credentials' | 'headers'> | undefined {
  const [pair] = auth.basic;
  if (pair) return { credentials: { username: pair.username, password: pair.password } };
  const [token] = auth.tokens;
  if (token) return { headers: { [auth.tokenHeader]: token } };
  return undefined;
}

export interface WebhookReport {
  url: string;
  registered: boolean;
  id?: string;
  enabled?: boolean;
  events?: string[];
  missingEvents?: string[];
  hasCredentials?: boolean;
  headerKeys?: string[];
  disabledAtDueToRetryLimit?: string;
  /** Why it is not receiving, in words (absent when it is enabled with every event). */
  problem?: string;
  /** What register/enable did. */
  action?: 'created' | 'updated' | 'enabled' | 'already enabled';
}

export function describeWebhook(url: string, hook: GladlyWebhook | undefined): WebhookReport {
  if (!hook) {
    return {
      url,
      registered: false,
      problem: 'no Gladly webhook has this URL: run npm run gladly -- webhook register',
    };
  }
  const missingEvents = missingWebhookEvents(hook, BRIDGE_WEBHOOK_EVENTS);
  const report: WebhookReport = {
    url,
    registered: true,
    id: hook.id,
    enabled: hook.enabled,
    events: hook.events,
    missingEvents,
    ...(hook.hasCredentials === undefined ? {} : { hasCredentials: hook.hasCredentials }),
    ...(hook.headerKeys === undefined ? {} : { headerKeys: hook.headerKeys }),
    ...(hook.disabledAtDueToRetryLimit ? { disabledAtDueToRetryLimit: hook.disabledAtDueToRetryLimit } : {}),
  };
  if (!hook.enabled) {
    report.problem = hook.disabledAtDueToRetryLimit
      ? `Gladly disabled it at ${hook.disabledAtDueToRetryLimit} after its retries failed (the ingest did not answer 2xx for about an hour); the worker's watchdog re-enables it once the ingest answers, or run npm run gladly -- webhook enable`
      : "disabled (by hand, not by Gladly's retry limit): run npm run gladly -- webhook enable";
  } else if (missingEvents.length > 0) {
    report.problem = `not subscribed to ${missingEvents.join(', ')}: run npm run gladly -- webhook register`;
  }
  return report;
}

export function formatWebhook(report: WebhookReport): string {
  const lines = [`Gladly webhook for ${report.url}`];
  if (report.action) lines.push(`  action:    ${report.action}`);
  if (!report.registered) {
    lines.push('  registered: no');
  } else {
    lines.push(`  id:        ${report.id}`);
    lines.push(`  enabled:   ${report.enabled ? 'yes' : 'no'}`);
    if (report.disabledAtDueToRetryLimit)
      lines.push(`  disabled:  ${report.disabledAtDueToRetryLimit} (Gladly's retry limit)`);
    lines.push(`  events:    ${(report.events ?? []).join(', ')}`);
    if (report.missingEvents && report.missingEvents.length > 0) {
      lines.push(`  missing:   ${report.missingEvents.join(', ')}`);
    }
    const auth = [
      report.hasCredentials ? 'HTTP Basic credentials' : null,
      report.headerKeys && report.headerKeys.length > 0 ? `headers ${report.headerKeys.join(', ')}` : null,
    ].filter(Boolean);
    lines.push(`  auth:      ${auth.length > 0 ? auth.join(' and ') : 'none'}`);
  }
  if (report.problem) lines.push(`  problem:   ${report.problem}`);
  return lines.join('\n');
}

async function register(
  client: GladlyWebhooksClient,
  url: string,
  auth: Pick<GladlyWebhookInput, 'credentials' | 'headers'>,
): Promise<WebhookReport> {
  const existing = await client.findByUrl(url);
  if (!existing) {
    const created = await client.create({
      name: WEBHOOK_NAME,
      url,
      events: BRIDGE_WEBHOOK_EVENTS,
      enabled: true,
      ...auth,
    });
    return { ...describeWebhook(url, created), action: 'created' };
  }
  // Keep any extra events someone subscribed (the ingest acknowledges every type).
  const events = [...new Set([...existing.events, ...BRIDGE_WEBHOOK_EVENTS])];
  const updated = await client.patch(existing.id, { events, enabled: true, ...auth });
  return { ...describeWebhook(url, updated), action: 'updated' };
}

/** The whole CLI: parses, reads the configuration, talks to Gladly, answers an exit status. */
export async function runGladlyCli(
  argv: readonly string[],
  env: NodeJS.ProcessEnv,
  io: CliIo,
): Promise<number> {
  let command: Command;
  try {
    command = parseGladlyArgs(argv);
  } catch (err) {
    if (!(err instanceof UsageError)) throw err;
    io.stderr(`gk-gladly: ${err.message}\n\n${GLADLY_USAGE}\n`);
    return EXIT.usage;
  }
  if (command.kind === 'help') {
    io.stdout(`${GLADLY_USAGE}\n`);
    return EXIT.ok;
  }
  let config: GladlyCliEnv;
  try {
    config = parseEnv(GladlyCliEnv, env);
  } catch (err) {
    if (!(err instanceof ConfigError)) throw err;
    io.stderr(`gk-gladly: ${err.message}\n`);
    return EXIT.failed;
  }
  const client = createGladlyWebhooksClient({
    baseUrl: config.GLADLY_API_URL,
    user: config.GLADLY_API_USER,
    token: config.GLADLY_API_TOKEN,
  });
  const url = config.GLADLY_WEBHOOK_URL;
  const print = (report: WebhookReport) =>
    io.stdout(`${command.json ? JSON.stringify(report, null, 2) : formatWebhook(report)}\n`);
  try {
    switch (command.kind) {
      case 'status': {
        const report = describeWebhook(url, await client.findByUrl(url));
        print(report);
        return report.problem ? EXIT.unhealthy : EXIT.ok;
      }
      case 'register': {
        // The same reading of WEBHOOK_BASIC_AUTH / WEBHOOK_TOKENS as the ingest's, so Gladly is
        // given a credential the ingest accepts.
        let ingestAuth: IngestWebhookAuth;
        try {
          ingestAuth = loadIngestConfig(env).webhookAuth;
        } catch (err) {
          if (!(err instanceof ConfigError)) throw err;
          io.stderr(`gk-gladly: register reads the webhook credentials as the ingest does: ${err.message}\n`);
          return EXIT.failed;
        }
        const auth = webhookAuth(ingestAuth);
        if (!auth) {
          io.stderr(
            'gk-gladly: register needs the credentials Gladly should send: set WEBHOOK_BASIC_AUTH (user:password) or WEBHOOK_TOKENS\n',
          );
          return EXIT.failed;
        }
        print(await register(client, url, auth));
        return EXIT.ok;
      }
      case 'enable': {
        const hook = await client.findByUrl(url);
        if (!hook) {
          print(describeWebhook(url, undefined));
          return EXIT.failed;
        }
        if (hook.enabled) {
          print({ ...describeWebhook(url, hook), action: 'already enabled' });
          return EXIT.ok;
        }
        print({ ...describeWebhook(url, await client.patch(hook.id, { enabled: true })), action: 'enabled' });
        return EXIT.ok;
      }
    }
  } catch (err) {
    const message = err instanceof GladlyError ? err.message : `unexpected error: ${(err as Error).message}`;
    io.stderr(`gk-gladly: ${message}\n`);
    if (err instanceof GladlyError && err.kind === 'protocol' && /PING/i.test(err.message)) {
      io.stderr(
        'gk-gladly: Gladly enables a webhook only when its PING gets a 200: is the ingest reachable at GLADLY_WEBHOOK_URL?\n',
      );
    }
    return EXIT.failed;
  }
}
