import { hashEmail } from '@gk/domain';
import type { RedisConnection, TransitionJobData } from '@gk/queue';
import { z } from 'zod';
import { defineScript, runScript } from './redis-script.js';

/**
 * What the bridge remembers per Gladly conversation, so that its close reaches every address its
 * start reached, even after the customer's addresses changed or the customer was merged away
 * (Gladly's own integration sends a close to the current addresses only, leaving an address that
 * was removed mid-conversation "in conversation" for good).
 *
 * One hash per conversation, `…:state:conv:{conversationId}` (under the queue prefix, so on a
 * cluster it shares the hash slot of the per-email state that reads it from Lua):
 * - `e:<email pseudonym>` = the address (keyed, as the per-email keys: see PseudonymKey), for every address a transition of this conversation was
 *   fanned out to (a start that arrived after a newer close excepted), and those inherited from
 *   conversations merged into it;
 * - `fan` = 'k|ms|id', the newest transition fanned out (k: o started, c closed);
 * - `close` = that transition and the customer it was fanned out for (JSON), while it is a close:
 *   a merge processed after the close still closes what the source conversation opened;
 * - `into` = the conversation it was merged into (the per-email state counts it as that one).
 * Kept as long as the per-email ordering marks (30 days from the last change).
 */
export interface ConversationStateOptions {
  /** The per-email state's prefix (`<queue prefix>:state`). */
  prefix: string;
  ttlSeconds?: number;
  /** The key of the email pseudonyms (see PseudonymKey): the same as the per-email state's. */
  pseudonymKey: () => Promise<string>;
}

/** A close as the conversation remembers it. */
const RememberedClose = z.object({
  transition: z.object({
    eventId: z.string().min(1),
    kind: z.literal('closed'),
    gladlyType: z.literal('CONVERSATION/CLOSED'),
    customerId: z.string().min(1),
    conversationId: z.string().min(1),
    occurredAt: z.string().min(1),
    receivedAt: z.string().min(1),
  }),
  resolvedCustomerId: z.string().min(1),
});
export type RememberedClose = z.infer<typeof RememberedClose>;

export interface MergeResult {
  /** Addresses the source conversation had opened (now the destination's too). */
  inherited: string[];
  /** The destination's newest fanned-out transition, when it is a close: it must reach them. */
  closedBy: RememberedClose | undefined;
}

/**
 * KEYS: conversation. ARGV: ms, event id, kind ('o'|'c'), ttl s, close JSON ('' for a start),
 * key prefix, then pairs of (email hash, address).
 * Stores the transition as the newest fanned out when it is newer. The addresses are remembered
 * as reached by the conversation, here and in every conversation it was merged into; except
 * those of a start older than a close already fanned out (it arrived late: the conversation is
 * closed, so its deliveries to addresses the close never reached go as history). Answers the
 * addresses the conversation remembers (for a close, the ones it must also reach).
 */
const RECORD_FAN_OUT = defineScript(`
local function newer(ams, aid, cur)
  if not cur then return true end
  local rest = string.sub(cur, 3)
  local sep = string.find(rest, '|', 1, true)
  local bms, bid = tonumber(string.sub(rest, 1, sep - 1)), string.sub(rest, sep + 1)
  return ams > bms or (ams == bms and aid > bid)
end
local ms, id, kind = tonumber(ARGV[1]), ARGV[2], ARGV[3]
local fan = redis.call('HGET', KEYS[1], 'fan')
local latest = newer(ms, id, fan)
if latest then
  redis.call('HSET', KEYS[1], 'fan', kind .. '|' .. ARGV[1] .. '|' .. id)
  if kind == 'c' then redis.call('HSET', KEYS[1], 'close', ARGV[5]) else redis.call('HDEL', KEYS[1], 'close') end
end
-- A start older than a close already fanned out opens nothing: its conversation was closed since.
if kind == 'c' or latest or string.sub(fan, 1, 1) == 'o' then
  local targets = {KEYS[1]}
  local c = redis.call('HGET', KEYS[1], 'into')
  for _ = 1, 8 do
    if not c then break end
    local key = ARGV[6] .. c
    if key == targets[#targets] then break end
    table.insert(targets, key)
    c = redis.call('HGET', key, 'into')
  end
  for _, key in ipairs(targets) do
    for i = 7, #ARGV, 2 do redis.call('HSET', key, 'e:' .. ARGV[i], ARGV[i + 1]) end
    redis.call('EXPIRE', key, ARGV[4])
  end
end
redis.call('EXPIRE', KEYS[1], ARGV[4])
local out = {}
local flat = redis.call('HGETALL', KEYS[1])
for i = 1, #flat, 2 do
  if string.sub(flat[i], 1, 2) == 'e:' then table.insert(out, flat[i + 1]) end
end
return out`);

