#!/usr/bin/env node
// `npm run demo`: plays a realistic stream of Gladly webhooks against the stack `npm start` runs
// (in sandbox mode), waits until the sandbox's Klaviyo has recorded what should arrive, and
// prints a summary. Exit 1 when something expected does not arrive in time.
import { randomBytes } from 'node:crypto';
import {
  adminCredential,
  DEV,
  loadDotEnv,
  painter,
  stackUrls,
  value,
  webhookCredential,
} from './dev-stack.mjs';

loadDotEnv();
const env = process.env;
const out = process.stdout;
const paint = painter(out);
const urls = stackUrls(env);
const credential = webhookCredential(env);
const admin = adminCredential(env);
const INTERVAL_MS = Number(value(env, 'DEMO_INTERVAL_MS', '150'));
const TIMEOUT_MS = Number(value(env, 'DEMO_TIMEOUT_MS', '60000'));
const PROPERTY = value(env, 'KLAVIYO_PROFILE_PROPERTY', 'In Gladly Conversation');
const fancy = Boolean(out.isTTY) && env.CI !== 'true';

/** The customer whose address the demo removes mid-conversation (given back at the next run). */
const MEI_ID = 'demo-mei-tanaka';

function fail(message) {
  process.stderr.write(`${paint.red('demo: ')}${message}\n`);
  process.exit(1);
}

/** A Gladly-looking event id: 22 base62 characters, fresh every run. */
function gladlyId() {
  const alphabet = '0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz';
  return [...randomBytes(22)].map((b) => alphabet[b % 62]).join('');
}

async function getJson(url, what) {
  let res;
  try {
    res = await fetch(url, { signal: AbortSignal.timeout(5_000) });
  } catch (err) {
    return { error: `${what} does not answer at ${url} (${err.cause?.code ?? err.message})` };
  }
  if (!res.ok) return { error: `${what} answered ${res.status} at ${url}` };
  return { body: await res.json() };
}

/** The webhooks to send, built from the sandbox's seeded customers by what each is there to show. */
function buildStream(customers) {
  const byKind = (kind) => customers.filter((c) => c.kind === kind);
  const several = byKind('several-emails')[0];
  const merged = byKind('merged')[0];
  const unknown = byKind('unknown')[0];
  const noEmail = byKind('no-email')[0];
  const [mei, lars, priya, tom] = byKind('ordinary').filter((c) => c.id !== merged?.mergedInto);
  if (!several || !merged || !unknown || !noEmail || !tom) {
    fail('the sandbox does not have the demo customers this script expects (is it an older sandbox?)');
  }

  const conversations = new Map();
  // `timestamp` is set when the webhook is sent (Gladly sends within moments of the change);
  // `offsetSeconds` back-dates one, as for an event whose delivery was delayed.
  const event = (type, customer, { note, offsetSeconds = 0, conversation = customer.id } = {}) => {
    if (!conversations.has(conversation)) conversations.set(conversation, gladlyId());
    const id = gladlyId();
    return {
      note,
      customer,
      offsetSeconds,
      body: {
        id,
        type,
        timestamp: undefined,
        initiator: {
          id: type === 'CONVERSATION/CLOSED' ? 'demoAgent000000000001' : customer.id,
          type: type === 'CONVERSATION/CLOSED' ? 'AGENT' : 'CUSTOMER',
        },
        content: {
          customerId: customer.id,
          conversationId: conversations.get(conversation),
          context: { assignee: { inboxId: 'demoInbox000000000001' } },
        },
      },
    };
  };

  const stream = [
    {
      note: 'PING (sent when a webhook is enabled)',
      body: { id: gladlyId(), type: 'PING', timestamp: undefined },
    },
    event('CONVERSATION/CREATED', several, { note: 'several emails, a duplicate and an invalid one' }),
  ];
  const meiCreated = event('CONVERSATION/CREATED', mei);
  stream.push(meiCreated);
  const ignored = event('CONVERSATION/CREATED', mei);
  stream.push(
    {
      note: 'a type the bridge ignores',
      customer: mei,
      body: {
        id: ignored.body.id,
        type: 'CONVERSATION_STATUS/UPDATED',
        timestamp: undefined,
        content: ignored.body.content,
      },
    },
    event('CONVERSATION/CREATED', priya),
    // Mid-conversation an agent removes Mei's address: Gladly answers none and sends
    // CUSTOMER_PROFILE/UPDATED. Her close must still reach the address her create set "in
    // conversation" (Gladly's own integration would leave it there for good).
    {
      note: 'address removed mid-conversation',
      customer: mei,
      change: { customerId: mei.id, emails: [] },
      after: { email: mei.deliversTo[0], id: meiCreated.body.id },
      body: { type: 'CUSTOMER_PROFILE/UPDATED' },
    },
    event('CONVERSATION/CREATED', merged, { note: 'merged customer: 301 to the survivor' }),
    event('CONVERSATION/CREATED', unknown, { note: 'unknown customer: 404' }),
    event('CONVERSATION/CREATED', noEmail, { note: 'customer without email' }),
    event('CONVERSATION/CLOSED', several),
    event('CONVERSATION/CREATED', lars),
    // Gladly lists no address for her now; the bridge remembers the one the create reached.
    event('CONVERSATION/CLOSED', mei, { note: 'reaches the removed address' }),
    event('CONVERSATION/CLOSED', priya),
    event('CONVERSATION/CREATED', tom),
  );
  const reopened = event('CONVERSATION/REOPENED', several);
  stream.push(
    reopened,
    { ...reopened, note: 'redelivery of the same event id', redelivery: true },
    event('CONVERSATION/REOPENED', priya),
    // An older conversation's close that Gladly delivers late (after a retry): it must not
    // override the newer open state, so it reaches Klaviyo as backfill.
    event('CONVERSATION/CLOSED', lars, {
      note: 'delivered late: older than the open',
      offsetSeconds: -60,
      conversation: 'lars-older',
    }),
    event('CONVERSATION/CLOSED', tom),
    event('CONVERSATION/CLOSED', priya),
  );
  return stream.filter((item) => item.customer !== undefined || item.body.type === 'PING');
}

