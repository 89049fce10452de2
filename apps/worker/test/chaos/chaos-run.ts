/**
 * One chaos run: the built ingest and workers against the stand-ins, a Gladly-like sender that
 * retries and redelivers, injected upstream faults (Klaviyo 429/5xx/drops/400s, Gladly
 * 429/503/drops) and, at random moments, kill -9 of workers, worker freezes longer than the job
 * lock, kill -9 of Redis with a restart from its AOF, and ingest restarts (SIGTERM and kill -9).
 *
 * `runChaos` returns what happened; `findViolations` lists every broken promise in it, so a
 * failing run names all of them at once.
 */
import { mkdirSync, writeFileSync } from 'node:fs';
import { dirname } from 'node:path';
import type { InjectedFault } from '@gk/stand-ins';
import { findLogLeaks, sleep, waitFor } from '@gk/testing';
import type { Job } from 'bullmq';
import { createGladlySender, type SenderStats } from '../system/gladly-sender.js';
import { createRandom, type Random } from '../system/random.js';
import { STACK_SECRETS, type Stack, type StackMonitor, startStack } from '../system/stack.js';

export const PROP = 'In Gladly Conversation';
const METRIC = { started: 'started conversation in Gladly', closed: 'closed conversation in Gladly' };
const TRANSITION_KIND: Record<string, 'started' | 'closed'> = {
  'CONVERSATION/CREATED': 'started',
  'CONVERSATION/REOPENED': 'started',
  'CONVERSATION/CLOSED': 'closed',
};

export interface ChaosOptions {
  /** Names the report and the queue prefix. */
  label: string;
  seed: number;
  /** How long webhooks are sent for (the run then drains). */
  durationMs: number;
  customers: number;
  /** Parallel senders. */
  lanes: number;
  workers: number;
  workerKills: number;
  workerFreezes: number;
  /** Longer than the workers' job lock, so a frozen worker's jobs stall and move. */
  freezeMs: number;
  /**
   * SIGSTOP of a worker while it has a Klaviyo request in flight, for `deliveryFreezeMs` (longer
   * than the per-email lease: the job lock plus the margin), then SIGCONT: its deliveries are
   * re-run elsewhere and newer transitions for the same emails delivered meanwhile.
   */
  deliveryFreezes?: number;
  deliveryFreezeMs?: number;
  redisKills: number;
  /** SIGSTOP of Redis for redisDownMs: a hung Redis (the ingest spools what it cannot store). */
  redisFreezes: number;
  redisDownMs: number;
  ingestRestarts: number;
  ingestKills: number;
  /** One Klaviyo fault (429, 503, 500 or a dropped connection) at most this often. */
  klaviyoFaultEveryMs: number;
  /** One Gladly fault (429, 503 or a dropped connection) at most this often. */
  gladlyFaultEveryMs: number;
  /** Klaviyo 400s: the deliveries that get one must end in the failed set, and only those. */
  klaviyo400s: number;
  drainTimeoutMs: number;
  /** Where the JSON report goes (folders are created). */
  reportPath?: string;
}

interface PlannedWebhook {
  id: string;
  type: string;
  timestamp: string;
  customerId: string;
  /**
   * One conversation per chain, as in Gladly: its events carry the same conversation id whichever
   * of a merged customer's ids they name (an address is in conversation while any conversation
   * that reached it is open, so a chain split over two ids would leave one open).
   */
  conversationId: string;
}

interface Customer {
  /** The ids webhooks use for this customer (a merged-away id answers 301 to the first). */
  ids: string[];
  /** As Gladly holds them, duplicates and invalid entries included. */
  emails: string[];
  /** The distinct valid addresses, lowercase: what Klaviyo must receive. */
  expected: string[];
}

export interface ChaosAction {
  atMs: number;
  kind:
    | 'worker-kill'
    | 'worker-freeze'
    | 'worker-freeze-delivery'
    | 'redis-kill'
    | 'redis-freeze'
    | 'ingest-restart'
    | 'ingest-kill';
}

