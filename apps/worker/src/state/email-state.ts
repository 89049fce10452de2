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
 * The mark is claimed before the request, not after its answer: a delivery that Klaviyo recorded
 * but whose worker died (or froze past its lease) before reporting back still counts, so an
 * older transition delivered after the lease lapsed goes as backfill instead of setting the
 * profile back. A claim Klaviyo is known not to have recorded is withdrawn.
 *
 * A delivery costs two Redis calls around its Klaviyo request, each one Lua script run atomically:
 * take the lease, read the newest mark and claim it, immediately before the request; then store
 * the mark (if newer) and let go of the lease, or withdraw the claim. Both keys of an email share a prefix, so on a cluster
 * they sit in one hash slot.
 */
export interface EmailStateOptions {
  prefix: string;
  /** Lease lifetime: the job lock plus a margin, and longer than any Klaviyo request's deadline. */
  leaseMs: number;
  /** How long the applied mark is remembered (older marks are forgotten: 30 days by default). */
  stateTtlSeconds?: number;
}

/** What a delivery's transition means to the conversations holding an address. */
export interface ConversationPart {
  conversationId: string;
  kind: 'started' | 'closed';
  /** The customer the address was found under (kept with a held address, for the operator's close). */
  customerId: string;
  /**
   * An operator's close (`npm run jobs -- profiles stuck --close`): every conversation the
   * address is held by is let go, whatever the bridge believes about them.
   */
  release?: boolean;
}

/**
 * The answer of {@link EmailState.acquireHeld}: the lease, and the decision about the profile,
 * made in the same Redis step as the lease and the claim.
 */
export type HeldLeaseResult =
  | { acquired: false }
  | {
      acquired: true;
      /** The newest mark before this call. */
      newest: AppliedMark | null;
      /** This transition is now the email's mark. */
      claimed: boolean;
      /**
       * Sent as history only (`backfill: true`, no profile properties): older than what is known
       * of its conversation at this address, older than the email's mark without changing the
       * profile, or a close while another open conversation still holds the address.
       */
      backfill: boolean;
      /** What the attempt changed, so a refusal can put it back (`withdrawHeld`). */
      undo: HeldUndo;
    };

/** The values before and after an acquireHeld, for {@link EmailState.withdrawHeld}. */
export interface HeldUndo {
  conversationId: string;
  entryBefore: string;
  entryAfter: string;
  propBefore: string;
  propAfter: string;
}

