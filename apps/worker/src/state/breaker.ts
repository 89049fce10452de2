import type { RedisConnection } from '@gk/queue';
import type { Counter } from 'prom-client';
import { defineScript, runScript } from './redis-script.js';

/**
 * A circuit breaker for Klaviyo outages, shared by every worker process through Redis.
 *
 * Without it each failed delivery sleeps its own exponential backoff (up to 10 min), so after an
 * outage the backlog trickles out over minutes. With it, an outage opens the breaker; deliveries
 * then pause queue-wide without spending attempts, one probe at a time (a real delivery) tests
 * Klaviyo, and the probe that succeeds closes the breaker and makes every delivery that backed
 * off ready again at once (BullMQ's promoteJobs) and lifts the queue's pause.
 *
 * Opening rule (per process, decided from what this process saw): a sliding window of the last
 * `windowSize` (20) Klaviyo answers of the last `windowMs` (10 s). The breaker opens when the
 * window holds at least `minAnswers` (10) of them and more than `failurePercent` (50 %) are
 * failures: a 5xx, a timeout or a reset (the retryable outcomes). 429 and other 4xx are neutral
 * (neither failures nor answers): a 429 already pauses the queue for Retry-After, and a 400 says
 * Klaviyo is up. Per process rather than a shared Redis window: no Redis write per answer, and a
 * process with too few answers of its own cannot open the breaker on a handful of errors; any
 * process's window opens it for all.
 *
 * State in Redis (Redis' clock, one hash slot: the keys are under the hash-tagged queue prefix):
 * `<prefix>:breaker` a hash (absent = closed; `state` open | half_open, `interval`,
 * `next_probe_at`, `opened_at`) and `<prefix>:breaker:probe` the probe lock (`SET NX PX`, its
 * value the probing attempt). Probes start `probeMinMs` (1 s) apart and the gap doubles after
 * each failed probe up to `probeMaxMs` (KLAVIYO_BREAKER_PROBE_MAX_SECONDS, default 2 s).
 *
 * `admit` is cheap while closed: each process keeps a view of the Redis state and, while it is
 * closed and younger than `refreshMs` (250 ms), answers 'send' without asking Redis; another
 * process's opening is seen within that time (a pub/sub would be quicker but adds a subscriber
 * connection per process, and cluster pub/sub). While open every admit asks Redis (it may probe).
 */
export type BreakerState = 'closed' | 'open' | 'half_open';
export type BreakerResult = 'ok' | 'failure' | 'neutral';
export type Admission = 'send' | 'probe' | { wait: number };

export interface BreakerRule {
  /** How far back answers count (10 s). */
  windowMs: number;
  /** The window keeps at most this many of the newest answers (20). */
  windowSize: number;
  /** Fewer answers than this in the window never open the breaker (10). */
  minAnswers: number;
  /** More failures than this share of the window opens it (50). */
  failurePercent: number;
}

export const DEFAULT_BREAKER_RULE: BreakerRule = {
  windowMs: 10_000,
  windowSize: 20,
  minAnswers: 10,
  failurePercent: 50,
};

/** One Klaviyo answer in a process's window: when, and whether it was a failure. */
export interface WindowAnswer {
  at: number;
  failed: boolean;
}

/** The answers still in the window at `now`: the newest `windowSize` of the last `windowMs`. */
export function trimWindow(answers: readonly WindowAnswer[], now: number, rule: BreakerRule): WindowAnswer[] {
  return answers.filter((a) => now - a.at <= rule.windowMs).slice(-rule.windowSize);
}

/** The opening rule (see {@link KlaviyoBreaker}): enough answers, and most of them failures. */
export function shouldOpen(answers: readonly WindowAnswer[], now: number, rule: BreakerRule): boolean {
  const window = trimWindow(answers, now, rule);
  if (window.length < rule.minAnswers) return false;
  const failures = window.filter((a) => a.failed).length;
  return failures * 100 > window.length * rule.failurePercent;
}

/** What the breaker needs of a queue whose deliveries it holds back (a BullMQ Queue). */
export interface BreakerQueue {
  removeRateLimitKey(): Promise<number>;
  promoteJobs(opts?: { count?: number }): Promise<void>;
  getDelayedCount(): Promise<number>;
}

export interface BreakerMetrics {
  transitions: Counter<'to'>;
  promoted: Counter;
}

export interface KlaviyoBreakerOptions {
  /** The worker's state prefix (`<queue prefix>:state`, hash-tagged on a cluster). */
  prefix: string;
  /** The queues to release on recovery: their rate-limit pause lifted, their delayed jobs promoted. */
  queues: readonly BreakerQueue[];
  rule?: Partial<BreakerRule>;
  /** First gap between probes (1 s); doubles after each failed probe. */
  probeMinMs?: number;
  /** Largest gap between probes (10 s). */
  probeMaxMs?: number;
  /** How long a probe may hold the lock before another may probe (a probe that died). */
  probeLockMs?: number;
  /** How long a closed view is trusted before Redis is asked again. */
  refreshMs?: number;
  /**
   * The longest pause `admit` asks for while open: workers that paused sleep that long whatever
   * happens meanwhile (BullMQ's worker waits out its pause locally), so it bounds how long after
   * recovery a worker in another process starts again.
   */
  maxWaitMs?: number;
  metrics?: BreakerMetrics;
  /** Told about transitions this process made (for the log). */
  onTransition?: (to: BreakerState, details: { promoted?: number }) => void;
  now?: () => number;
}