export interface ChaosResult {
  options: ChaosOptions;
  plan: PlannedWebhook[];
  customers: Map<string, Customer>;
  /** Webhook ids that got a 2xx. */
  accepted: Set<string>;
  sender: SenderStats;
  faults: Record<string, number>;
  actions: { kind: ChaosAction['kind']; atMs: number; tookMs: number }[];
  /** Epoch ms the sending window started (log lines carry epoch times). */
  startedAt: number;
  sendMs: number;
  drainMs: number;
  klaviyo: {
    posts: number;
    accepted: number;
    /** Bulk Create Events requests answered 202, and the events they carried. */
    bulkAccepted: number;
    bulkEvents: number;
    duplicates: number;
    throttled: number;
    events: {
      uniqueId: string;
      email: string;
      metricName: string;
      time: string;
      backfill: boolean;
      /** When the stand-in recorded it, in ms since the run started. */
      receivedMs: number;
      properties: Record<string, unknown>;
      profileProperties?: Record<string, unknown>;
    }[];
    profiles: Map<string, Record<string, unknown>>;
  };
  counts: Awaited<ReturnType<StackMonitor['counts']>>;
  transitionJobs: { eventId: string; state: 'completed' | 'failed'; reason?: string }[];
  deliveryJobs: { eventId: string; email: string; state: 'completed' | 'failed'; reason?: string }[];
  output: string;
  exitCodes: (number | null)[];
}

/** Customers with 1–3 addresses, some with a case duplicate or an invalid entry, a few merged. */
function makeCustomers(random: Random, count: number): Map<string, Customer> {
  const customers = new Map<string, Customer>();
  for (let c = 0; c < count; c++) {
    const valid = Array.from({ length: random.int(1, 3) }, (_, i) => `c${c}.e${i}@example.com`);
    const emails = [...valid];
    if (random.chance(0.1)) emails.push(`  ${valid[0]?.toUpperCase()} `);
    if (random.chance(0.05)) emails.push('not-an-email');
    const noValid = c > 0 && random.chance(0.02);
    const ids = [`cust${c}`];
    if (random.chance(0.05)) ids.push(`merged-away-${c}`);
    customers.set(`cust${c}`, {
      ids,
      emails: noValid ? ['nobody@', 'still not an email'] : emails,
      expected: noValid ? [] : valid.map((e) => e.toLowerCase()),
    });
  }
  return customers;
}

/**
 * Per customer, a chain of transitions (created, then closed/reopened alternately, one minute
 * apart), sent as one burst in shuffled order, so closes often arrive before their creates.
 * Unknown customers, PINGs and types the bridge ignores are mixed in.
 */
function makeBursts(random: Random, customers: Map<string, Customer>): PlannedWebhook[][] {
  const base = Date.parse('2026-11-20T10:00:00.000Z');
  const bursts: PlannedWebhook[][] = [];
  let n = 0;
  for (const [key, customer] of customers) {
    const length = random.int(1, 5);
    const burst: PlannedWebhook[] = [];
    for (let j = 0; j < length; j++) {
      const type =
        j === 0 ? 'CONVERSATION/CREATED' : j % 2 === 1 ? 'CONVERSATION/CLOSED' : 'CONVERSATION/REOPENED';
      burst.push({
        id: `ev-${key}-${j}-${random.int(0, 1e9).toString(36)}`,
        type,
        timestamp: new Date(base + n * 1_000 + j * 60_000 + random.int(0, 999)).toISOString(),
        customerId: random.pick(customer.ids),
        conversationId: `conv-${key}`,
      });
    }
    n += 1;
    bursts.push(random.shuffle(burst));
    if (random.chance(0.05)) {
      bursts.push([
        {
          id: `ev-unknown-${n}`,
          type: 'CONVERSATION/CREATED',
          timestamp: new Date(base + n * 1_000).toISOString(),
          customerId: `unknown-${n}`,
          conversationId: `conv-unknown-${n}`,
        },
      ]);
    }
    if (random.chance(0.03)) {
      bursts.push([
        {
          id: `ping-${n}`,
          type: 'PING',
          timestamp: new Date(base).toISOString(),
          customerId: '',
          conversationId: '',
        },
      ]);
    }
    if (random.chance(0.05)) {
      bursts.push([
        {
          id: `ignored-${n}`,
          type: random.pick(['CONVERSATION_STATUS/UPDATED', 'CUSTOMER/UPDATED', 'CONVERSATION/NOTE_ADDED']),
          timestamp: new Date(base + n * 1_000).toISOString(),
          customerId: key,
          conversationId: `conv-${key}`,
        },
      ]);
    }
  }
  return random.shuffle(bursts);
}

