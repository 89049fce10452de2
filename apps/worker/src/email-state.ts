import { type AppliedMark, hashEmail } from '@gk/domain';
import type { RedisConnection } from '@gk/queue';

/**
 * Per-email state in Redis: a lease so two deliveries for one email never run at once, and the
 * newest transition applied to it, so an older one is sent as backfill. Keys carry a hash of the
 * email, never the address.
 */
export interface EmailStateOptions {
  prefix: string;
  /** How long the applied mark is remembered (older marks are forgotten: 30 days by default). */
  stateTtlSeconds?: number;
  /** Lease lifetime; longer than a Klaviyo request's timeout so it never lapses mid-request. */
  leaseMs?: number;
}

const RELEASE = `if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('DEL', KEYS[1]) end return 0`;

// Stores the mark only when it is newer than the stored one (same tie-break as isStale).
const SET_IF_NEWER = `
local cur = redis.call('GET', KEYS[1])
if cur then
  local sep = string.find(cur, '|', 1, true)
  local curMs = tonumber(string.sub(cur, 1, sep - 1))
  local curId = string.sub(cur, sep + 1)
  local newMs = tonumber(ARGV[1])
  if newMs < curMs or (newMs == curMs and ARGV[2] <= curId) then
    redis.call('EXPIRE', KEYS[1], ARGV[3])
    return 0
  end
end
redis.call('SET', KEYS[1], ARGV[1] .. '|' .. ARGV[2], 'EX', ARGV[3])
return 1`;

export class EmailState {
  readonly #redis: RedisConnection;
  readonly #prefix: string;
  readonly #ttl: number;
  readonly #leaseMs: number;

  constructor(redis: RedisConnection, options: EmailStateOptions) {
    this.#redis = redis;
    this.#prefix = options.prefix;
    this.#ttl = options.stateTtlSeconds ?? 30 * 24 * 3600;
    this.#leaseMs = options.leaseMs ?? 30_000;
  }

  #key(kind: 'lease' | 'applied', email: string): string {
    return `${this.#prefix}:email:${hashEmail(email)}:${kind}`;
  }

  /**
   * Takes the email's lease for `holder` (a job id). The same holder may take it again: a job
   * whose worker was killed mid-delivery must not wait for its own stale lease.
   */
  async acquire(email: string, holder: string): Promise<boolean> {
    const key = this.#key('lease', email);
    const ok = await this.#redis.set(key, holder, 'PX', this.#leaseMs, 'NX');
    if (ok === 'OK') return true;
    if ((await this.#redis.get(key)) === holder) {
      await this.#redis.pexpire(key, this.#leaseMs);
      return true;
    }
    return false;
  }

  async release(email: string, holder: string): Promise<void> {
    await this.#redis.eval(RELEASE, 1, this.#key('lease', email), holder);
  }

  async newestApplied(email: string): Promise<AppliedMark | null> {
    const raw = await this.#redis.get(this.#key('applied', email));
    if (!raw) return null;
    const sep = raw.indexOf('|');
    return { occurredAt: new Date(Number(raw.slice(0, sep))).toISOString(), eventId: raw.slice(sep + 1) };
  }

  async markApplied(email: string, mark: AppliedMark): Promise<void> {
    await this.#redis.eval(
      SET_IF_NEWER,
      1,
      this.#key('applied', email),
      String(Date.parse(mark.occurredAt)),
      mark.eventId,
      String(this.#ttl),
    );
  }
}