/** Redis' clock in ms. */
const NOW = `local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)`;

/**
 * KEYS: state, probe lock. ARGV: holder, probe lock ms. Answers {state, wait ms}: 'closed',
 * 'probe' (this holder took the probe lock; the state is half_open), or 'open' / 'half_open'
 * with how long until a probe may start (0: unknown, a probe is in flight).
 */
const ADMIT = defineScript(`${NOW}
local st = redis.call('HGET', KEYS[1], 'state')
if not st then return {'closed', 0} end
local nextAt = tonumber(redis.call('HGET', KEYS[1], 'next_probe_at') or '0')
if now >= nextAt and redis.call('SET', KEYS[2], ARGV[1], 'NX', 'PX', ARGV[2]) then
  redis.call('HSET', KEYS[1], 'state', 'half_open')
  return {'probe', 0}
end
if st == 'half_open' and redis.call('EXISTS', KEYS[2]) == 0 then
  -- The probe's lock lapsed (its worker died): open again, a new probe may start when due.
  redis.call('HSET', KEYS[1], 'state', 'open')
  st = 'open'
end
if st == 'half_open' then return {st, 0} end
return {st, math.max(0, nextAt - now)}`);

/** KEYS: state. ARGV: first probe gap ms. Answers 1 when this call opened the breaker. */
const OPEN = defineScript(`${NOW}
if redis.call('EXISTS', KEYS[1]) == 1 then return 0 end
redis.call('HSET', KEYS[1], 'state', 'open', 'opened_at', now, 'interval', ARGV[1],
  'next_probe_at', now + tonumber(ARGV[1]))
return 1`);

/**
 * KEYS: state, probe lock. ARGV: holder, result, first and largest probe gap ms. A probe's
 * report: 'ok' closes (even when its lock lapsed: Klaviyo answered), 'failure' reopens with a
 * doubled gap, 'neutral' (it sent nothing, or got a 4xx) reopens with a probe due at once.
 * Answers the transition made: 'closed', 'open' or ''.
 */
const REPORT = defineScript(`${NOW}
local mine = redis.call('GET', KEYS[2]) == ARGV[1]
if ARGV[2] == 'ok' then
  if mine then redis.call('DEL', KEYS[2]) end
  if redis.call('DEL', KEYS[1]) == 1 then return 'closed' end
  return ''
end
if not mine or redis.call('EXISTS', KEYS[1]) == 0 then return '' end
redis.call('DEL', KEYS[2])
if ARGV[2] == 'failure' then
  local gap = math.min(tonumber(redis.call('HGET', KEYS[1], 'interval') or ARGV[3]) * 2, tonumber(ARGV[4]))
  redis.call('HSET', KEYS[1], 'state', 'open', 'interval', gap, 'next_probe_at', now + gap)
else
  redis.call('HSET', KEYS[1], 'state', 'open', 'next_probe_at', now)
end
return 'open'`);

/** Smallest pause asked for: Redis refuses a 0 ms pause, and BullMQ would then spend an attempt. */
const MIN_WAIT_MS = 100;
/** The pause while a probe is in flight (its answer may close the breaker any moment). */
const PROBE_IN_FLIGHT_WAIT_MS = 500;

export class KlaviyoBreaker {
  readonly #redis: RedisConnection;
  readonly #keys: [string, string];
  readonly #queues: readonly BreakerQueue[];
  readonly #rule: BreakerRule;
  readonly #probeMinMs: number;
  readonly #probeMaxMs: number;
  readonly #probeLockMs: number;
  readonly #refreshMs: number;
  readonly #maxWaitMs: number;
  readonly #metrics: BreakerMetrics | undefined;
  readonly #onTransition: KlaviyoBreakerOptions['onTransition'];
  readonly #now: () => number;
  #answers: WindowAnswer[] = [];
  #view: { state: BreakerState; at: number } = { state: 'closed', at: Number.NEGATIVE_INFINITY };
  /** The holder of the probe lock in this process, until its probe reports. */
  #probing: string | null = null;