function webhookBody(w: PlannedWebhook): object {
  if (w.type === 'PING') return { id: w.id, type: 'PING', timestamp: w.timestamp, content: {} };
  return {
    id: w.id,
    type: w.type,
    timestamp: w.timestamp,
    initiator: { id: 'agent-1', type: 'AGENT' },
    content: { customerId: w.customerId, conversationId: w.conversationId },
  };
}

/** Actions at random moments between 10 % and 85 % of the sending window, in time order. */
function makeSchedule(random: Random, o: ChaosOptions): ChaosAction[] {
  const actions: ChaosAction[] = [];
  const at = () => Math.round(o.durationMs * (0.1 + 0.75 * random.next()));
  const add = (kind: ChaosAction['kind'], count: number) => {
    for (let i = 0; i < count; i++) actions.push({ atMs: at(), kind });
  };
  add('worker-kill', o.workerKills);
  add('worker-freeze', o.workerFreezes);
  add('worker-freeze-delivery', o.deliveryFreezes ?? 0);
  add('redis-kill', o.redisKills);
  add('redis-freeze', o.redisFreezes);
  add('ingest-restart', o.ingestRestarts);
  add('ingest-kill', o.ingestKills);
  return actions.sort((a, b) => a.atMs - b.atMs);
}

/**
 * Injects one fault at a time, and the next only once a request has come since (so at most one
 * is ever pending): what it reports was served, not merely queued.
 */
function faultInjector(
  requests: () => number,
  inject: (fault: InjectedFault) => void,
  served: Record<string, number>,
) {
  let pending: { kind: string; at: number } | null = null;
  const settle = () => {
    if (pending && requests() > pending.at) {
      served[pending.kind] = (served[pending.kind] ?? 0) + 1;
      pending = null;
    }
  };
  return {
    /** Injects `fault` unless one is still pending; true if injected. */
    offer(kind: string, fault: InjectedFault): boolean {
      settle();
      if (pending) return false;
      pending = { kind, at: requests() };
      served[kind] ??= 0;
      inject(fault);
      return true;
    },
    settle,
  };
}

export async function runChaos(o: ChaosOptions): Promise<ChaosResult> {
  const random = createRandom(o.seed);
  const customers = makeCustomers(random, o.customers);
  const bursts = makeBursts(random, customers);
  const plan = bursts.flat();
  const schedule = makeSchedule(random, o);

  const stack = await startStack({
    prefix: o.label,
    workers: o.workers,
    workerEnv: {
      // A killed or frozen worker's jobs are retried after about this long.
      WORKER_LOCK_DURATION_MS: '2000',
      KLAVIYO_RATE_LIMIT_PER_SECOND: '150',
      GLADLY_RATE_LIMIT_PER_SECOND: '60',
      // Bulk on: every burst's backlog goes in bulk requests (auto mode), the rest one by one.
      KLAVIYO_BULK_MIN_BACKLOG: '20',
    },
  });
  try {
    return await drive(stack, o, random, customers, bursts, plan, schedule);
  } finally {
    await stack.close();
  }
}

