import { type AppliedMark, hashEmail } from '@gk/domain';
import type { RedisConnection } from '@gk/queue';
import { defineScript, runScript } from './redis-script.js';

/**
 * Per-email state in Redis: a lease so two deliveries for one email never run at once, and the
 * newest transition applied to it, so an older one is sent as backfill. Keys carry a hash of the
 * email, never the address.
 *
 * The lease is fenced: its holder is the attempt (BullMQ's lock token, new for every attempt), so
 * a re-run of a stalled job cannot take over a lease the frozen original still holds, and the
 * original's release never frees a lease someone else took since. It lasts `leaseMs` (the job
 * lock plus a margin), so a killed attempt holds its email up no longer than that.
 *
 * A delivery costs two Redis calls around its Klaviyo request, each one Lua script run atomically:
 * take the lease and read the newest mark, immediately before the request; then store the new
 * mark (if newer) and let go of the lease. Both keys of an email share a prefix, so on a cluster
 * they sit in one hash slot.
 */
export interface EmailStateOptions {
  prefix: string;
  /** Lease lifetime: the job lock plus a margin, and longer than any Klaviyo request's deadline. */
  leaseMs: number;
  /** How long the applied mark is remembered (older marks are forgotten: 30 days by default). */
  stateTtlSeconds?: number;
}

export type LeaseResult = { acquired: false } | { acquired: true; newest: AppliedMark | null };

/**
 * KEYS: lease, applied. ARGV: holder, lease ms. Takes the lease (or renews it when this holder
 * already has it) and reads the newest mark in the same step. Answers 0 when another holder has
 * it, else {1, the stored mark or ''}.
 */
const ACQUIRE = defineScript(`
if not redis.call('SET', KEYS[1], ARGV[1], 'PX', ARGV[2], 'NX') then
  if redis.call('GET', KEYS[1]) ~= ARGV[1] then return 0 end
  redis.call('PEXPIRE', KEYS[1], ARGV[2])
end
return {1, redis.call('GET', KEYS[2]) or ''}`);

/**
 * KEYS: applied, lease. ARGV: occurred-at ms, event id ('' = no mark), ttl seconds, holder,
 * hold ms ('' = release). Stores the mark only when it is newer than the stored one (same
 * tie-break as isStale); then, if the holder still has the lease, releases it, or with a hold
 * keeps it that much longer. Answers 1 when the mark was stored.
 */
const MARK_AND_RELEASE = defineScript(`
local stored = 0
if ARGV[2] ~= '' then
  local cur = redis.call('GET', KEYS[1])
  local newer = true
  if cur then
    local sep = string.find(cur, '|', 1, true)
    local curMs = tonumber(string.sub(cur, 1, sep - 1))
    local curId = string.sub(cur, sep + 1)
    local newMs = tonumber(ARGV[1])
    newer = not (newMs < curMs or (newMs == curMs and ARGV[2] <= curId))
  end
  if newer then
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

export class EmailState {
  readonly #redis: RedisConnection;
  readonly #prefix: string;
  readonly #ttl: number;
  readonly leaseMs: number;

  constructor(redis: RedisConnection, options: EmailStateOptions) {
    this.#redis = redis;
    this.#prefix = options.prefix;
    this.#ttl = options.stateTtlSeconds ?? 30 * 24 * 3600;
    this.leaseMs = options.leaseMs;
  }

  #keys(email: string): { lease: string; applied: string } {
    const base = `${this.#prefix}:email:${hashEmail(email)}`;
    return { lease: `${base}:lease`, applied: `${base}:applied` };
  }

  /**
   * Takes the email's lease for `holder` (one attempt: its lock token) and reads the newest mark
   * applied to it. Call it immediately before the request it guards.
   */
  async acquire(email: string, holder: string): Promise<LeaseResult> {
    const k = this.#keys(email);
    const answer = await runScript(this.#redis, ACQUIRE, [k.lease, k.applied], [holder, this.leaseMs]);
    if (!Array.isArray(answer)) return { acquired: false };
    const raw = String(answer[1] ?? '');
    return { acquired: true, newest: raw ? parseMark(raw) : null };
  }

  /** Stores `mark` if it is newer than the one stored, and releases `holder`'s lease, atomically. */
  async markAppliedAndRelease(email: string, holder: string, mark: AppliedMark): Promise<void> {
    const k = this.#keys(email);
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
    const k = this.#keys(email);
    await runScript(
      this.#redis,
      MARK_AND_RELEASE,
      [k.applied, k.lease],
      [String(Date.parse(mark.occurredAt)), mark.eventId, String(this.#ttl), holder, holdMs],
    );
  }

  /** Releases the lease if `holder` still has it. */
  async release(email: string, holder: string): Promise<void> {
    const k = this.#keys(email);
    await runScript(
      this.#redis,
      MARK_AND_RELEASE,
      [k.applied, k.lease],
      ['0', '', String(this.#ttl), holder, ''],
    );
  }

  async newestApplied(email: string): Promise<AppliedMark | null> {
    const raw = await this.#redis.get(this.#keys(email).applied);
    return raw ? parseMark(raw) : null;
  }
}

function parseMark(raw: string): AppliedMark {
  const sep = raw.indexOf('|');
  return { occurredAt: new Date(Number(raw.slice(0, sep))).toISOString(), eventId: raw.slice(sep + 1) };
}