/** An address the bridge holds "in conversation" (for `profiles stuck`). */
export interface HeldAddress {
  /** The key's email hash (the id operators name in `--close`). */
  id: string;
  email: string;
  /** Gladly time of the transition that set it "in conversation". */
  since: string;
  customerId: string;
  /** The conversations still open for it, as the bridge knows them. */
  conversations: string[];
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
 * KEYS: lease, applied. ARGV: holder, lease ms, candidate occurred-at ms, candidate event id,
 * ttl seconds. Takes the lease (or renews it when this holder already has it), reads the newest
 * mark, and, when the candidate is newer, stores it as the mark, all in one step. Answers 0 when
 * another holder has the lease, else {1, the mark before or '', 1 if claimed else 0}.
 */
const ACQUIRE = defineScript(`${NEWER_THAN}
if not redis.call('SET', KEYS[1], ARGV[1], 'PX', ARGV[2], 'NX') then
  if redis.call('GET', KEYS[1]) ~= ARGV[1] then return 0 end
  redis.call('PEXPIRE', KEYS[1], ARGV[2])
end
local cur = redis.call('GET', KEYS[2])
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

/**
 * Which conversations hold an address, and what the profile was last told. In the email's `held`
 * hash: `c:<conversation>` = 'k|ms|id', the newest transition of that conversation delivered to
 * the address (k: o open, c closed); `p` = 'v|id', the value of `In Gladly Conversation` last sent
 * (1 or 0) and by which event; `s` = since when it is 1 (Gladly ms); `a` the address and `u` the
 * customer (kept only to show and close it from the CLI). A conversation merged into another
 * (its hash's `into`) counts as that one: the newest entry of the two decides.
 */
const HELD_HELPERS = `
local function split(v)
  local sep = string.find(v, '|', 1, true)
  return tonumber(string.sub(v, 1, sep - 1)), string.sub(v, sep + 1)
end
local function newer(ams, aid, bms, bid)
  return ams > bms or (ams == bms and aid > bid)
end
local function resolve(prefix, c)
  for _ = 1, 8 do
    local nxt = redis.call('HGET', prefix .. c, 'into')
    if not nxt or nxt == c then break end
    c = nxt
  end
  return c
end`;

/**
 * KEYS: lease, applied, held, held index. ARGV: holder, lease ms, candidate ms, candidate id,
 * ttl s, kind ('o'|'c'), conversation, conversation key prefix, release ('1'|''), email, email
 * hash, customer id.
 * Takes the lease as ACQUIRE does, then decides in the same step:
 * - the transition is stale in its conversation (an older one than that conversation's newest at
 *   this address, or a start older than a close of its conversation that never reached this
 *   address): history only;
 * - else it becomes that conversation's entry, and the address is "in conversation" iff any of
 *   its conversations' newest entry is open. The event flips the profile only when its value is
 *   that state and it is newer than the email's mark, or the profile was last told otherwise
 *   (or by this very event: a retry decides as the first attempt did);
 * - otherwise history only (a close while another conversation still holds the address).
 * A flip claims the mark (when newer) and the profile value; the held index follows.
 * Answers 0 when another holder has the lease, else
 * {1, mark before, claimed, backfill, prop before, entry before, entry after, prop after}.
 */
const ACQUIRE_HELD = defineScript(`${HELD_HELPERS}
if not redis.call('SET', KEYS[1], ARGV[1], 'PX', ARGV[2], 'NX') then
  if redis.call('GET', KEYS[1]) ~= ARGV[1] then return 0 end
  redis.call('PEXPIRE', KEYS[1], ARGV[2])
end
local ms, id, kind, conv, prefix = tonumber(ARGV[3]), ARGV[4], ARGV[6], ARGV[7], ARGV[8]
local cur = redis.call('GET', KEYS[2])
local curMs, curId
if cur then curMs, curId = split(cur) end
local flat = redis.call('HGETALL', KEYS[3])
local fields = {}
for i = 1, #flat, 2 do fields[flat[i]] = flat[i + 1] end
local entryField = 'c:' .. conv
local entryBefore = fields[entryField] or ''
local group = resolve(prefix, conv)
local groups = {}
for f, v in pairs(fields) do
  if string.sub(f, 1, 2) == 'c:' then
    if ARGV[9] == '1' then
      redis.call('HDEL', KEYS[3], f)
    else
      local g = resolve(prefix, string.sub(f, 3))
      local eMs, eId = split(string.sub(v, 3))
      local e = groups[g]
      if not e or newer(eMs, eId, e.ms, e.id) then groups[g] = {ms = eMs, id = eId, k = string.sub(v, 1, 1)} end
    end
  end
end
if ARGV[9] == '1' then entryBefore = '' end
local stale = false
local g = groups[group]
if g and g.id ~= id and not newer(ms, id, g.ms, g.id) then stale = true end
-- A start older than a close its conversation fanned out, to an address that close never
-- reached (added to the customer since): the conversation is closed, it opens nothing.
if not stale and kind == 'o' and ARGV[9] ~= '1' then
  local convKey = prefix .. group
  local fan = redis.call('HGET', convKey, 'fan')
  if fan and string.sub(fan, 1, 1) == 'c' then
    local fMs, fId = split(string.sub(fan, 3))
    if newer(fMs, fId, ms, id) and redis.call('HEXISTS', convKey, 'e:' .. ARGV[11]) == 0 then
      stale = true
    end
  end
end
local entryAfter = ''
if not stale then
  entryAfter = kind .. '|' .. ARGV[3] .. '|' .. id
  redis.call('HSET', KEYS[3], entryField, entryAfter)
  groups[group] = {ms = ms, id = id, k = kind}
end
local open = false
for _, e in pairs(groups) do
  if e.k == 'o' then open = true end
end
local value = kind == 'o'
local want = value and '1' or '0'
local prop = fields['p']
local pv, pid
if prop then pv = string.sub(prop, 1, 1); pid = string.sub(prop, 3) end
local markNewer = (not cur) or newer(ms, id, curMs, curId)
local backfill = 1
if not stale and value == open then
  if markNewer or curId == id or (prop and (pv ~= want or pid == id)) then backfill = 0 end
end
local claimed = 0
local propAfter = ''
if backfill == 0 then
  if markNewer then
    redis.call('SET', KEYS[2], ARGV[3] .. '|' .. id, 'EX', ARGV[5])
    claimed = 1
  end
  propAfter = want .. '|' .. id
  redis.call('HSET', KEYS[3], 'p', propAfter)
  if value then
    local since = fields['s']
    if pv ~= '1' or not since then
      since = ARGV[3]
      redis.call('HSET', KEYS[3], 's', since)
    end
    redis.call('HSET', KEYS[3], 'a', ARGV[10], 'u', ARGV[12])
    redis.call('ZADD', KEYS[4], since, ARGV[11])
    redis.call('EXPIRE', KEYS[4], ARGV[5])
  else
    redis.call('ZREM', KEYS[4], ARGV[11])
  end
end
redis.call('EXPIRE', KEYS[3], ARGV[5])
return {1, cur or '', claimed, backfill, prop or '', entryBefore, entryAfter, propAfter}`);

/**
 * KEYS: applied, lease, held, held index. ARGV: holder, claimed mark ('' = none), mark before,
 * ttl s, conversation, entry after, entry before, prop after, prop before, email hash.
 * WITHDRAW for an ACQUIRE_HELD: only while the holder still has the lease, puts back the mark,
 * the conversation's entry and the profile value the attempt changed (each only if it is still
 * what the attempt wrote), follows with the held index, and releases the lease.
 */
const WITHDRAW_HELD = defineScript(`
if redis.call('GET', KEYS[2]) ~= ARGV[1] then return 0 end
local withdrawn = 0
if ARGV[2] ~= '' and redis.call('GET', KEYS[1]) == ARGV[2] then
  if ARGV[3] ~= '' then redis.call('SET', KEYS[1], ARGV[3], 'EX', ARGV[4]) else redis.call('DEL', KEYS[1]) end
  withdrawn = 1
end
local field = 'c:' .. ARGV[5]
if ARGV[6] ~= '' and redis.call('HGET', KEYS[3], field) == ARGV[6] then
  if ARGV[7] ~= '' then redis.call('HSET', KEYS[3], field, ARGV[7]) else redis.call('HDEL', KEYS[3], field) end
end
if ARGV[8] ~= '' and redis.call('HGET', KEYS[3], 'p') == ARGV[8] then
  if ARGV[9] ~= '' then redis.call('HSET', KEYS[3], 'p', ARGV[9]) else redis.call('HDEL', KEYS[3], 'p') end
  local since = redis.call('HGET', KEYS[3], 's')
  if string.sub(ARGV[9], 1, 1) == '1' and since then
    redis.call('ZADD', KEYS[4], since, ARGV[10])
    redis.call('EXPIRE', KEYS[4], ARGV[4])
  else
    redis.call('ZREM', KEYS[4], ARGV[10])
  end
end
redis.call('DEL', KEYS[2])
return withdrawn`);

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

  #keys(email: string): { lease: string; applied: string; held: string } {
    const base = `${this.#prefix}:email:${hashEmail(email)}`;
    return { lease: `${base}:lease`, applied: `${base}:applied`, held: `${base}:held` };
  }

  /** Addresses held "in conversation", scored by since when (Gladly ms). */
  get #heldIndex(): string {
    return `${this.#prefix}:held`;
  }