async function drive(
  stack: Stack,
  o: ChaosOptions,
  random: Random,
  customers: Map<string, Customer>,
  bursts: PlannedWebhook[][],
  plan: PlannedWebhook[],
  schedule: ChaosAction[],
): Promise<ChaosResult> {
  const { gladly, klaviyo } = stack;
  for (const customer of customers.values()) {
    const [id, ...mergedAway] = customer.ids;
    if (!id) continue;
    gladly.setCustomer(id, customer.emails);
    for (const old of mergedAway) gladly.mergeCustomer(old, id);
  }
  // Real lookups and posts take a while: work is in flight when a worker is killed or frozen,
  // so a fan-out or a delivery really is interrupted and re-run.
  gladly.setLatency(150);
  klaviyo.setLatency(25);

  const faults: Record<string, number> = {};
  const klaviyoFaults = faultInjector(
    () => klaviyo.posts,
    (f) => klaviyo.injectFaults(f),
    faults,
  );
  const gladlyFaults = faultInjector(
    () => gladly.requests.length,
    (f) => gladly.injectFaults(f),
    faults,
  );
  const sender = createGladlySender({
    url: stack.ingestUrl,
    authorization: stack.webhookAuthorization,
    random,
    redeliverChance: 0.15,
    // Outages here last seconds: a webhook still refused after this long is a finding, not a wait.
    giveUpAfterMs: 30_000,
  });

  const started = Date.now();
  const elapsed = () => Date.now() - started;
  const injectUntil = o.durationMs * 0.85;
  let owed400 = 0;
  const four00At = Array.from(
    { length: o.klaviyo400s },
    (_, i) => ((i + 1) / (o.klaviyo400s + 1)) * injectUntil,
  );
  const klaviyoTimer = setInterval(() => {
    if (elapsed() > injectUntil) return;
    while (four00At.length > 0 && (four00At[0] ?? 0) <= elapsed()) {
      four00At.shift();
      owed400 += 1;
    }
    if (owed400 > 0) {
      if (klaviyoFaults.offer('klaviyo400', { status: 400 })) owed400 -= 1;
      return;
    }
    const r = random.next();
    if (r < 0.3) klaviyoFaults.offer('klaviyo429', { status: 429, retryAfterSeconds: 1 });
    else if (r < 0.6) klaviyoFaults.offer('klaviyo503', { status: 503 });
    else if (r < 0.75) klaviyoFaults.offer('klaviyo500', { status: 500 });
    else klaviyoFaults.offer('klaviyoDrop', { drop: true });
  }, o.klaviyoFaultEveryMs);
  const gladlyTimer = setInterval(() => {
    if (elapsed() > injectUntil) return;
    const r = random.next();
    if (r < 0.5) gladlyFaults.offer('gladly429', { status: 429, retryAfterSeconds: 1 });
    else if (r < 0.8) gladlyFaults.offer('gladly503', { status: 503 });
    else gladlyFaults.offer('gladlyDrop', { drop: true });
  }, o.gladlyFaultEveryMs);

  // Senders: burst i is due at i/n of the window; a burst's webhooks go out together or one by one.
  // Bursts not started by the deadline are not sent (and show up as never accepted).
  const accepted = new Set<string>();
  const sendDeadline = o.durationMs * 1.5 + 30_000;
  let nextBurst = 0;
  const lane = async () => {
    for (;;) {
      const i = nextBurst++;
      const burst = bursts[i];
      if (!burst || elapsed() > sendDeadline) return;
      const due = (i / bursts.length) * o.durationMs;
      if (due > elapsed()) await sleep(due - elapsed());
      const send = async (w: PlannedWebhook) => {
        if (await sender.deliver(webhookBody(w))) accepted.add(w.id);
      };
      if (random.chance(0.5)) await Promise.all(burst.map(send));
      else for (const w of burst) await send(w);
    }
  };

  const actions: ChaosResult['actions'] = [];
  const chaos = async () => {
    for (const action of schedule) {
      if (action.atMs > elapsed()) await sleep(action.atMs - elapsed());
      const at = elapsed();
      switch (action.kind) {
        case 'worker-kill':
          await stack.killWorker(undefined, random.int(0, 1_500));
          break;
        case 'worker-freeze':
          await stack.freezeWorker(o.freezeMs, { midLookup: true });
          break;
        case 'worker-freeze-delivery':
          await stack.freezeWorker(o.deliveryFreezeMs ?? o.freezeMs, { midDelivery: true });
          break;
        case 'redis-kill':
          await stack.killRedis(o.redisDownMs);
          break;
        case 'redis-freeze':
          await stack.freezeRedis(o.redisDownMs);
          break;
        case 'ingest-restart':
          await stack.restartIngest('graceful');
          break;
        case 'ingest-kill':
          // While Redis hangs, webhooks wait in the ingest for their store to be acknowledged:
          // kill -9 it then, and every one of them must be retried by the sender, none lost.
          await stack.freezeRedis(800, () => stack.stopIngest('kill'));
          await stack.startIngest();
          break;
      }
      actions.push({ kind: action.kind, atMs: at, tookMs: elapsed() - at });
    }
  };

  await Promise.all([...Array.from({ length: o.lanes }, lane), chaos()]);
  clearInterval(klaviyoTimer);
  clearInterval(gladlyTimer);
  const sendMs = elapsed();

  // Drain: every queue empty twice in a row (a job between states is never counted as idle).
  const monitor = stack.monitor();
  try {
    let idleBefore = false;
    await waitFor(
      async () => {
        const { idle } = await monitor.counts();
        const done = idle && idleBefore;
        idleBefore = idle;
        return done;
      },
      { timeoutMs: o.drainTimeoutMs, intervalMs: 500, what: 'every queue to drain' },
    ).catch(() => undefined);
    const drainMs = elapsed() - sendMs;
    klaviyoFaults.settle();
    gladlyFaults.settle();
    faults.workerKills = actions.filter((a) => a.kind === 'worker-kill').length;
    faults.workerFreezes = actions.filter((a) => a.kind === 'worker-freeze').length;
    faults.workerDeliveryFreezes = actions.filter((a) => a.kind === 'worker-freeze-delivery').length;
    faults.redisKills = actions.filter((a) => a.kind === 'redis-kill').length;
    faults.redisFreezes = actions.filter((a) => a.kind === 'redis-freeze').length;
    faults.ingestRestarts = actions.filter((a) => a.kind === 'ingest-restart').length;
    faults.ingestKills = actions.filter((a) => a.kind === 'ingest-kill').length;

    const counts = await monitor.counts();
    const transitionJobs: ChaosResult['transitionJobs'] = [];
    const deliveryJobs: ChaosResult['deliveryJobs'] = [];
    for (const state of ['completed', 'failed'] as const) {
      for (const job of (await monitor.queues.transitions.getJobs([state], 0, -1)) as Job[]) {
        transitionJobs.push({ eventId: job.data.eventId, state, reason: job.failedReason });
      }
      for (const job of (await monitor.queues.deliveries.getJobs([state], 0, -1)) as Job[]) {
        deliveryJobs.push({
          eventId: job.data.eventId,
          email: job.data.email,
          state,
          reason: job.failedReason,
        });
      }
    }
    const profiles = new Map(klaviyo.profiles().map((p) => [p.email.toLowerCase(), { ...p.properties }]));
    const exitCodes = await stack.stopServices();
    return {
      options: o,
      plan,
      customers,
      accepted,
      sender: sender.stats(),
      faults,
      actions,
      startedAt: started,
      sendMs,
      drainMs,
      klaviyo: {
        posts: klaviyo.posts,
        accepted: klaviyo.accepted,
        bulkAccepted: klaviyo.bulkAccepted,
        bulkEvents: klaviyo.bulkEventsAccepted,
        duplicates: klaviyo.duplicates,
        throttled: klaviyo.throttled,
        events: klaviyo.events.map((e) => ({
          uniqueId: e.uniqueId,
          email: e.email,
          metricName: e.metricName,
          time: e.time,
          backfill: e.backfill,
          receivedMs: e.receivedAt - started,
          properties: e.properties,
          ...(e.profileProperties ? { profileProperties: e.profileProperties } : {}),
        })),
        profiles,
      },
      counts,
      transitionJobs,
      deliveryJobs,
      output: stack.output(),
      exitCodes,
    };
  } finally {
    await monitor.close();
  }
}

