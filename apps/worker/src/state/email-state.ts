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
 *
 * Deliveries go through the held variants (`acquireHeld`, `settleHeld`, `withdrawHeld`): the same
 * lease and claims, plus which conversations hold the address "in conversation" (see
 * ACQUIRE_HELD). What a transition changes there is undone per transition too: the values it
 * replaced are kept under its event id until it settles, so whichever attempt learns Klaviyo
 * refused it puts them back.
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
      /** The newest mark before this call: applied, or claimed by another transition. */
      newest: AppliedMark | null;
      /** This transition is newer than that mark and now claimed for the email. */
      claimed: boolean;
      /**
       * Sent as history only (`backfill: true`, no profile properties): older than what is known
       * of its conversation at this address, older than the email's mark without changing the
       * profile, or a close while another open conversation still holds the address.
       */
      backfill: boolean;
    };

/** An address the bridge holds "in conversation" (for `profiles stuck`). */
export interface HeldAddress {
  /** The address's keyed pseudonym (the id operators name in `--close`). */
  id: string;
  email: string;
  /** Gladly time of the transition that set it "in conversation". */
  since: string;
  customerId: string;
  /** The conversations still open for it, as the bridge knows them. */
  conversations: string[];
}

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

/**
 * Which conversations hold an address, and what the profile was last told. In the email's `held`
 * hash: `c:<conversation>` = 'k|ms|id', the newest transition of that conversation delivered to
 * the address (k: o open, c closed); `p` = 'v|id', the value of `In Gladly Conversation` last sent
 * (1 or 0) and by which event; `s` = since when it is 1 (Gladly ms); `a` the address and `u` the
 * customer (kept only to show and close it from the CLI). A conversation merged into another
 * (its hash's `into`) counts as that one: the newest entry of the two decides.
 *
 * Undo, per transition: `ue:<event id>` = the entry its conversation had before the event
 * replaced it ('' = none), `up:<event id>` = the profile value before ('' = none). Written when
 * the event replaces a value that is not its own (so a retry keeps the first attempt's), removed
 * when the transition settles (SETTLE_HELD) or is withdrawn (WITHDRAW_HELD).
 */
const HELD_HELPERS = `
local function split(v)
  local sep = string.find(v, '|', 1, true)
  return tonumber(string.sub(v, 1, sep - 1)), string.sub(v, sep + 1)
end
local function newer(ams, aid, bms, bid)
  return ams > bms or (ams == bms and aid > bid)
end
local function entry_by(v, id)
  if not v then return false end
  local _, eid = split(string.sub(v, 3))
  return eid == id
end
local function prop_by(v, id)
  return v and string.sub(v, 3) == id
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
 * KEYS: lease, applied, claims, held, held index, and the lease and mark keys of versions before
 * keyed pseudonyms. ARGV: holder, lease ms, candidate ms, candidate id, ttl s, kind ('o'|'c'),
 * conversation, conversation key prefix, release ('1'|''), email, email pseudonym, customer id.
 * Takes the lease as ACQUIRE does and reads the newest mark the same way (applied, an older
 * version's, the top claim of another transition), then decides in the same step:
 * - the transition is stale in its conversation (an older one than that conversation's newest at
 *   this address, or a start older than a close of its conversation that never reached this
 *   address): history only;
 * - else it becomes that conversation's entry, and the address is "in conversation" iff any of
 *   its conversations' newest entry is open. The event flips the profile only when its value is
 *   that state and it is newer than the email's mark, or the profile was last told otherwise
 *   (or by this very event: a retry decides as the first attempt did);
 * - otherwise history only (a close while another conversation still holds the address).
 * A flip claims the transition (when newer than the mark) and the profile value; the held index
 * follows. The values replaced are kept for the undo (see HELD_HELPERS).
 * Answers 0 when another holder has the lease, else {1, mark before, claimed, backfill}.
 */
const ACQUIRE_HELD = defineScript(`${MARKS}${HELD_HELPERS}
local legacyHolder = redis.call('GET', KEYS[6])
if legacyHolder and legacyHolder ~= ARGV[1] then return 0 end
if not redis.call('SET', KEYS[1], ARGV[1], 'PX', ARGV[2], 'NX') then
  if redis.call('GET', KEYS[1]) ~= ARGV[1] then return 0 end
  redis.call('PEXPIRE', KEYS[1], ARGV[2])
end
local ms, id, kind, conv, prefix = tonumber(ARGV[3]), ARGV[4], ARGV[6], ARGV[7], ARGV[8]
local cur = newer_mark(redis.call('GET', KEYS[2]), redis.call('GET', KEYS[7]))
local top = redis.call('ZREVRANGE', KEYS[3], 0, 1, 'WITHSCORES')
for i = 1, #top, 2 do
  if top[i] ~= id then
    cur = newer_mark(cur, string.format('%d', tonumber(top[i + 1])) .. '|' .. top[i])
    break
  end