  /** Where the conversations' state lives (see ConversationState): built into keys inside Lua. */
  get #conversationPrefix(): string {
    return `${this.#prefix}:conv:`;
  }

  /**
   * `acquire` for a delivery: takes the lease, and in the same Redis step records the
   * transition for its conversation at this address and decides whether it flips the profile
   * (the address is "in conversation" while any conversation that reached it is open) or goes
   * as history (`backfill`). A flip claims the mark and the profile value before the request;
   * `withdrawHeld` puts them back when Klaviyo did not record the event.
   */
  async acquireHeld(
    email: string,
    holder: string,
    candidate: AppliedMark,
    part: ConversationPart,
  ): Promise<HeldLeaseResult> {
    const k = this.#keys(email);
    const answer = await runScript(
      this.#redis,
      ACQUIRE_HELD,
      [k.lease, k.applied, k.held, this.#heldIndex],
      [
        holder,
        this.leaseMs,
        Date.parse(candidate.occurredAt),
        candidate.eventId,
        this.#ttl,
        part.kind === 'started' ? 'o' : 'c',
        part.conversationId,
        this.#conversationPrefix,
        part.release ? '1' : '',
        email.trim(),
        hashEmail(email),
        part.customerId,
      ],
    );
    if (!Array.isArray(answer)) return { acquired: false };
    const text = (i: number) => String(answer[i] ?? '');
    return {
      acquired: true,
      newest: text(1) ? parseMark(text(1)) : null,
      claimed: Number(answer[2]) === 1,
      backfill: Number(answer[3]) === 1,
      undo: {
        conversationId: part.conversationId,
        propBefore: text(4),
        entryBefore: text(5),
        entryAfter: text(6),
        propAfter: text(7),
      },
    };
  }

  /**
   * Klaviyo did not record the event of an `acquireHeld`: while `holder` still has the lease,
   * puts back the mark, the conversation's entry and the profile value it changed, and releases
   * the lease. Answers whether the mark's claim was withdrawn.
   */
  async withdrawHeld(
    email: string,
    holder: string,
    claimed: AppliedMark | null,
    before: AppliedMark | null,
    undo: HeldUndo,
  ): Promise<boolean> {
    const k = this.#keys(email);
    const answer = await runScript(
      this.#redis,
      WITHDRAW_HELD,
      [k.applied, k.lease, k.held, this.#heldIndex],
      [
        holder,
        claimed ? formatMark(claimed) : '',
        before ? formatMark(before) : '',
        this.#ttl,
        undo.conversationId,
        undo.entryAfter,
        undo.entryBefore,
        undo.propAfter,
        undo.propBefore,
        hashEmail(email),
      ],
    );
    return Number(answer) === 1;
  }

  /** How many addresses are held "in conversation" since before `before` (the index: cheap). */
  async countHeldSince(before: Date): Promise<number> {
    return this.#redis.zcount(this.#heldIndex, '-inf', before.getTime());
  }

  /** Addresses held "in conversation" since before `before` (Gladly time), oldest first. */
  async heldSince(before: Date, limit = 1_000): Promise<HeldAddress[]> {
    const ids = await this.#redis.zrangebyscore(this.#heldIndex, '-inf', before.getTime(), 'LIMIT', 0, limit);
    const out: HeldAddress[] = [];
    for (const id of ids) {
      const held = await this.heldAddress(id);
      if (held) out.push(held);
      // The index only follows the profile value; an entry whose state expired is dropped here.
      else await this.#redis.zrem(this.#heldIndex, id);
    }
    return out;
  }

  /** One held address by its id (the email hash), or undefined when it is not held. */
  async heldAddress(id: string): Promise<HeldAddress | undefined> {
    if (!/^[0-9a-f]{24}$/.test(id)) return undefined;
    const fields = await this.#redis.hgetall(`${this.#prefix}:email:${id}:held`);
    const email = fields.a;
    if (!email || !fields.p?.startsWith('1|') || !fields.s) return undefined;
    const conversations: string[] = [];
    for (const [field, value] of Object.entries(fields)) {
      if (field.startsWith('c:') && value.startsWith('o|')) conversations.push(field.slice(2));
    }
    return {
      id,
      email,
      since: new Date(Number(fields.s)).toISOString(),
      customerId: fields.u ?? '',
      conversations: conversations.sort(),
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
    const k = this.#keys(email);
    const answer = await runScript(
      this.#redis,
      ACQUIRE,
      [k.lease, k.applied],
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
    const k = this.#keys(email);
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

function formatMark(mark: AppliedMark): string {
  return `${Date.parse(mark.occurredAt)}|${mark.eventId}`;
}

function parseMark(raw: string): AppliedMark {
  const sep = raw.indexOf('|');
  return { occurredAt: new Date(Number(raw.slice(0, sep))).toISOString(), eventId: raw.slice(sep + 1) };
}