/** Every broken promise in a run, as readable lines (at most a few per kind). */
export function findViolations(r: ChaosResult): string[] {
  const out: string[] = [];
  const seen = new Map<string, number>();
  const add = (kind: string, message: string) => {
    const n = (seen.get(kind) ?? 0) + 1;
    seen.set(kind, n);
    if (n <= 5) out.push(`${kind}: ${message}`);
  };
  const pair = (eventId: string, email: string) => `${eventId} ${email.trim().toLowerCase()}`;

  // What must reach Klaviyo: one event per (accepted transition, valid address).
  const emailsOf = new Map<string, string[]>();
  for (const c of r.customers.values()) for (const id of c.ids) emailsOf.set(id, c.expected);
  const planById = new Map(r.plan.map((w) => [w.id, w]));
  const expectedPairs = new Set<string>();
  const transitionIds = new Set<string>();
  for (const w of r.plan) {
    if (!r.accepted.has(w.id)) add('not accepted', `${w.id} never got a 2xx`);
    if (!TRANSITION_KIND[w.type] || !r.accepted.has(w.id)) continue;
    transitionIds.add(w.id);
    for (const email of emailsOf.get(w.customerId) ?? []) expectedPairs.add(pair(w.id, email));
  }

  // Nothing stuck; only injected 400s in the failed set.
  if (!r.counts.idle) add('stuck', `jobs left pending: ${JSON.stringify(r.counts)}`);
  const failed = r.deliveryJobs.filter((j) => j.state === 'failed');
  for (const j of r.transitionJobs.filter((t) => t.state === 'failed'))
    add('failed transition', `${j.eventId}: ${j.reason}`);
  for (const j of failed)
    if (!/^klaviyo 400/.test(j.reason ?? '')) add('failed delivery', `${j.eventId}: ${j.reason}`);
  // A 400 served to a worker that was then killed or frozen before it could fail the job is
  // rescued: the job runs again and is delivered. So: at most one failed delivery per 400 served,
  // and at least one unless every 400 was rescued (one kill or freeze in the right millisecond each).
  const served400 = r.faults.klaviyo400 ?? 0;
  if (failed.length > served400 || (served400 > 1 && failed.length === 0))
    add('failed set', `${failed.length} failed deliveries, but ${served400} Klaviyo 400s were served`);
  const failedPairs = new Set(failed.map((j) => pair(j.eventId, j.email)));

  // One job per accepted transition and per (transition, address): redeliveries, kills and
  // re-run fan-outs never make a second one.
  const perTransition = new Map<string, number>();
  for (const j of r.transitionJobs) perTransition.set(j.eventId, (perTransition.get(j.eventId) ?? 0) + 1);
  for (const id of transitionIds)
    if (perTransition.get(id) !== 1) add('transition jobs', `${id} has ${perTransition.get(id) ?? 0} jobs`);
  for (const [id, n] of perTransition)
    if (!transitionIds.has(id)) add('transition jobs', `unexpected job for ${id} (${n})`);
  const perDelivery = new Map<string, number>();
  for (const j of r.deliveryJobs) {
    const key = pair(j.eventId, j.email);
    perDelivery.set(key, (perDelivery.get(key) ?? 0) + 1);
  }
  for (const key of expectedPairs)
    if (perDelivery.get(key) !== 1) add('delivery jobs', `${key} has ${perDelivery.get(key) ?? 0} jobs`);
  for (const [key, n] of perDelivery)
    if (!expectedPairs.has(key)) add('delivery jobs', `unexpected delivery ${key} (${n})`);

  // Klaviyo's dedupe view: exactly once per expected pair (at most once for a failed one).
  const recorded = new Map<string, number>();
  for (const e of r.klaviyo.events) {
    const key = pair(e.uniqueId, e.email);
    recorded.set(key, (recorded.get(key) ?? 0) + 1);
    if (!expectedPairs.has(key)) add('unexpected event', key);
    const w = planById.get(e.uniqueId);
    const kind = w ? TRANSITION_KIND[w.type] : undefined;
    if (!w || !kind) continue;
    if (e.metricName !== METRIC[kind]) add('event content', `${key} has metric ${e.metricName}`);
    if (e.properties[PROP] !== (kind === 'started'))
      add('event content', `${key} has ${PROP}=${e.properties[PROP]}`);
    if (Date.parse(e.time) !== Date.parse(w.timestamp)) add('event content', `${key} has time ${e.time}`);
    if (!e.backfill && e.profileProperties?.[PROP] !== (kind === 'started'))
      add('event content', `${key} lacks the profile property`);
    if (e.backfill && e.profileProperties !== undefined)
      add('event content', `${key} is backfill but sets profile properties`);
  }
  for (const key of expectedPairs) {
    const n = recorded.get(key) ?? 0;
    if (failedPairs.has(key) ? n > 1 : n !== 1) add('lost or doubled', `${key} recorded ${n} times`);
  }

  // Order per email: applied (non-backfill) events in Gladly-timestamp order; backfill only when
  // something newer is recorded for that email (already, or later: a newer delivery that got no
  // answer counts as applied, since Klaviyo may have recorded it, and is retried until it is);
  // the profile ends in the state of the newest event.
  const byEmail = new Map<string, ChaosResult['klaviyo']['events']>();
  for (const e of r.klaviyo.events) {
    const email = e.email.trim().toLowerCase();
    byEmail.set(email, [...(byEmail.get(email) ?? []), e]);
  }
  for (const [email, events] of byEmail) {
    let newestApplied = Number.NEGATIVE_INFINITY;
    let newest: (typeof events)[number] | undefined;
    const newestRecorded = Math.max(...events.filter((e) => !e.backfill).map((e) => Date.parse(e.time)));
    for (const e of events) {
      const t = Date.parse(e.time);
      if (e.backfill) {
        if (t >= newestRecorded)
          add('order', `${email}: ${e.uniqueId} sent as backfill with nothing newer recorded`);
      } else {
        if (t <= newestApplied) add('order', `${email}: ${e.uniqueId} applied after a newer event`);
        newestApplied = Math.max(newestApplied, t);
      }
      if (!newest || t > Date.parse(newest.time)) newest = e;
    }
    const kind = newest ? TRANSITION_KIND[planById.get(newest.uniqueId)?.type ?? ''] : undefined;
    const state = r.klaviyo.profiles.get(email)?.[PROP];
    if (kind && state !== (kind === 'started'))
      add('final state', `${email} is ${PROP}=${state}, newest event ${newest?.uniqueId} is ${kind}`);
  }

  // Secrets and addresses never reach a log line; failed reasons (shown in the dashboard) neither.
  const text = [r.output, ...failed.map((j) => j.reason ?? '')].join('\n');
  for (const leak of findLogLeaks('chaos', text, { secrets: STACK_SECRETS }))
    add(`${leak.what} in output`, leak.line);

  r.exitCodes.forEach((code, i) => {
    if (code !== 0) add('shutdown', `${i === 0 ? 'ingest' : `worker ${i}`} exited ${code} on SIGTERM`);
  });
  for (const [kind, n] of seen) if (n > 5) out.push(`${kind}: … ${n} in all`);
  return out;
}

