import { type AppliedMark, hashEmail, isStale, LEGACY_EMAIL_HASH_KEY } from '@gk/domain';
import type { RedisConnection } from '@gk/queue';
import { defineScript, runScript } from './redis-script.js';

/**
 * Per-email state in Redis: a lease so two deliveries for one email never run at once, and the
 * newest transition applied to it, so an older one is sent as backfill. Keys carry the email's
 * keyed pseudonym, never the address; the keys versions before keyed pseudonyms wrote are read
 * too (their marks honoured, their leases waited for) until they expire.
 *
 * The lease is fenced: its holder is the attempt (BullMQ's lock token, new for every attempt), so
 * a re-run of a stalled job cannot take over a lease the frozen original still holds, and the
 * original's release never frees a lease someone else took since. It lasts `leaseMs` (the job
 * lock plus a margin), so a killed attempt holds its email up no longer than that.
 *
 * A transition is claimed before its request, not marked after its answer: a delivery that
 * Klaviyo recorded but whose worker died (or froze past its lease) before reporting back still
 * counts, so an older transition delivered after the lease lapsed goes as backfill instead of
 * setting the profile back. Claims are per transition (a sorted set per email), so whichever
 * attempt learns the outcome settles it: recorded (it becomes the applied mark) or refused for
 * good (withdrawn).
 *
 * A delivery costs two Redis calls around its Klaviyo request, each one Lua script run atomically:
 * take the lease, read the newest mark and claim the transition, immediately before the request;
 * then store the applied mark (if newer), drop the claim and let go of the lease, or withdraw the
 * claim. All keys of an email share the queue prefix, which is hash-tagged on a cluster, so they
 * sit in one hash slot.
 */
export interface EmailStateOptions {
  prefix: string;
  /** Lease lifetime: the job lock plus a margin, and longer than any Klaviyo request's deadline. */
  leaseMs: number;
  /** How long the applied mark is remembered (older marks are forgotten: 30 days by default). */
  stateTtlSeconds?: number;
  /** The key of the email pseudonyms in the Redis keys (see PseudonymKey). */
  pseudonymKey: () => Promise<string>;
}

export type LeaseResult =
  | { acquired: false }
  | {
      acquired: true;
      /** The newest mark before this call: applied, or claimed by another transition. */
      newest: AppliedMark | null;
      /** The candidate was newer and is now claimed for the email (see `acquire`). */
      claimed: boolean;
    };

/**
 * Lua helpers. Marks are 'ms|id'; newer_than(cur, ms, id) says whether (ms, id) is newer than
 * `cur` (same tie-break as isStale); newer_mark(a, b) is the newer of two marks (either may be
 * nil).
 */
const MARKS = `
local function newer_than(cur, ms, id)
  if not cur then return true end
  local sep = string.find(cur, '|', 1, true)
  local curMs = tonumber(string.sub(cur, 1, sep - 1))
  local curId = string.sub(cur, sep + 1)
  local newMs = tonumber(ms)
  return not (newMs < curMs or (newMs == curMs and id <= curId))
end
local function newer_mark(a, b)
  if not b then return a end
  local sep = string.find(b, '|', 1, true)
  if newer_than(a, string.sub(b, 1, sep - 1), string.sub(b, sep + 1)) then return b end
  return a
end`;

/**
 * KEYS: lease, applied, claims, and the lease and mark keys of versions before keyed pseudonyms.
 * ARGV: holder, lease ms, candidate occurred-at ms, candidate event id, ttl seconds.
 * Takes the lease (or renews it when this holder already has it; not while an older version's
 * worker holds the email), reads the newest mark (the newest of the applied one, an older
 * version's, and the claims of other transitions), and, when the candidate is newer, adds it to
 * the claims (a sorted set: score occurred-at, member event id), all in one step. Answers 0 when
 * another holder has the lease, else {1, the newest mark or '', 1 if claimed else 0}.
 */