/** What Klaviyo should hold once the worker is done: every (email, unique_id), and each email's final state. */
function expectations(stream) {
  const expected = new Map();
  for (const item of stream) {
    if (item.redelivery || !/^CONVERSATION\/(CREATED|REOPENED|CLOSED)$/.test(item.body.type)) continue;
    for (const email of item.customer.deliversTo) {
      const key = email.toLowerCase();
      const entry = expected.get(key) ?? {
        email,
        customer: item.customer,
        newToKlaviyo: Boolean(item.customer.newToKlaviyo),
        ids: new Set(),
        latest: null,
      };
      entry.ids.add(item.body.id);
      if (!entry.latest || item.body.timestamp > entry.latest.timestamp) entry.latest = item.body;
      expected.set(key, entry);
    }
  }
  for (const entry of expected.values()) entry.state = entry.latest.type !== 'CONVERSATION/CLOSED';
  return expected;
}

function bar(done, total, width = 28) {
  const filled = total === 0 ? width : Math.round((done / total) * width);
  return `${paint.green('█'.repeat(filled))}${paint.gray('░'.repeat(width - filled))}`;
}

function progress(text) {
  if (fancy) out.write(`\r\x1b[2K${text}`);
}

/**
 * A customer change as an agent makes it in Gladly: the sandbox changes the customer and answers
 * the webhook event Gladly emits for it, which is then sent like the others.
 */
async function changeCustomer({ customerId, emails }) {
  const res = await fetch(`${urls.sandbox}/_sandbox/customers/${encodeURIComponent(customerId)}`, {
    method: 'POST',
    headers: { 'content-type': 'application/json' },
    body: JSON.stringify({ emails }),
    signal: AbortSignal.timeout(5_000),
  }).catch((err) => fail(`the sandbox does not answer (${err.cause?.code ?? err.message})`));
  if (!res.ok) fail(`the sandbox refused to change ${customerId} (${res.status}): is it an older sandbox?`);
  return (await res.json()).event;
}

/** Until Klaviyo (the sandbox) has recorded event `id` for `email`: the conversation has started. */
async function waitForEvent(email, id) {
  const until = Date.now() + 15_000;
  while (Date.now() < until) {
    const answer = await getJson(`${urls.sandbox}/_sandbox/state`, 'the sandbox');
    const profile = answer.body?.profiles.find((p) => p.email.toLowerCase() === email.toLowerCase());
    if (profile?.events.some((e) => e.uniqueId === id)) return;
    await new Promise((r) => setTimeout(r, 100));
  }
}