export interface ChaosReport {
  label: string;
  seed: number;
  sendSeconds: number;
  drainSeconds: number;
  webhooks: Record<string, number | Record<string, number>>;
  faults: Record<string, number>;
  klaviyo: Record<string, number>;
  jobs: Record<string, number>;
  lost: number;
  stuck: number;
  violations: string[];
}

export function chaosReport(r: ChaosResult, violations: string[]): ChaosReport {
  const transitions = r.plan.filter((w) => TRANSITION_KIND[w.type]);
  const emailsOf = new Map<string, string[]>();
  for (const c of r.customers.values()) for (const id of c.ids) emailsOf.set(id, c.expected);
  const failed = r.deliveryJobs.filter((j) => j.state === 'failed');
  const failedKeys = new Set(failed.map((j) => `${j.eventId} ${j.email.toLowerCase()}`));
  const recordedKeys = new Set(r.klaviyo.events.map((e) => `${e.uniqueId} ${e.email.toLowerCase()}`));
  let expected = 0;
  let lost = 0;
  for (const w of transitions) {
    if (!r.accepted.has(w.id)) continue;
    for (const email of emailsOf.get(w.customerId) ?? []) {
      const key = `${w.id} ${email}`;
      if (failedKeys.has(key)) continue;
      expected += 1;
      if (!recordedKeys.has(key)) lost += 1;
    }
  }
  const pending = (c: Record<string, number>) =>
    Object.entries(c)
      .filter(([state]) => state !== 'completed' && state !== 'failed')
      .reduce((n, [, v]) => n + v, 0);
  return {
    label: r.options.label,
    seed: r.options.seed,
    sendSeconds: Math.round(r.sendMs / 100) / 10,
    drainSeconds: Math.round(r.drainMs / 100) / 10,
    webhooks: {
      planned: r.plan.length,
      transitions: transitions.length,
      pingsAndIgnored: r.plan.length - transitions.length,
      accepted: r.sender.accepted,
      neverAccepted: r.sender.gaveUp,
      posts: r.sender.posts,
      redeliveries: r.sender.redeliveries,
      answers: r.sender.answers,
      outcomes: r.sender.outcomes,
    },
    faults: r.faults,
    klaviyo: {
      eventsExpected: expected,
      eventsRecorded: r.klaviyo.events.length,
      posts: r.klaviyo.posts,
      accepted202: r.klaviyo.accepted,
      bulkAccepted202: r.klaviyo.bulkAccepted,
      bulkEvents: r.klaviyo.bulkEvents,
      duplicatePosts: r.klaviyo.duplicates,
      duplicatePostsPerEvent: Number(
        (r.klaviyo.duplicates / Math.max(1, r.klaviyo.events.length)).toFixed(4),
      ),
      throttled429: r.klaviyo.throttled,
    },
    jobs: {
      transitionsCompleted: r.transitionJobs.filter((j) => j.state === 'completed').length,
      transitionsFailed: r.transitionJobs.filter((j) => j.state === 'failed').length,
      deliveriesCompleted: r.deliveryJobs.filter((j) => j.state === 'completed').length,
      deliveriesFailedPermanently: failed.length,
    },
    lost,
    stuck: pending(r.counts.transitions) + pending(r.counts.deliveries) + pending(r.counts.customerChanges),
    violations,
  };
}