end
local curId
if cur then curId = string.sub(cur, string.find(cur, '|', 1, true) + 1) end
local flat = redis.call('HGETALL', KEYS[4])
local fields = {}
for i = 1, #flat, 2 do fields[flat[i]] = flat[i + 1] end
local entryField = 'c:' .. conv
local entryBefore = fields[entryField]
local group = resolve(prefix, conv)
local groups = {}
for f, v in pairs(fields) do
  if string.sub(f, 1, 2) == 'c:' then
    if ARGV[9] == '1' then
      redis.call('HDEL', KEYS[4], f)
    else
      local g = resolve(prefix, string.sub(f, 3))
      local eMs, eId = split(string.sub(v, 3))
      local e = groups[g]
      if not e or newer(eMs, eId, e.ms, e.id) then groups[g] = {ms = eMs, id = eId, k = string.sub(v, 1, 1)} end
    end
  end
end
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
if not stale then
  if not entry_by(entryBefore, id) then redis.call('HSET', KEYS[4], 'ue:' .. id, entryBefore or '') end
  redis.call('HSET', KEYS[4], entryField, kind .. '|' .. ARGV[3] .. '|' .. id)
  groups[group] = {ms = ms, id = id, k = kind}
end
local open = false
for _, e in pairs(groups) do
  if e.k == 'o' then open = true end
end
local value = kind == 'o'
local want = value and '1' or '0'
local prop = fields['p']
local pv
if prop then pv = string.sub(prop, 1, 1) end
local markNewer = newer_than(cur, ARGV[3], id)
local backfill = 1
if not stale and value == open then
  if markNewer or curId == id or (prop and (pv ~= want or prop_by(prop, id))) then backfill = 0 end
end
local claimed = 0
if backfill == 0 then
  if markNewer then
    redis.call('ZADD', KEYS[3], ARGV[3], id)
    redis.call('EXPIRE', KEYS[3], ARGV[5])
    claimed = 1
  end
  if not prop_by(prop, id) then redis.call('HSET', KEYS[4], 'up:' .. id, prop or '') end
  redis.call('HSET', KEYS[4], 'p', want .. '|' .. id)
  if value then
    local since = fields['s']
    if pv ~= '1' or not since then
      since = ARGV[3]
      redis.call('HSET', KEYS[4], 's', since)
    end
    redis.call('HSET', KEYS[4], 'a', ARGV[10], 'u', ARGV[12])
    redis.call('ZADD', KEYS[5], since, ARGV[11])
    redis.call('EXPIRE', KEYS[5], ARGV[5])
  else
    redis.call('ZREM', KEYS[5], ARGV[11])
  end
end
redis.call('EXPIRE', KEYS[4], ARGV[5])
return {1, cur or '', claimed, backfill}`);

/**
 * KEYS: applied, lease, claims, held. ARGV: occurred-at ms, event id, ttl seconds, holder,
 * '1' when Klaviyo recorded it as a flip (not as history).
 * Klaviyo recorded the event (a 202 on any attempt): a flip's mark is stored if newer; the
 * transition's claim goes, its held changes stand (their undo is dropped), and the holder's
 * lease is released.
 */
const SETTLE_HELD = defineScript(`${MARKS}
if ARGV[5] == '1' then
  if newer_than(redis.call('GET', KEYS[1]), ARGV[1], ARGV[2]) then
    redis.call('SET', KEYS[1], ARGV[1] .. '|' .. ARGV[2], 'EX', ARGV[3])
  else
    redis.call('EXPIRE', KEYS[1], ARGV[3])
  end
end
redis.call('ZREM', KEYS[3], ARGV[2])
redis.call('HDEL', KEYS[4], 'ue:' .. ARGV[2], 'up:' .. ARGV[2])
if redis.call('GET', KEYS[2]) == ARGV[4] then redis.call('DEL', KEYS[2]) end
return 1`);

/**
 * KEYS: lease, claims, held, held index. ARGV: holder, event id, conversation, ttl s, email
 * pseudonym. WITHDRAW for a transition of ACQUIRE_HELD, whichever attempt of it made the changes:
 * only while the holder still has the lease, removes its claim, puts back the conversation's
 * entry and the profile value it replaced (each only while it still carries this event's id),
 * follows with the held index, drops the undo and releases the lease. Answers 1 when anything
 * was withdrawn.
 */
const WITHDRAW_HELD = defineScript(`${HELD_HELPERS}
if redis.call('GET', KEYS[1]) ~= ARGV[1] then return 0 end
local id = ARGV[2]
local withdrawn = redis.call('ZREM', KEYS[2], id)
local field = 'c:' .. ARGV[3]
local ue = redis.call('HGET', KEYS[3], 'ue:' .. id)
if ue then
  if entry_by(redis.call('HGET', KEYS[3], field), id) then
    if ue ~= '' then redis.call('HSET', KEYS[3], field, ue) else redis.call('HDEL', KEYS[3], field) end
    withdrawn = 1
  end
  redis.call('HDEL', KEYS[3], 'ue:' .. id)
