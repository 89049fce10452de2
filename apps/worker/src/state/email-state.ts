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
 * The mark is claimed before the request, not after its answer: a delivery that Klaviyo recorded
 * but whose worker died (or froze past its lease) before reporting back still counts, so an
 * older transition delivered after the lease lapsed goes as backfill instead of setting the
 * profile back. A claim Klaviyo is known not to have recorded is withdrawn.
 *
 * A delivery costs two Redis calls around its Klaviyo request, each one Lua script run atomically:
 * take the lease, read the newest mark and claim it, immediately before the request; then store
 * the mark (if newer) and let go of the lease, or withdraw the claim. All keys of an email share
 * the queue prefix, which is hash-tagged on a cluster, so they sit in one hash slot.
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
      /** The newest mark before this call. */
      newest: AppliedMark | null;
      /** The candidate was newer and is now the email's mark (a claim; see `acquire`). */
      claimed: boolean;
    };

/** Lua: is ARGV[ms], ARGV[id] newer than the stored `cur` ('ms|id')? Same tie-break as isStale. */
const NEWER_THAN = `
local function newer_than(cur, ms, id)
  if not cur then return true end
  local sep = string.find(cur, '|', 1, true)
  local curMs = tonumber(string.sub(cur, 1, sep - 1))
  local curId = string.sub(cur, sep + 1)
  local newMs = tonumber(ms)
  return not (newMs < curMs or (newMs == curMs and id <= curId))
end`;

/**
 * KEYS: lease, applied, and the lease and mark keys of versions before keyed pseudonyms. ARGV:
 * holder, lease ms, candidate occurred-at ms, candidate event id, ttl seconds. Takes the lease (or
 * renews it when this holder already has it; not while an older version's worker holds the
 * email), reads the newest mark (the newer of ours and an older version's), and, when the
 * candidate is newer, stores it as the mark, all in one step. Answers 0 when another holder has
 * the lease, else {1, the mark before or '', 1 if claimed else 0}.
 */
const ACQUIRE = defineScript(`${NEWER_THAN}
local legacyHolder = redis.call('GET', KEYS[3])
if legacyHolder and legacyHolder ~= ARGV[1] then return 0 end
if not redis.call('SET', KEYS[1], ARGV[1], 'PX', ARGV[2], 'NX') then
  if redis.call('GET', KEYS[1]) ~= ARGV[1] then return 0 end
  redis.call('PEXPIRE', KEYS[1], ARGV[2])
end
local cur = redis.call('GET', KEYS[2])
local legacy = redis.call('GET', KEYS[4])
if legacy then
  local sep = string.find(legacy, '|', 1, true)
  if not cur or newer_than(cur, string.sub(legacy, 1, sep - 1), string.sub(legacy, sep + 1)) then cur = legacy end
end
local claimed = 0
if newer_than(cur, ARGV[3], ARGV[4]) then
  redis.call('SET', KEYS[2], ARGV[3] .. '|' .. ARGV[4], 'EX', ARGV[5])
  claimed = 1
end
return {1, cur or '', claimed}`);

/**
 * KEYS: applied, lease. ARGV: occurred-at ms, event id ('' = no mark), ttl seconds, holder,
 * hold ms ('' = release). Stores the mark only when it is newer than the stored one; then, if the
 * holder still has the lease, releases it, or with a hold keeps it that much longer. Answers 1
 * when the mark was stored.
 */
const MARK_AND_RELEASE = defineScript(`${NEWER_THAN}
local stored = 0
if ARGV[2] ~= '' then
  if newer_than(redis.call('GET', KEYS[1]), ARGV[1], ARGV[2]) then
    redis.call('SET', KEYS[1], ARGV[1] .. '|' .. ARGV[2], 'EX', ARGV[3])
    stored = 1
  else
    redis.call('EXPIRE', KEYS[1], ARGV[3])
  end
end
if redis.call('GET', KEYS[2]) == ARGV[4] then
  if ARGV[5] ~= '' then redis.call('PEXPIRE', KEYS[2], ARGV[5]) else redis.call('DEL', KEYS[2]) end
end
return stored`);

/**
 * KEYS: applied, lease. ARGV: holder, claimed mark ('ms|id'), mark before ('' = none), ttl
 * seconds. Only while the holder still has the lease (so no one claimed since): puts back the
 * mark before the claim if the claim is still the mark, then releases the lease. Answers 1 when
 * the claim was withdrawn.
 */