async function send(item) {
  if (item.change && !item.body.id) {
    // The agent edits the customer during the conversation, i.e. once its start went out.
    if (item.after) await waitForEvent(item.after.email, item.after.id);
    item.body = await changeCustomer(item.change);
  }
  // A redelivery repeats the body it already sent, timestamp included.
  item.body.timestamp ??= new Date(Date.now() + (item.offsetSeconds ?? 0) * 1_000).toISOString();
  const res = await fetch(urls.webhook, {
    method: 'POST',
    headers: {
      'content-type': 'application/json',
      'user-agent': 'Gladly-Webhook (demo)',
      ...credential.headers,
    },
    body: JSON.stringify(item.body),
    signal: AbortSignal.timeout(15_000),
  }).catch((err) =>
    fail(`the ingest does not answer at ${urls.webhook} (${err.cause?.code ?? err.message})`),
  );
  const body = await res.json().catch(() => ({}));
  if (res.status === 401) {
    fail(
      `the ingest refused the webhook credentials (401). npm run demo uses ${credential.source === 'dev' ? 'the dev pair' : credential.source}; give it the same WEBHOOK_BASIC_AUTH/WEBHOOK_TOKENS as the running stack.`,
    );
  }
  return { status: res.status, outcome: typeof body.status === 'string' ? body.status : (body.title ?? '') };
}

/**
 * Gladly also keeps each event in its Events API: record it in the sandbox's, so `npm run backfill`
 * afterwards finds the demo's events already present. Best effort: the demo does not depend on it.
 */
async function recordInSandbox(body) {
  await fetch(`${urls.sandbox}/_sandbox/gladly-events`, {
    method: 'POST',
    headers: { 'content-type': 'application/json' },
    body: JSON.stringify(body),
    signal: AbortSignal.timeout(5_000),
  }).catch(() => {});
}

async function main() {
  const customersAnswer = await getJson(`${urls.sandbox}/_sandbox/customers`, 'the sandbox');
  if (customersAnswer.error) {
    fail(
      `${customersAnswer.error}.\n  The demo needs the stack in sandbox mode: run ${paint.bold('npm start')} in another shell with no KLAVIYO_API_KEY and no GLADLY_API_URL configured.`,
    );
  }
  const health = await getJson(`${urls.ingest}/healthz`, 'the ingest');
  if (health.error) fail(`${health.error}. Is ${paint.bold('npm start')} running?`);

  // A previous run removed Mei's address: give her the seeded one back first, with the webhook
  // Gladly would send (so the worker drops a cached lookup, even one older than this sandbox).
  let customers = customersAnswer.body;
  const mei = customers.find((c) => c.id === MEI_ID);
  if (mei?.seedEmails) {
    await send({ body: await changeCustomer({ customerId: MEI_ID, emails: mei.seedEmails }) });
    customers = (await getJson(`${urls.sandbox}/_sandbox/customers`, 'the sandbox')).body ?? customers;
  }
  const stream = buildStream(customers);

  out.write(
    `${paint.bold('Sending')} ${stream.length} Gladly webhooks to ${urls.webhook} ${paint.gray(`(${credential.kind === 'basic' ? `Basic ${credential.user}` : `header ${credential.header}`})`)}\n`,
  );
  const answers = new Map();
  for (const [index, item] of stream.entries()) {
    const answer = await send(item);
    // A customer change is in the sandbox's Events API already (the sandbox emitted it).
    if (!item.redelivery && !item.change && item.body.type !== 'PING') await recordInSandbox(item.body);
    const label = `${answer.status} ${answer.outcome}`.trim();
    answers.set(label, (answers.get(label) ?? 0) + 1);
    const what = `${item.body.type.padEnd(27)} ${(item.customer?.id ?? '').padEnd(22)} → ${label}${item.note ? paint.gray(`  ${item.note}`) : ''}`;
    if (fancy)
      progress(`${bar(index + 1, stream.length)} ${String(index + 1).padStart(2)}/${stream.length}  ${what}`);
    else out.write(`  ${String(index + 1).padStart(2)}/${stream.length}  ${what}\n`);
    if (INTERVAL_MS > 0) await new Promise((r) => setTimeout(r, INTERVAL_MS));
  }
  if (fancy) out.write('\n');

  const expected = expectations(stream);
  const pairs = [...expected.values()].reduce((n, e) => n + e.ids.size, 0);
  out.write(
    `${paint.bold('Waiting')} for ${pairs} events to reach Klaviyo (the sandbox) for ${expected.size} profiles…\n`,
  );
  const started = Date.now();
  let state;
  let missing = [];
  let wrongState = [];
  while (true) {
    const answer = await getJson(`${urls.sandbox}/_sandbox/state`, 'the sandbox');
    if (answer.body) {
      state = answer.body;
      const profiles = new Map(state.profiles.map((p) => [p.email.toLowerCase(), p]));
      missing = [];
      wrongState = [];
      let arrived = 0;
      // A worker with KLAVIYO_CREATE_PROFILES=false asks Klaviyo first, and skips customers the
      // sandbox's Klaviyo does not know yet: expect nothing for those then.
      const skipsNew = skipsNewProfiles(state);
      for (const [key, entry] of expected) {
        if (skipsNew && entry.newToKlaviyo) continue;
        const profile = profiles.get(key);
        const ids = new Set((profile?.events ?? []).map((e) => e.uniqueId));
        for (const id of entry.ids) {
          if (ids.has(id)) arrived += 1;
          else missing.push(`${entry.email} ${id}`);
        }
        if (profile?.properties?.[PROPERTY] !== entry.state) wrongState.push(entry.email);
      }
      progress(`${bar(arrived, pairs)} ${arrived}/${pairs} events`);
      if (missing.length === 0 && wrongState.length === 0) break;
    }
    if (Date.now() - started > TIMEOUT_MS) break;
    await new Promise((r) => setTimeout(r, 250));
  }
  if (fancy) out.write('\n');
  const seconds = ((Date.now() - started) / 1000).toFixed(1);

  printSummary({ stream, answers, expected, state, seconds });

  if (missing.length > 0 || wrongState.length > 0) {
    if (missing.length > 0) {
      out.write(
        `\n${paint.red(`${missing.length} expected events did not arrive within ${TIMEOUT_MS / 1000} s:`)}\n`,
      );
      for (const m of missing.slice(0, 10)) out.write(`  ${m}\n`);
    }
    if (wrongState.length > 0)
      out.write(`${paint.red(`wrong final ${PROPERTY} for:`)} ${wrongState.join(', ')}\n`);
    out.write(`Look at the worker's log lines and at failed jobs on ${urls.dashboard}\n`);
    process.exit(1);
  }
}