const ACQUIRE = defineScript(`${MARKS}
local legacyHolder = redis.call('GET', KEYS[4])
if legacyHolder and legacyHolder ~= ARGV[1] then return 0 end
if not redis.call('SET', KEYS[1], ARGV[1], 'PX', ARGV[2], 'NX') then
  if redis.call('GET', KEYS[1]) ~= ARGV[1] then return 0 end
  redis.call('PEXPIRE', KEYS[1], ARGV[2])
end
local cur = newer_mark(redis.call('GET', KEYS[2]), redis.call('GET', KEYS[5]))
local top = redis.call('ZREVRANGE', KEYS[3], 0, 1, 'WITHSCORES')
for i = 1, #top, 2 do
  if top[i] ~= ARGV[4] then
    cur = newer_mark(cur, string.format('%d', tonumber(top[i + 1])) .. '|' .. top[i])
    break
  end
end
local claimed = 0
if newer_than(cur, ARGV[3], ARGV[4]) then
  redis.call('ZADD', KEYS[3], ARGV[3], ARGV[4])
  redis.call('EXPIRE', KEYS[3], ARGV[5])
  claimed = 1
end
return {1, cur or '', claimed}`);

/**
 * KEYS: applied, lease, claims. ARGV: occurred-at ms, event id ('' = no mark), ttl seconds,
 * holder, hold ms ('' = release). With an event id: stores it as the applied mark when it is
 * newer than the stored one, and removes its claim. Then, if the holder still has the lease,
 * releases it, or with a hold keeps it that much longer. Answers 1 when the mark was stored.
 */
const MARK_AND_RELEASE = defineScript(`${MARKS}
local stored = 0
if ARGV[2] ~= '' then
  if newer_than(redis.call('GET', KEYS[1]), ARGV[1], ARGV[2]) then
    redis.call('SET', KEYS[1], ARGV[1] .. '|' .. ARGV[2], 'EX', ARGV[3])
    stored = 1
  else
    redis.call('EXPIRE', KEYS[1], ARGV[3])
  end
  redis.call('ZREM', KEYS[3], ARGV[2])
end
if redis.call('GET', KEYS[2]) == ARGV[4] then
  if ARGV[5] ~= '' then redis.call('PEXPIRE', KEYS[2], ARGV[5]) else redis.call('DEL', KEYS[2]) end
end
return stored`);

/**
 * KEYS: lease, claims. ARGV: holder, event id. Only while the holder still has the lease (no other
 * attempt can be sending meanwhile): removes the event's claim, whichever attempt of it made it,
 * and releases the lease. Answers 1 when a claim was removed.
 */
const WITHDRAW = defineScript(`
if redis.call('GET', KEYS[1]) ~= ARGV[1] then return 0 end
local removed = redis.call('ZREM', KEYS[2], ARGV[2])
redis.call('DEL', KEYS[1])
return removed`);

interface EmailKeys {
  lease: string;
  applied: string;
  claims: string;
  /** The same keys under the unkeyed pseudonym of versions before keyed pseudonyms (read only). */
  legacyLease: string;
  legacyApplied: string;
}

export class EmailState {
  readonly #redis: RedisConnection;
  readonly #prefix: string;
  readonly #ttl: number;
  readonly #pseudonymKey: () => Promise<string>;
  readonly leaseMs: number;

  constructor(redis: RedisConnection, options: EmailStateOptions) {
    this.#redis = redis;
    this.#prefix = options.prefix;
    this.#ttl = options.stateTtlSeconds ?? 30 * 24 * 3600;
    this.#pseudonymKey = options.pseudonymKey;
    this.leaseMs = options.leaseMs;
  }

