/**
 * `npm run gladly -- webhook status|register|enable` as an operator runs it: `node
 * scripts/gladly.mjs` (the built gk-gladly) as a subprocess against the sandbox's Gladly (sandbox
 * mode: nothing configured) and against a Gladly stand-in with real-style configuration.
 */
import { execFile } from 'node:child_process';
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { type GladlyStandIn, startGladlyStandIn } from '@gk/stand-ins';
import {
  captureLogOutput,
  freePort,
  registerTestSecrets,
  type ServiceProcess,
  startServiceProcess,
} from '@gk/testing';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { WebhookReport } from '../src/cli/gladly-run.js';

const SCRIPT = fileURLToPath(new URL('../../../scripts/gladly.mjs', import.meta.url));
const SANDBOX_MAIN = fileURLToPath(new URL('../../sandbox/dist/main.js', import.meta.url));
const API = { user: 'api@acme.test', token: 'gladly-cli-token-8e1f' };
const HOOK_PASSWORD = 'cli-hook-pw-40d9';
registerTestSecrets(API.token, HOOK_PASSWORD);

interface Run {
  code: number;
  stdout: string;
  stderr: string;
}

function runCli(args: string[], env: Record<string, string>): Promise<Run> {
  return new Promise((resolve) => {
    execFile(
      process.execPath,
      [SCRIPT, ...args],
      { env: { PATH: process.env.PATH ?? '', START_ENV_FILE: join(tmpdir(), 'gk-no-such.env'), ...env } },
      (err, stdout, stderr) => {
        captureLogOutput(`gladly.mjs ${args.join(' ')}`, `${stdout}${stderr}`);
        resolve({ code: err ? (typeof err.code === 'number' ? err.code : 1) : 0, stdout, stderr });
      },
    );
  });
}

/** Stands in for the ingest: answers Gladly's PING with `status`. */
let ingest: Server;
let ingestStatus = 200;
let ingestPort = 0;

beforeAll(async () => {
  ingest = createServer((req, res) => {
    req.resume();
    req.on('end', () => res.writeHead(ingestStatus).end());
  });
  await new Promise<void>((resolve) => ingest.listen(0, '127.0.0.1', resolve));
  ingestPort = (ingest.address() as AddressInfo).port;
});

afterAll(async () => {
  ingest.closeAllConnections();
  await new Promise((resolve) => ingest.close(resolve));
});

describe('npm run gladly -- webhook … against the sandbox', () => {
  let sandbox: ServiceProcess;
  let sandboxPort = 0;
  beforeAll(async () => {
    // The built sandbox as npm start runs it, with its default (dev) credentials.
    sandboxPort = await freePort();
    sandbox = await startServiceProcess({
      script: SANDBOX_MAIN,
      env: { SANDBOX_PORT: String(sandboxPort) },
      readyUrl: `http://127.0.0.1:${sandboxPort}/healthz`,
    });
  });
  afterAll(async () => {
    await sandbox.stop();
  });

  it('status says not registered (exit 3), register creates it, status then shows it enabled (exit 0)', async () => {
    const env = { SANDBOX_PORT: String(sandboxPort), PORT: String(ingestPort) };
    const before = await runCli(['webhook', 'status'], env);
    expect(before.code).toBe(3);
    expect(before.stdout).toContain('registered: no');
    expect(before.stderr).toContain('sandbox mode');

    const registered = await runCli(['webhook', 'register', '--json'], env);
    expect(registered.code, registered.stderr).toBe(0);
    const report = JSON.parse(registered.stdout) as WebhookReport;
    expect(report).toMatchObject({
      action: 'created',
      enabled: true,
      hasCredentials: true,
      missingEvents: [],
    });
    expect(report.url).toBe(`http://127.0.0.1:${ingestPort}/webhooks/gladly`);

    const after = await runCli(['webhook', 'status'], env);
    expect(after.code).toBe(0);
    expect(after.stdout).toMatch(/enabled: +yes/);
    expect(after.stdout).toContain('CUSTOMER_PROFILE/DELETED');
  });
});

