import { type ChildProcess, spawn } from 'node:child_process';
import { existsSync } from 'node:fs';
import { request } from 'node:http';
import { fileURLToPath } from 'node:url';
import { freePort, type TestRedis, trackChild, uniquePrefix, useTestRedis, waitFor } from '@gk/testing';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { bodyOf, freshEvent, postWebhook, WEBHOOK_TOKEN } from './helpers.js';

const MAIN = fileURLToPath(new URL('../dist/main.js', import.meta.url));

interface Run {
  child: ChildProcess;
  stdout: () => string;
  stderr: () => string;
  exited: Promise<{ code: number | null; signal: NodeJS.Signals | null }>;
}

/** Runs the built service with only the given variables (and PATH), as an operator would. */
function runMain(env: Record<string, string>): Run {
  const child = trackChild(
    spawn(process.execPath, [MAIN], {
      env: { PATH: process.env.PATH ?? '', ...env },
      stdio: ['ignore', 'pipe', 'pipe'],
    }),
  );
  let out = '';
  let err = '';
  child.stdout?.on('data', (chunk: Buffer) => {
    out += chunk.toString('utf8');
  });
  child.stderr?.on('data', (chunk: Buffer) => {
    err += chunk.toString('utf8');
  });
  const exited = new Promise<{ code: number | null; signal: NodeJS.Signals | null }>((resolve) =>
    child.once('exit', (code, signal) => resolve({ code, signal })),
  );
  return { child, stdout: () => out, stderr: () => err, exited };
}

const running: Run[] = [];
let redis: TestRedis;

beforeAll(async () => {
  if (!existsSync(MAIN)) {
    throw new Error(`${MAIN} is missing: build first (npx turbo run build --filter=@gk/ingest)`);
  }
  redis = await useTestRedis();
});

afterAll(async () => {
  for (const run of running) {
    if (run.child.exitCode === null && run.child.signalCode === null) {
      run.child.kill('SIGKILL');
      await run.exited;
    }
  }
  await redis?.stop();
});

describe('node apps/ingest/dist/main.js: configuration', () => {
  it('exits 1 naming WEBHOOK_BASIC_AUTH and WEBHOOK_TOKENS when no credentials are given', async () => {
    const run = runMain({});
    running.push(run);
    expect((await run.exited).code).toBe(1);
    expect(run.stderr()).toContain('WEBHOOK_BASIC_AUTH');
    expect(run.stderr()).toContain('WEBHOOK_TOKENS');
    expect(run.stderr()).not.toMatch(/\n\s+at /);
  });

  it('exits 1 on a malformed pair, naming the variable and not printing the value', async () => {
    const run = runMain({ WEBHOOK_BASIC_AUTH: 'gladly-no-colon-s3cr3t' });
    running.push(run);
    expect((await run.exited).code).toBe(1);
    expect(run.stderr()).toContain('WEBHOOK_BASIC_AUTH');
    expect(run.stderr() + run.stdout()).not.toContain('s3cr3t');
  });

  it('exits 1 when auth is disabled in production', async () => {
    const run = runMain({ WEBHOOK_AUTH_DISABLED: 'true', NODE_ENV: 'production' });
    running.push(run);
    expect((await run.exited).code).toBe(1);
    expect(run.stderr()).toContain('WEBHOOK_AUTH_DISABLED');
  });
});