end
local up = redis.call('HGET', KEYS[3], 'up:' .. id)
if up then
  if prop_by(redis.call('HGET', KEYS[3], 'p'), id) then
    if up ~= '' then redis.call('HSET', KEYS[3], 'p', up) else redis.call('HDEL', KEYS[3], 'p') end
    local since = redis.call('HGET', KEYS[3], 's')
    if string.sub(up, 1, 1) == '1' and since then
      redis.call('ZADD', KEYS[4], since, ARGV[5])
      redis.call('EXPIRE', KEYS[4], ARGV[4])
    else
      redis.call('ZREM', KEYS[4], ARGV[5])
    end
    withdrawn = 1
  end
  redis.call('HDEL', KEYS[3], 'up:' .. id)
end
redis.call('DEL', KEYS[1])
return withdrawn`);

interface EmailKeys {
  lease: string;
  applied: string;
  claims: string;
  /** The conversations holding the address (see ACQUIRE_HELD). */
  held: string;
  /** The address's keyed pseudonym (the held index's member). */
  pseudonym: string;
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
    const pseudonym = hashEmail(email, await this.#pseudonymKey());
    const base = `${this.#prefix}:email:${pseudonym}`;
    const legacy = `${this.#prefix}:email:${hashEmail(email, LEGACY_EMAIL_HASH_KEY)}`;
    return {
      lease: `${base}:lease`,
      applied: `${base}:applied`,
      claims: `${base}:claims`,
      held: `${base}:held`,
      pseudonym,
      legacyLease: `${legacy}:lease`,
      legacyApplied: `${legacy}:applied`,
    };
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
   * as history (`backfill`). A flip claims the transition (when newer than the mark) and the
   * profile value before the request; `settleHeld` keeps them once Klaviyo recorded the event,
   * `withdrawHeld` puts back what the transition replaced when Klaviyo refused it.
   */
  async acquireHeld(
    email: string,
    holder: string,
    candidate: AppliedMark,
    part: ConversationPart,
  ): Promise<HeldLeaseResult> {
    const k = await this.#keys(email);
    const answer = await runScript(
      this.#redis,
      ACQUIRE_HELD,
      [k.lease, k.applied, k.claims, k.held, this.#heldIndex, k.legacyLease, k.legacyApplied],
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
        k.pseudonym,
        part.customerId,
      ],
    );
    if (!Array.isArray(answer)) return { acquired: false };
    const raw = String(answer[1] ?? '');
    return {
      acquired: true,
      newest: raw ? parseMark(raw) : null,
      claimed: Number(answer[2]) === 1,
      backfill: Number(answer[3]) === 1,
    };
  }

  /**
   * Klaviyo recorded `mark` (on this attempt or, for all we know, an earlier one): as a flip
   * (`applied`) its mark is stored if newer; either way its claim goes and the held changes it
   * made stand. Releases `holder`'s lease.
   */
  async settleHeld(
    email: string,
    holder: string,
    mark: AppliedMark,
    recorded: 'applied' | 'backfill',
  ): Promise<void> {
    const k = await this.#keys(email);
    await runScript(
      this.#redis,
      SETTLE_HELD,
      [k.applied, k.lease, k.claims, k.held],
      [
        String(Date.parse(mark.occurredAt)),
        mark.eventId,
        String(this.#ttl),
        holder,
        recorded === 'applied' ? '1' : '',
      ],
    );
  }

  /**
   * Klaviyo did not record `mark` (a 4xx, or the request never left): while `holder` still has
   * the lease, removes the transition's claim and puts back the conversation's entry and the
   * profile value the transition replaced, whichever of its attempts changed them (each only
   * while it still carries this event), and releases the lease. Answers whether anything was
   * withdrawn.
   */
  async withdrawHeld(
    email: string,
    holder: string,
    mark: AppliedMark,
    conversationId: string,
  ): Promise<boolean> {
    const k = await this.#keys(email);
    const answer = await runScript(
      this.#redis,
      WITHDRAW_HELD,
      [k.lease, k.claims, k.held, this.#heldIndex],
      [holder, mark.eventId, conversationId, this.#ttl, k.pseudonym],
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

  /** One held address by its id (its keyed pseudonym), or undefined when it is not held. */
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
