import type { CustomerEmailsResult } from '@gk/gladly';
import type { RedisConnection } from '@gk/queue';
import { z } from 'zod';
import { defineScript, runScript } from './redis-script.js';

/**
 * Gladly allows 10 GET/s per organisation, shared with every other integration, and a
 * conversation's create and close look up the same customer. So a lookup's result (the emails,
 * the customer id it resolved to after merges, or "not found") is kept in Redis for a while, and
 * dropped when Gladly says the customer changed (CUSTOMER_PROFILE/UPDATED, CUSTOMER/MERGED: see
 * the customer-changes queue).
 *
 * The race: a lookup that started before an invalidation must not store what it read afterwards
 * (it may be the old emails). Every invalidation leaves a mark with Redis' clock; a miss hands out
 * a ticket with the same clock; the write stores only if no customer it depends on (the id looked
 * up, and the id it resolved to) was invalidated since the ticket, and the ticket is recent. All
 * three steps are Lua scripts, atomic in Redis, timed by Redis' own clock (no clock skew between
 * workers). An entry that resolved through a merge is also listed under the surviving id, so a
 * change to the survivor drops it too.
 *
 * Keys (all under the queue prefix, so on a cluster they share one hash slot):
 * `…:cust:e:{id}` the entry (JSON), `…:cust:d:{id}` ids whose entry resolved to this id,
 * `…:cust:i:{id}` when this id was last invalidated (µs).
 */
export interface CustomerCacheOptions {
  /** The queue prefix (hash-tagged on a cluster). */
  prefix: string;
  /** How long a found customer is kept; 0 turns the cache off. */
  ttlSeconds: number;
  /** How long "not found" is kept (a 404 is rare and may be a profile about to appear). Default min(60, ttl). */
  notFoundTtlSeconds?: number;
  /** A ticket older than this cannot store (a lookup that long was frozen, not slow). Default 120 s. */
  maxLookupMs?: number;
}

export type CacheRead = { hit: true; value: CustomerEmailsResult } | { hit: false; ticket: string };

const CachedCustomer = z.discriminatedUnion('status', [
  z.object({
    status: z.literal('found'),
    customerId: z.string().min(1),
    emails: z.array(z.string()),
    hops: z.number().int().min(0),
  }),
  z.object({ status: z.literal('not_found'), customerId: z.string().min(1) }),
]);

/** Redis' clock in µs (TIME), as a string: a ticket or a mark. */
const NOW = `local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000000 + tonumber(t[2])`;

/** KEYS: entry. Answers {1, entry} on a hit, {0, now} on a miss. */
const READ = defineScript(`${NOW}
local v = redis.call('GET', KEYS[1])
if v then return {1, v} end
return {0, string.format('%.0f', now)}`);

/**
 * KEYS: entry, own mark, resolved id's mark, resolved id's dependents, resolved id's entry.
 * ARGV: ticket µs, entry JSON, ttl s, max lookup µs, own id, the resolved id's own entry JSON
 * ('' when the lookup did not go through a merge).
 * Stores nothing (answers 0) when the ticket is too old or either id was invalidated since. A
 * lookup that followed a merge also stores the survivor's entry: its own lookup would answer
 * the same emails.
 */
const WRITE = defineScript(`${NOW}
local ticket = tonumber(ARGV[1])
if now - ticket > tonumber(ARGV[4]) then return 0 end
for i = 2, 3 do
  local mark = redis.call('GET', KEYS[i])
  if mark and tonumber(mark) >= ticket then return 0 end
end
redis.call('SET', KEYS[1], ARGV[2], 'EX', ARGV[3])
if ARGV[6] ~= '' then
  redis.call('SADD', KEYS[4], ARGV[5])
  redis.call('EXPIRE', KEYS[4], ARGV[3])
  redis.call('SET', KEYS[5], ARGV[6], 'EX', ARGV[3])
end
return 1`);

/**
 * KEYS: entry, dependents, mark. ARGV: mark lifetime ms, entry key prefix.
 * Marks the id invalidated now, drops its entry and the entries that resolved to it through a
 * merge. The dependents' keys are built here from the same prefix (one hash slot). Answers how
 * many entries were dropped.
 */