describe('node apps/ingest/dist/main.js: serving and shutdown', () => {
  let run: Run;
  let base: string;
  let port: number;

  beforeAll(async () => {
    port = await freePort();
    base = `http://127.0.0.1:${port}`;
    run = runMain({
      ...redis.env,
      QUEUE_PREFIX: uniquePrefix('main').slice(0, 32),
      HOST: '127.0.0.1',
      PORT: String(port),
      WEBHOOK_TOKENS: WEBHOOK_TOKEN,
    });
    running.push(run);
    await waitFor(async () => (await fetch(`${base}/readyz`)).status === 200, { what: 'ingest ready' });
  });

  it('accepts a webhook', async () => {
    const res = await postWebhook(base, freshEvent(), {
      auth: null,
      headers: { 'X-Gladly-Token': WEBHOOK_TOKEN },
    });
    expect(res.status).toBe(200);
    expect((await bodyOf(res)).status).toBe('accepted');
  });

  it('on SIGTERM finishes the request in flight, stops accepting, and exits 0', async () => {
    const event = JSON.stringify(freshEvent());
    // A request whose body is still arriving when the signal comes.
    const answer = new Promise<{ status: number; body: string }>((resolve, reject) => {
      const req = request(
        {
          host: '127.0.0.1',
          port,
          method: 'POST',
          path: '/webhooks/gladly',
          headers: { 'content-type': 'application/json', 'x-gladly-token': WEBHOOK_TOKEN },
        },
        (res) => {
          let body = '';
          res.on('data', (chunk: Buffer) => {
            body += chunk.toString('utf8');
          });
          res.on('end', () => resolve({ status: res.statusCode ?? 0, body }));
        },
      );
      req.on('error', reject);
      req.write(event.slice(0, 20));
      setTimeout(() => {
        run.child.kill('SIGTERM');
        setTimeout(() => req.end(event.slice(20)), 500);
      }, 200);
    });
    const started = Date.now();
    const { status, body } = await answer;
    expect(status).toBe(200);
    expect(JSON.parse(body).status).toBe('accepted');
    // No new connections once shutting down.
    await expect(fetch(`${base}/healthz`)).rejects.toThrow();
    const exit = await run.exited;
    expect(exit.code).toBe(0);
    // Well before the 10 s deadline: an idle keep-alive socket must not hold the shutdown.
    expect(Date.now() - started).toBeLessThan(4_000);
    expect(run.stdout()).toContain('shutdown complete');
    expect(run.stdout() + run.stderr()).not.toContain(WEBHOOK_TOKEN);
  });
});

describe('node apps/ingest/dist/main.js with OPS_PORT: probes and metrics on an internal port', () => {
  let run: Run;
  let base: string;
  let ops: string;

  beforeAll(async () => {
    const [port, opsPort] = [await freePort(), await freePort()];
    base = `http://127.0.0.1:${port}`;
    ops = `http://127.0.0.1:${opsPort}`;
    run = runMain({
      ...redis.env,
      QUEUE_PREFIX: uniquePrefix('main-ops').slice(0, 32),
      HOST: '127.0.0.1',
      PORT: String(port),
      OPS_PORT: String(opsPort),
      WEBHOOK_TOKENS: WEBHOOK_TOKEN,
    });
    running.push(run);
    await waitFor(async () => (await fetch(`${ops}/readyz`).catch(() => null))?.status === 200, {
      what: 'ingest ready on OPS_PORT',
    });
  });

  it('serves /healthz, /readyz and /metrics on OPS_PORT only', async () => {
    expect((await fetch(`${ops}/healthz`)).status).toBe(200);
    const metrics = await fetch(`${ops}/metrics`);
    expect(metrics.status).toBe(200);
    expect(await metrics.text()).toContain('gk_webhooks_received_total');
    for (const path of ['/healthz', '/readyz', '/metrics']) {
      expect((await fetch(`${base}${path}`)).status).toBe(404);
    }
  });

  it('takes webhooks on PORT, not on OPS_PORT, and counts them on the metrics there', async () => {
    const headers = { 'X-Gladly-Token': WEBHOOK_TOKEN };
    expect((await postWebhook(base, freshEvent(), { auth: null, headers })).status).toBe(200);
    expect((await postWebhook(ops, freshEvent(), { auth: null, headers })).status).toBe(404);
    expect(await (await fetch(`${ops}/metrics`)).text()).toMatch(
      /gk_webhooks_received_total\{[^}]*outcome="accepted"[^}]*\} 1/,
    );
  });

  it('closes both listeners on SIGTERM and exits 0', async () => {
    run.child.kill('SIGTERM');
    expect((await run.exited).code).toBe(0);
    await expect(fetch(`${ops}/healthz`)).rejects.toThrow();
  });
});
