#!/usr/bin/env node
// The second stream of scripts/compose-e2e.sh, against the compose stack's sandbox profile:
// sends conversation webhooks at a steady rate and, in the middle of it, kills the Redis
// container with SIGKILL (down for a few seconds) and then restarts the worker container. A
// webhook not answered 200 is sent again, as Gladly retries. Then it waits until the sandbox's
// Klaviyo has recorded every event of every webhook answered 200, for every address of its
// customer, and prints what it found: missing (must be 0), the sandbox's count of deduplicated
// repeats (a unique_id Klaviyo had already recorded), and the times. Exit 1 when any is missing.
//
// Env: REDIS_CONTAINER and WORKER_CONTAINER (ids or names), PORT and SANDBOX_PORT (published
// ports), E2E_EVENTS (default 240), E2E_RATE_PER_SECOND (default 8), E2E_REDIS_DOWN_SECONDS
// (default 5), E2E_WAIT_SECONDS (default 180).
import { execFile } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { promisify } from 'node:util';
import { stackUrls, value, webhookCredential } from './dev-stack.mjs';

const run = promisify(execFile);
const env = process.env;
const urls = stackUrls(env);
const credential = webhookCredential(env);
const EVENTS = Number(value(env, 'E2E_EVENTS', '240'));
const RATE = Number(value(env, 'E2E_RATE_PER_SECOND', '8'));
const REDIS_DOWN_MS = Number(value(env, 'E2E_REDIS_DOWN_SECONDS', '5')) * 1_000;
const WAIT_MS = Number(value(env, 'E2E_WAIT_SECONDS', '180')) * 1_000;
const redisContainer = env.REDIS_CONTAINER;
const workerContainer = env.WORKER_CONTAINER;
if (!redisContainer || !workerContainer) {
  process.stderr.write('compose-e2e-stream: set REDIS_CONTAINER and WORKER_CONTAINER\n');
  process.exit(2);
}

const started = Date.now();
const seconds = () => ((Date.now() - started) / 1_000).toFixed(1);
const log = (message) => process.stdout.write(`  [${seconds().padStart(5)} s] ${message}\n`);
const sleep = (ms) => new Promise((resolve) => setTimeout(resolve, ms));

function gladlyId() {
  const alphabet = '0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz';
  return [...randomBytes(22)].map((b) => alphabet[b % 62]).join('');
}

async function sandboxState() {
  const res = await fetch(`${urls.sandbox}/_sandbox/state`, { signal: AbortSignal.timeout(10_000) });
  if (!res.ok) throw new Error(`the sandbox answered ${res.status}`);
  return res.json();
}

/** One webhook, sent until it is answered 200 (Gladly retries a failed delivery). */
async function deliver(body, answers) {
  for (let attempt = 1; attempt <= 60; attempt += 1) {
    let label;
    try {
      const res = await fetch(urls.webhook, {
        method: 'POST',
        headers: { 'content-type': 'application/json', ...credential.headers },
        body: JSON.stringify(body),
        signal: AbortSignal.timeout(15_000),
      });
      const answer = await res.json().catch(() => ({}));
      label = `${res.status} ${answer.status ?? answer.title ?? ''}`.trim();
      answers.set(label, (answers.get(label) ?? 0) + 1);
      if (res.status === 200) return true;
    } catch (err) {
      label = `no answer (${err.cause?.code ?? err.name})`;
      answers.set(label, (answers.get(label) ?? 0) + 1);
    }
    await sleep(1_000);
  }
  return false;
}

async function docker(...args) {
  const { stdout } = await run('docker', args, { timeout: 120_000 });
  return stdout.trim();
}