  async #keys(email: string): Promise<EmailKeys> {
    const base = `${this.#prefix}:email:${hashEmail(email, await this.#pseudonymKey())}`;
    const legacy = `${this.#prefix}:email:${hashEmail(email, LEGACY_EMAIL_HASH_KEY)}`;
    return {
      lease: `${base}:lease`,
      applied: `${base}:applied`,
      claims: `${base}:claims`,
      legacyLease: `${legacy}:lease`,
      legacyApplied: `${legacy}:applied`,
    };
  }

  /**
   * Takes the email's lease for `holder` (one attempt: its lock token), reads the newest mark of
   * the email and, when `candidate` is newer, claims it at once, before the request it guards
   * (call this immediately before). From then on an older transition goes as backfill even if
   * this attempt never reports back (killed or frozen after Klaviyo recorded it). The claim is
   * the transition's, not the attempt's: a later attempt removes it when Klaviyo records the
   * event (`markAppliedAndRelease`) or refuses it for good (`withdraw`).
   */
  async acquire(email: string, holder: string, candidate: AppliedMark): Promise<LeaseResult> {
    const k = await this.#keys(email);
    const answer = await runScript(
      this.#redis,
      ACQUIRE,
      [k.lease, k.applied, k.claims, k.legacyLease, k.legacyApplied],
      [holder, this.leaseMs, Date.parse(candidate.occurredAt), candidate.eventId, this.#ttl],
    );
    if (!Array.isArray(answer)) return { acquired: false };
    const raw = String(answer[1] ?? '');
    return { acquired: true, newest: raw ? parseMark(raw) : null, claimed: Number(answer[2]) === 1 };
  }

  /**
   * Klaviyo did not record `mark` (a 4xx, or the request never left), or recorded it as backfill
   * (it sets nothing on the profile): while `holder` still has the lease, removes the
   * transition's claim and releases the lease. Answers whether a claim was removed.
   */
  async withdraw(email: string, holder: string, mark: AppliedMark): Promise<boolean> {
    const k = await this.#keys(email);
    const answer = await runScript(this.#redis, WITHDRAW, [k.lease, k.claims], [holder, mark.eventId]);
    return Number(answer) === 1;
  }

  /**
   * Klaviyo recorded `mark`: stores it as the applied mark if it is newer than the one stored,
   * removes its claim, and releases `holder`'s lease, atomically.
   */
  async markAppliedAndRelease(email: string, holder: string, mark: AppliedMark): Promise<void> {
    const k = await this.#keys(email);
    await runScript(
      this.#redis,
      MARK_AND_RELEASE,
      [k.applied, k.lease, k.claims],
      [String(Date.parse(mark.occurredAt)), mark.eventId, String(this.#ttl), holder, ''],
    );
  }

  /**
   * For a request whose outcome is unknown (Klaviyo may have recorded it, or may still): its claim
   * stays, and `holder`'s lease is kept `holdMs` longer, so a newer delivery does not overtake a
   * request still under way.
   */
  async hold(email: string, holder: string, holdMs: number): Promise<void> {
    const k = await this.#keys(email);
    await runScript(
      this.#redis,
      MARK_AND_RELEASE,
      [k.applied, k.lease, k.claims],
      ['0', '', String(this.#ttl), holder, holdMs],
    );
  }

  /** Releases the lease if `holder` still has it. */
  async release(email: string, holder: string): Promise<void> {
    const k = await this.#keys(email);
    await runScript(
      this.#redis,
      MARK_AND_RELEASE,
      [k.applied, k.lease, k.claims],
      ['0', '', String(this.#ttl), holder, ''],
    );
  }

  /**
   * The newest mark of the email: applied (ours, or one an older version wrote) or claimed,
   * whichever is newer.
   */
  async newestApplied(email: string): Promise<AppliedMark | null> {
    const k = await this.#keys(email);
    const [applied, legacy, top] = await Promise.all([
      this.#redis.get(k.applied),
      this.#redis.get(k.legacyApplied),
      this.#redis.zrevrange(k.claims, 0, 0, 'WITHSCORES'),
    ]);
    const raws = [applied, legacy, top.length === 2 ? `${Number(top[1])}|${top[0]}` : null];
    return raws
      .filter((raw): raw is string => raw !== null)
      .map(parseMark)
      .reduce<AppliedMark | null>((newest, m) => (newest && isStale(m, newest) ? newest : m), null);
  }
}

function parseMark(raw: string): AppliedMark {
  const sep = raw.indexOf('|');
  return { occurredAt: new Date(Number(raw.slice(0, sep))).toISOString(), eventId: raw.slice(sep + 1) };
}