export function writeReport(path: string, report: unknown): void {
  mkdirSync(dirname(path), { recursive: true });
  writeFileSync(path, `${JSON.stringify(report, null, 2)}\n`);
}

/**
 * For each address named in an order or final-state violation: its events as the stand-in
 * recorded them (with when), the chaos actions around them, and every output line naming one of
 * its customer's event ids, so a failed run can be read without replaying it.
 */
export function violationEvidence(r: ChaosResult, violations: string[]): Record<string, unknown> {
  const evidence: Record<string, unknown> = {};
  for (const v of violations) {
    const email = /^(?:order|final state): (\S+?)(?::| is )/.exec(v)?.[1]?.toLowerCase();
    if (!email || email in evidence) continue;
    const events = r.klaviyo.events.filter((e) => e.email.trim().toLowerCase() === email);
    const ids = new Set(events.map((e) => e.uniqueId));
    const customer = [...r.customers.values()].find((c) => c.expected.includes(email));
    for (const w of r.plan) if (customer?.ids.includes(w.customerId)) ids.add(w.id);
    const lines = r.output.split('\n').filter((line) => [...ids].some((id) => line.includes(id)));
    evidence[email] = {
      planned: r.plan
        .filter((w) => ids.has(w.id))
        .map((w) => ({ id: w.id, type: w.type, time: w.timestamp })),
      recorded: events.map(({ uniqueId, time, backfill, receivedMs }) => ({
        uniqueId,
        time,
        backfill,
        receivedMs,
      })),
      startedAt: r.startedAt,
      actions: r.actions,
      lines: lines.slice(0, 200),
    };
  }
  return evidence;
}
