import type { RedisConnection } from '@gk/queue';
import { defineScript, runScript } from './redis-script.js';

/**
 * A token bucket in Redis, shared by every worker: `burst` tokens at most, refilled at
 * `perMinute / 60` per second (Klaviyo's Bulk Create Events: 10/s burst, 150/min steady). Time is
 * Redis' own (`TIME`), so workers' clocks do not matter. Answers 0 when a token was taken, else
 * the ms until one will be there.
 */
const TAKE = defineScript(`
local key = KEYS[1]
local rate = tonumber(ARGV[1]) / 60000
local burst = tonumber(ARGV[2])
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local state = redis.call('HMGET', key, 'tokens', 'at')
local tokens = tonumber(state[1]) or burst
local at = tonumber(state[2]) or now
if now > at then tokens = math.min(burst, tokens + (now - at) * rate) end
if now < at then now = at end
local ttl = math.ceil(burst / rate) + 1000
if tokens >= 1 then
  redis.call('HSET', key, 'tokens', tostring(tokens - 1), 'at', now)
  redis.call('PEXPIRE', key, ttl)
  return 0
end
redis.call('HSET', key, 'tokens', tostring(tokens), 'at', now)
redis.call('PEXPIRE', key, ttl)
return math.ceil((1 - tokens) / rate)
`);

export interface BulkRateOptions {
  /** KLAVIYO_BULK_RATE_LIMIT_PER_MINUTE. */
  perMinute: number;
  /** Requests allowed at once (Klaviyo: 10), never more than the minute's. */
  burst?: number;
}

/** Klaviyo's burst for Bulk Create Events: 10 requests in a second. */
export const BULK_BURST = 10;

/** The global limit on Bulk Create Events requests, across every worker. */
export class BulkRateLimit {
  readonly #redis: RedisConnection;
  readonly #key: string;
  readonly #perMinute: number;
  readonly #burst: number;

  /** `key` must share the hash tag of the worker's other state keys (it does under `prefix`). */
  constructor(redis: RedisConnection, key: string, options: BulkRateOptions) {
    this.#redis = redis;
    this.#key = key;
    this.#perMinute = options.perMinute;
    this.#burst = Math.max(1, Math.min(options.burst ?? BULK_BURST, options.perMinute));
  }

  /** Takes one request's token: 0 when taken, else how long until one is there (nothing taken). */
  async take(): Promise<number> {
    const answer = await runScript(this.#redis, TAKE, [this.#key], [this.#perMinute, this.#burst]);
    return Number(answer);
  }
}