async function main() {
  const customersRes = await fetch(`${urls.sandbox}/_sandbox/customers`, {
    signal: AbortSignal.timeout(10_000),
  });
  const customers = (await customersRes.json()).filter(
    (c) => (c.kind === 'ordinary' || c.kind === 'several-emails') && c.deliversTo.length > 0,
  );
  if (customers.length === 0) throw new Error('the sandbox has no customers with email addresses');
  const before = (await sandboxState()).counts.klaviyo;

  const interval = 1_000 / RATE;
  const killAt = Math.floor(EVENTS / 4);
  const restartAt = Math.floor((EVENTS * 2) / 3);
  const answers = new Map();
  const expected = new Map(); // "email unique_id" → event id
  const open = new Map();
  const pending = [];
  let unanswered = 0;
  let redisBack;
  let workerRestarted;

  log(`sending ${EVENTS} webhooks at ${RATE}/s to ${urls.webhook}`);
  for (let i = 0; i < EVENTS; i += 1) {
    if (i === killAt) {
      await docker('kill', '--signal', 'KILL', redisContainer);
      log(`Redis container killed (SIGKILL); starting it again in ${REDIS_DOWN_MS / 1_000} s`);
      redisBack = sleep(REDIS_DOWN_MS).then(async () => {
        await docker('start', redisContainer);
        log('Redis container started again');
      });
    }
    if (i === restartAt) {
      log('restarting the worker container (SIGTERM, drain, start)');
      workerRestarted = docker('restart', '--time', '40', workerContainer).then(() =>
        log('worker container restarted'),
      );
    }
    const customer = customers[i % customers.length];
    // Alternate each customer between an open and a closed conversation.
    // A close names the conversation its create opened, as Gladly's do.
    const type = open.has(customer.id) ? 'CONVERSATION/CLOSED' : 'CONVERSATION/CREATED';
    const conversationId = open.get(customer.id) ?? gladlyId();
    if (open.has(customer.id)) open.delete(customer.id);
    else open.set(customer.id, conversationId);
    const body = {
      id: gladlyId(),
      type,
      timestamp: new Date().toISOString(),
      initiator: { id: customer.id, type: 'CUSTOMER' },
      content: { customerId: customer.id, conversationId },
    };
    pending.push(
      deliver(body, answers).then((ok) => {
        if (!ok) {
          unanswered += 1;
          return;
        }
        for (const email of customer.deliversTo) {
          expected.set(`${email.toLowerCase()} ${body.id}`, `customer ${customer.id}, event ${body.id}`);
        }
      }),
    );
    await sleep(interval);
  }
  await Promise.all([...pending, redisBack, workerRestarted]);
  log(`sent; answers: ${[...answers].map(([k, n]) => `${n}× ${k}`).join(', ')}`);

  // Every (email, unique_id) of a webhook answered 200 must reach the sandbox's Klaviyo.
  let missing = [...expected.keys()];
  const deadline = Date.now() + WAIT_MS;
  let state;
  while (Date.now() < deadline) {
    state = await sandboxState().catch(() => null);
    if (state) {
      const recorded = new Set();
      for (const profile of state.profiles) {
        for (const event of profile.events) recorded.add(`${profile.email.toLowerCase()} ${event.uniqueId}`);
      }
      missing = [...expected.keys()].filter((key) => !recorded.has(key));
      if (missing.length === 0) break;
    }
    await sleep(1_000);
  }
  const after = state?.counts.klaviyo ?? before;
  const summary = {
    webhooks: EVENTS,
    answered200: EVENTS - unanswered,
    neverAnswered200: unanswered,
    answers: Object.fromEntries(answers),
    expectedEvents: expected.size,
    recorded: expected.size - missing.length,
    missing: missing.length,
    sandboxDuplicates: after.duplicates - before.duplicates,
    klaviyoPosts: after.posts - before.posts,
    seconds: Number(seconds()),
  };
  log(
    `${summary.recorded}/${summary.expectedEvents} events recorded, ${summary.missing} missing; ` +
      `the sandbox deduplicated ${summary.sandboxDuplicates} repeated unique_id(s) over ${summary.klaviyoPosts} Klaviyo posts`,
  );
  process.stdout.write(`E2E_STREAM_SUMMARY ${JSON.stringify(summary)}\n`);
  if (missing.length > 0) {
    // Named by customer and event id: addresses never go into a log.
    const named = missing.slice(0, 10).map((key) => expected.get(key));
    process.stderr.write(`missing, first 10:\n  ${named.join('\n  ')}\n`);
  }
  process.exit(missing.length === 0 && unanswered === 0 ? 0 : 1);
}

main().catch((err) => {
  process.stderr.write(`compose-e2e-stream: ${err instanceof Error ? err.message : String(err)}\n`);
  process.exit(1);
});