/**
 * KEYS: source, destination. ARGV: destination id, ttl s.
 * The source conversation counts as the destination from now on (`into`), and the destination
 * remembers the source's addresses. Answers {the destination's close JSON or '', addresses...}.
 */
const MERGE = defineScript(`
redis.call('HSET', KEYS[1], 'into', ARGV[1])
local out = {redis.call('HGET', KEYS[2], 'close') or ''}
local flat = redis.call('HGETALL', KEYS[1])
for i = 1, #flat, 2 do
  if string.sub(flat[i], 1, 2) == 'e:' then
    redis.call('HSET', KEYS[2], flat[i], flat[i + 1])
    table.insert(out, flat[i + 1])
  end
end
redis.call('EXPIRE', KEYS[1], ARGV[2])
redis.call('EXPIRE', KEYS[2], ARGV[2])
return out`);

export class ConversationState {
  readonly #redis: RedisConnection;
  readonly #prefix: string;
  readonly #ttl: number;
  readonly #pseudonymKey: () => Promise<string>;

  constructor(redis: RedisConnection, options: ConversationStateOptions) {
    this.#redis = redis;
    this.#prefix = `${options.prefix}:conv:`;
    this.#ttl = options.ttlSeconds ?? 30 * 24 * 3600;
    this.#pseudonymKey = options.pseudonymKey;
  }

  #key(conversationId: string): string {
    return `${this.#prefix}${conversationId}`;
  }

  /**
   * Called by the fan-out before it adds the deliveries (so a close fanned out later always finds
   * the addresses): remembers `emails` as reached by the conversation and answers every address
   * it remembers, which a close must reach besides the current ones.
   */
  async recordFanOut(t: TransitionJobData, emails: readonly string[], resolvedCustomerId: string) {
    const kind = t.kind === 'started' ? 'o' : 'c';
    const close: RememberedClose | undefined =
      t.kind === 'closed'
        ? {
            transition: { ...t, kind: 'closed', gladlyType: 'CONVERSATION/CLOSED' },
            resolvedCustomerId,
          }
        : undefined;
    const key = await this.#pseudonymKey();
    const pairs = emails.flatMap((e) => [hashEmail(e, key), e.trim()]);
    const answer = await runScript(
      this.#redis,
      RECORD_FAN_OUT,
      [this.#key(t.conversationId)],
      [
        Date.parse(t.occurredAt),
        t.eventId,
        kind,
        this.#ttl,
        close ? JSON.stringify(close) : '',
        this.#prefix,
        ...pairs,
      ],
    );
    return Array.isArray(answer) ? answer.map(String) : [];
  }

  /** A merge joined `source` into `destination` (Gladly's CUSTOMER/MERGED conversations). */
  async merge(source: string, destination: string): Promise<MergeResult> {
    if (source === destination) return { inherited: [], closedBy: undefined };
    const answer = await runScript(
      this.#redis,
      MERGE,
      [this.#key(source), this.#key(destination)],
      [destination, this.#ttl],
    );
    const [close = '', ...inherited] = Array.isArray(answer) ? answer.map(String) : [];
    return { inherited, closedBy: parseClose(close) };
  }

  /** The addresses a conversation remembers (tests and the CLI). */
  async remembered(conversationId: string): Promise<string[]> {
    const fields = await this.#redis.hgetall(this.#key(conversationId));
    return Object.entries(fields)
      .filter(([f]) => f.startsWith('e:'))
      .map(([, v]) => v);
  }
}

function parseClose(raw: string): RememberedClose | undefined {
  if (raw === '') return undefined;
  try {
    const parsed = RememberedClose.safeParse(JSON.parse(raw));
    return parsed.success ? parsed.data : undefined;
  } catch {
    return undefined;
  }
}