function skipsNewProfiles(state) {
  return (state?.counts?.klaviyo?.profileLookups ?? 0) > 0;
}

function printSummary({ stream, answers, expected, state, seconds }) {
  const { bold, gray, green, yellow } = paint;
  out.write(`\n${bold(`Webhooks sent: ${stream.length}`)}\n`);
  const why = { pong: 'the PING', duplicate: 'the redelivery', ignored: 'CONVERSATION_STATUS/UPDATED' };
  for (const [label, count] of [...answers].sort((a, b) => b[1] - a[1])) {
    const outcome = label.split(' ')[1];
    out.write(
      `  ${label.padEnd(16)} ${String(count).padStart(3)}${why[outcome] ? gray(`  (${why[outcome]})`) : ''}\n`,
    );
  }

  const profiles = new Map((state?.profiles ?? []).map((p) => [p.email.toLowerCase(), p]));
  const runEvents = [...expected.values()].reduce((n, e) => n + e.ids.size, 0);
  out.write(
    `\n${bold(`Klaviyo (sandbox): ${runEvents} events for ${expected.size} profiles`)} ${gray(`arrived within ${seconds} s`)}\n`,
  );
  for (const entry of expected.values()) {
    const profile = profiles.get(entry.email.toLowerCase());
    if (!profile && entry.newToKlaviyo && skipsNewProfiles(state)) {
      out.write(
        `  ${entry.customer.name.padEnd(14)} ${entry.email.padEnd(28)} ${gray('not sent: no Klaviyo profile yet (KLAVIYO_CREATE_PROFILES=false)')}\n`,
      );
      continue;
    }
    const events = profile?.events.filter((e) => entry.ids.has(e.uniqueId)) ?? [];
    const backfill = events.filter((e) => e.backfill).length;
    const current = profile?.properties?.[PROPERTY];
    const shown =
      current === true ? yellow('true ') : current === false ? green('false') : gray(String(current));
    out.write(
      `  ${(profile?.name ?? entry.customer.name).padEnd(14)} ${entry.email.padEnd(28)} ${`${events.length} event${events.length === 1 ? '' : 's'}`.padEnd(9)}${gray((backfill ? `${backfill} backfill` : '').padEnd(11))} ${PROPERTY}: ${shown}\n`,
    );
  }
  const silent = [
    ...new Map(
      stream
        .filter((i) => i.customer && i.customer.deliversTo.length === 0)
        .map((i) => [i.customer.id, i.customer]),
    ).values(),
  ];
  if (silent.length > 0) {
    out.write(gray('  no events, as expected:\n'));
    for (const c of silent) out.write(gray(`    ${c.id.padEnd(24)} ${c.note}\n`));
  }

  out.write(`\n${bold('Where to look')}\n`);
  out.write(`  Sandbox page  ${urls.sandbox}/\n`);
  out.write(
    `  Dashboard     ${urls.dashboard}  ${gray(admin.source === 'dev' ? `(${DEV.adminUser} / ${DEV.adminPassword})` : `(${admin.user} / ADMIN_PASSWORD)`)}\n`,
  );
  out.write(`  Metrics       ${urls.ingest}/metrics  ${urls.worker}/metrics\n`);
}

await main();