const WITHDRAW = defineScript(`
if redis.call('GET', KEYS[2]) ~= ARGV[1] then return 0 end
local withdrawn = 0
if redis.call('GET', KEYS[1]) == ARGV[2] then
  if ARGV[3] ~= '' then redis.call('SET', KEYS[1], ARGV[3], 'EX', ARGV[4]) else redis.call('DEL', KEYS[1]) end
  withdrawn = 1
end
redis.call('DEL', KEYS[2])
return withdrawn`);

interface EmailKeys {
  lease: string;
  applied: string;
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
      legacyLease: `${legacy}:lease`,
      legacyApplied: `${legacy}:applied`,
    };
  }

  /**
   * Takes the email's lease for `holder` (one attempt: its lock token), reads the newest mark
   * applied to it and, when `candidate` is newer, makes it the mark at once: a claim, made before
   * the request it guards (call this immediately before). From then on an older transition goes
   * as backfill even if this attempt never reports back (killed or frozen after Klaviyo recorded
   * it); an attempt that learns Klaviyo did not record it withdraws the claim (`withdraw`).
   */
  async acquire(email: string, holder: string, candidate: AppliedMark): Promise<LeaseResult> {
    const k = await this.#keys(email);
    const answer = await runScript(
      this.#redis,
      ACQUIRE,
      [k.lease, k.applied, k.legacyLease, k.legacyApplied],
      [holder, this.leaseMs, Date.parse(candidate.occurredAt), candidate.eventId, this.#ttl],
    );
    if (!Array.isArray(answer)) return { acquired: false };
    const raw = String(answer[1] ?? '');
    return { acquired: true, newest: raw ? parseMark(raw) : null, claimed: Number(answer[2]) === 1 };
  }

  /**
   * Klaviyo did not record `claimed` (a refusal, or the request never left): while `holder` still
   * has the lease, puts back the mark that was there before the claim, and releases the lease.
   * Answers whether the claim was withdrawn.
   */
  async withdraw(
    email: string,
    holder: string,
    claimed: AppliedMark,
    before: AppliedMark | null,
  ): Promise<boolean> {
    const k = await this.#keys(email);
    const answer = await runScript(
      this.#redis,
      WITHDRAW,
      [k.applied, k.lease],
      [holder, formatMark(claimed), before ? formatMark(before) : '', this.#ttl],
    );
    return Number(answer) === 1;
  }

  /** Stores `mark` if it is newer than the one stored, and releases `holder`'s lease, atomically. */
  async markAppliedAndRelease(email: string, holder: string, mark: AppliedMark): Promise<void> {
    const k = await this.#keys(email);
    await runScript(
      this.#redis,
      MARK_AND_RELEASE,
      [k.applied, k.lease],
      [String(Date.parse(mark.occurredAt)), mark.eventId, String(this.#ttl), holder, ''],
    );
  }

  /**
   * For a request whose outcome is unknown (Klaviyo may have applied it, or may still): stores
   * `mark` if it is newer than the one stored, and keeps `holder`'s lease `holdMs` longer, so a
   * newer delivery does not overtake a request still under way.
   */
  async markAppliedAndHold(email: string, holder: string, mark: AppliedMark, holdMs: number): Promise<void> {
    const k = await this.#keys(email);
    await runScript(
      this.#redis,
      MARK_AND_RELEASE,
      [k.applied, k.lease],
      [String(Date.parse(mark.occurredAt)), mark.eventId, String(this.#ttl), holder, holdMs],
    );
  }

  /** Releases the lease if `holder` still has it. */
  async release(email: string, holder: string): Promise<void> {
    const k = await this.#keys(email);
    await runScript(
      this.#redis,
      MARK_AND_RELEASE,
      [k.applied, k.lease],
      ['0', '', String(this.#ttl), holder, ''],
    );
  }

  /** The newest mark of the email (ours, or one an older version wrote, whichever is newer). */
  async newestApplied(email: string): Promise<AppliedMark | null> {
    const k = await this.#keys(email);
    const marks = (await Promise.all([this.#redis.get(k.applied), this.#redis.get(k.legacyApplied)]))
      .filter((raw): raw is string => raw !== null)
      .map(parseMark);
    return marks.reduce<AppliedMark | null>((newest, m) => (newest && isStale(m, newest) ? newest : m), null);
  }
}

function formatMark(mark: AppliedMark): string {
  return `${Date.parse(mark.occurredAt)}|${mark.eventId}`;
}

function parseMark(raw: string): AppliedMark {
  const sep = raw.indexOf('|');
  return { occurredAt: new Date(Number(raw.slice(0, sep))).toISOString(), eventId: raw.slice(sep + 1) };
}