  constructor(redis: RedisConnection, options: KlaviyoBreakerOptions) {
    this.#redis = redis;
    this.#keys = [`${options.prefix}:breaker`, `${options.prefix}:breaker:probe`];
    this.#queues = options.queues;
    this.#rule = { ...DEFAULT_BREAKER_RULE, ...options.rule };
    this.#probeMinMs = options.probeMinMs ?? 1_000;
    this.#probeMaxMs = Math.max(this.#probeMinMs, options.probeMaxMs ?? 10_000);
    this.#probeLockMs = options.probeLockMs ?? 30_000;
    this.#refreshMs = options.refreshMs ?? 250;
    this.#maxWaitMs = Math.max(MIN_WAIT_MS, options.maxWaitMs ?? 1_000);
    this.#metrics = options.metrics;
    this.#onTransition = options.onTransition;
    this.#now = options.now ?? Date.now;
  }

  /** This process's view of the breaker (at most `refreshMs` old while closed). */
  state(): BreakerState {
    return this.#view.state;
  }

  /**
   * Before sending: 'send' (closed), 'probe' (this caller holds the probe lock and must report
   * with `record(…, { probe: true })`), or { wait: ms } (open; pause without spending an attempt).
   */
  async admit(holder: string): Promise<Admission> {
    if (this.#view.state === 'closed' && this.#now() - this.#view.at < this.#refreshMs) return 'send';
    // One probe per process at a time: a second caller here would only find the lock taken.
    const [answer, waitMs] = (await runScript(this.#redis, ADMIT, this.#keys, [
      this.#probing === null ? holder : `${holder}:busy`,
      this.#probeLockMs,
    ])) as [string, number];
    if (answer === 'probe') {
      if (this.#probing !== null) {
        // Cannot happen (the lock value differs); be safe and let it go.
        await this.#redis.del(this.#keys[1]);
        return { wait: PROBE_IN_FLIGHT_WAIT_MS };
      }
      this.#probing = holder;
      this.#see('half_open', true);
      return 'probe';
    }
    this.#see(answer as BreakerState, false);
    if (answer === 'closed') return 'send';
    const wait = answer === 'half_open' ? PROBE_IN_FLIGHT_WAIT_MS : Number(waitMs);
    return { wait: Math.min(this.#maxWaitMs, Math.max(MIN_WAIT_MS, wait)) };
  }

  /**
   * After every answer (or no answer): feeds the window, opens/closes, promotes on recovery.
   * `probe` true when admit returned 'probe'; a probe reports once (later reports count as
   * ordinary answers).
   */
  async record(result: BreakerResult, options: { probe?: boolean } = {}): Promise<void> {
    const holder = this.#probing;
    if (options.probe && holder !== null) {
      this.#probing = null;
      const made = (await runScript(this.#redis, REPORT, this.#keys, [
        holder,
        result,
        this.#probeMinMs,
        this.#probeMaxMs,
      ])) as string;
      if (made === 'closed') {
        this.#see('closed', true);
        this.#answers = [];
        const promoted = await this.#release();
        this.#metrics?.promoted.inc(promoted);
        this.#onTransition?.('closed', { promoted });
      } else if (made === 'open') {
        this.#see('open', true);
      } else {
        // Someone else settled it meanwhile: ask Redis at the next admit.
        this.#view.at = Number.NEGATIVE_INFINITY;
      }
      return;
    }
    if (result === 'neutral') return;
    const now = this.#now();
    this.#answers.push({ at: now, failed: result === 'failure' });
    this.#answers = trimWindow(this.#answers, now, this.#rule);
    if (this.#view.state !== 'closed' || !shouldOpen(this.#answers, now, this.#rule)) return;
    const opened = await runScript(this.#redis, OPEN, [this.#keys[0]], [this.#probeMinMs]);
    this.#answers = [];
    this.#see('open', opened === 1);
  }

  /** Reads the state from Redis now (for the gauge of a process that sends nothing). */
  async refresh(): Promise<BreakerState> {
    const state = ((await this.#redis.hget(this.#keys[0], 'state')) as BreakerState | null) ?? 'closed';
    this.#see(state, false);
    return state;
  }

  /** Notes a state seen in Redis; `made`: this process made the transition (metrics, log). */
  #see(state: BreakerState, made: boolean): void {
    const before = this.#view.state;
    this.#view = { state, at: this.#now() };
    // Old failures must not reopen it right after another process closed it.
    if (state === 'closed' && before !== 'closed') this.#answers = [];
    if (made && state !== 'closed') {
      this.#metrics?.transitions.inc({ to: state });
      this.#onTransition?.(state, {});
    }
    if (made && state === 'closed') this.#metrics?.transitions.inc({ to: 'closed' });
  }

  /**
   * Lifts each queue's pause and moves every delayed job to wait (BullMQ's promoteJobs loops over
   * batches of `count` until the delayed set is empty). Answers about how many were promoted (the
   * delayed count just before; jobs delayed meanwhile are promoted too).
   */
  async #release(): Promise<number> {
    let promoted = 0;
    for (const queue of this.#queues) {
      await queue.removeRateLimitKey();
      promoted += await queue.getDelayedCount();
      await queue.promoteJobs({ count: 1_000 });
    }
    return promoted;
  }
}