describe('npm run gladly -- webhook … with a configured Gladly', () => {
  let gladly: GladlyStandIn;
  let env: Record<string, string>;
  beforeAll(async () => {
    gladly = await startGladlyStandIn({ ...API, sender: { timeFactor: 0.00001 } });
    env = {
      GLADLY_API_URL: gladly.url,
      GLADLY_API_USER: API.user,
      GLADLY_API_TOKEN: API.token,
      GLADLY_WEBHOOK_URL: `http://127.0.0.1:${ingestPort}/webhooks/gladly`,
      WEBHOOK_BASIC_AUTH: `gladly:${HOOK_PASSWORD}`,
    };
  });
  afterAll(async () => {
    await gladly.close();
  });

  it('register is idempotent, keeps extra events, never prints the credentials', async () => {
    ingestStatus = 200;
    const first = await runCli(['webhook', 'register', '--json'], env);
    expect(first.code, first.stderr).toBe(0);
    const id = (JSON.parse(first.stdout) as WebhookReport).id as string;
    await gladly.webhooks.update(id, { events: ['CONVERSATION/CREATED', 'TASK/CREATED'] });
    const second = await runCli(['webhook', 'register', '--json'], env);
    const report = JSON.parse(second.stdout) as WebhookReport;
    expect(report).toMatchObject({ action: 'updated', id, missingEvents: [] });
    expect(report.events).toContain('TASK/CREATED');
    expect(gladly.webhooks.list()).toHaveLength(1);
    expect(`${first.stdout}${second.stdout}`).not.toContain(HOOK_PASSWORD);
    const pings = gladly.webhooks.deliveries.filter((d) => d.type === 'PING');
    expect(pings.every((d) => d.status === 200)).toBe(true);
  });

  it('status explains a deactivation; enable fails while the PING fails, then succeeds', async () => {
    const hook = gladly.webhooks.list()[0];
    ingestStatus = 503;
    gladly.emitEvents({ id: 'cli-ev-1', type: 'CONVERSATION/CREATED', timestamp: new Date().toISOString() });
    const deadline = Date.now() + 5_000;
    while (gladly.webhooks.get(hook?.id ?? '')?.enabled !== false && Date.now() < deadline) {
      await new Promise((r) => setTimeout(r, 20));
    }
    const status = await runCli(['webhook', 'status'], env);
    expect(status.code).toBe(3);
    expect(status.stdout).toMatch(/enabled: +no/);
    expect(status.stdout).toContain("Gladly's retry limit");

    const refused = await runCli(['webhook', 'enable'], env);
    expect(refused.code).toBe(1);
    expect(refused.stderr).toMatch(/PING .*503/);
    ingestStatus = 200;
    const enabled = await runCli(['webhook', 'enable', '--json'], env);
    expect(enabled.code, enabled.stderr).toBe(0);
    expect(JSON.parse(enabled.stdout)).toMatchObject({ action: 'enabled', enabled: true });
  });

  it('refuses a missing configuration, bad API credentials and bad usage with their exit codes', async () => {
    const noUrl = await runCli(['webhook', 'status'], { ...env, GLADLY_WEBHOOK_URL: '' });
    expect(noUrl.code).toBe(1);
    expect(noUrl.stderr).toContain('GLADLY_WEBHOOK_URL');
    const noAuth = await runCli(['webhook', 'register'], { ...env, WEBHOOK_BASIC_AUTH: '' });
    expect(noAuth.code).toBe(1);
    expect(noAuth.stderr).toContain('WEBHOOK_BASIC_AUTH');
    const badToken = await runCli(['webhook', 'status'], { ...env, GLADLY_API_TOKEN: 'wrong' });
    expect(badToken.code).toBe(1);
    expect(badToken.stderr).toContain('rejected the API credentials');
    expect((await runCli(['webhook', 'delete'], env)).code).toBe(2);
    expect((await runCli(['--help'], env)).code).toBe(0);
  });
});