const INVALIDATE = defineScript(`${NOW}
redis.call('SET', KEYS[3], string.format('%.0f', now), 'PX', ARGV[1])
local dropped = redis.call('DEL', KEYS[1])
for _, id in ipairs(redis.call('SMEMBERS', KEYS[2])) do
  dropped = dropped + redis.call('DEL', ARGV[2] .. id)
end
redis.call('DEL', KEYS[2])
return dropped`);

export class CustomerCache {
  readonly #redis: RedisConnection;
  readonly #base: string;
  readonly #ttl: number;
  readonly #notFoundTtl: number;
  readonly #maxLookupMs: number;

  constructor(redis: RedisConnection, options: CustomerCacheOptions) {
    this.#redis = redis;
    this.#base = `${options.prefix}:cust`;
    this.#ttl = options.ttlSeconds;
    this.#notFoundTtl = options.notFoundTtlSeconds ?? Math.min(60, options.ttlSeconds);
    this.#maxLookupMs = options.maxLookupMs ?? 120_000;
  }

  get enabled(): boolean {
    return this.#ttl > 0;
  }

  #entry(id: string) {
    return `${this.#base}:e:${id}`;
  }
  #dependents(id: string) {
    return `${this.#base}:d:${id}`;
  }
  #mark(id: string) {
    return `${this.#base}:i:${id}`;
  }

  /** A hit, or a miss with the ticket to hand to {@link write} after looking the customer up. */
  async read(customerId: string): Promise<CacheRead> {
    if (!this.enabled) return { hit: false, ticket: '' };
    const answer = await runScript(this.#redis, READ, [this.#entry(customerId)], []);
    const [flag, payload] = Array.isArray(answer) ? answer : [];
    if (Number(flag) === 1) {
      const parsed = parseEntry(String(payload));
      // An entry this code cannot read (written by another version) is a miss, never an error.
      if (parsed) return { hit: true, value: parsed };
      return { hit: false, ticket: await this.#ticket() };
    }
    return { hit: false, ticket: String(payload) };
  }

  async #ticket(): Promise<string> {
    const [seconds, micros] = await this.#redis.time();
    return String(Number(seconds) * 1_000_000 + Number(micros));
  }

  /**
   * Stores a lookup's result unless a customer it depends on was invalidated after `ticket` was
   * handed out. Answers whether it was stored.
   */
  async write(customerId: string, value: CustomerEmailsResult, ticket: string): Promise<boolean> {
    if (!this.enabled || ticket === '') return false;
    const ttl = value.status === 'found' ? this.#ttl : this.#notFoundTtl;
    if (ttl <= 0) return false;
    const resolved = value.customerId;
    const survivorEntry =
      resolved === customerId ? '' : JSON.stringify(value.status === 'found' ? { ...value, hops: 0 } : value);
    const stored = await runScript(
      this.#redis,
      WRITE,
      [
        this.#entry(customerId),
        this.#mark(customerId),
        this.#mark(resolved),
        this.#dependents(resolved),
        this.#entry(resolved),
      ],
      [ticket, JSON.stringify(value), ttl, this.#maxLookupMs * 1000, customerId, survivorEntry],
    );
    return Number(stored) === 1;
  }

  /** Drops what is cached for these customers (and entries that resolved to them). Answers how many entries went. */
  async invalidate(customerIds: readonly string[]): Promise<number> {
    let dropped = 0;
    // The mark must outlive any lookup still allowed to store (maxLookupMs), with margin.
    const markMs = this.#maxLookupMs + 60_000;
    for (const id of customerIds) {
      const n = await runScript(
        this.#redis,
        INVALIDATE,
        [this.#entry(id), this.#dependents(id), this.#mark(id)],
        [markMs, `${this.#base}:e:`],
      );
      dropped += Number(n);
    }
    return dropped;
  }
}

function parseEntry(raw: string): CustomerEmailsResult | undefined {
  try {
    const parsed = CachedCustomer.safeParse(JSON.parse(raw));
    return parsed.success ? parsed.data : undefined;
  } catch {
    return undefined;
  }
}
