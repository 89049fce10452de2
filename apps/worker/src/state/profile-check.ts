import { hashEmail } from '@gk/domain';
import type { KlaviyoClient, ProfileLookupOutcome } from '@gk/klaviyo';
import type { RedisConnection } from '@gk/queue';

/**
 * With KLAVIYO_CREATE_PROFILES=false the bridge only sends to emails Klaviyo already has a profile
 * for (like the "do not create new Klaviyo customers" option of Gladly's own Klaviyo app). Each
 * answer is kept briefly in Redis: a found profile for the TTL (profiles are rarely deleted), a
 * missing one for at most a minute (a sign-up may create it any moment). Keys hold the email's
 * keyed pseudonym, never the address (entries of versions before keyed pseudonyms are not read:
 * a miss only asks Klaviyo again).
 */
export interface ProfileCheckOptions {
  /** The queue prefix (hash-tagged on a cluster). */
  prefix: string;
  /** How long "exists" is kept; 0 = every delivery asks Klaviyo. */
  ttlSeconds: number;
  /** How long "absent" is kept. Default min(60, ttl). */
  absentTtlSeconds?: number;
  /** The key of the email pseudonyms in the Redis keys (see PseudonymKey). */
  pseudonymKey: () => Promise<string>;
}

export type ProfileCheck =
  | { kind: 'exists' | 'absent'; source: 'cache' | 'klaviyo' }
  /** Klaviyo did not answer the question (429, key refused, 5xx, …): handled like a delivery failure. */
  | {
      kind: 'failed';
      outcome: Exclude<ProfileLookupOutcome, { kind: 'exists' | 'absent' }> & { durationMs: number };
    };

export class KlaviyoProfileCheck {
  readonly #redis: RedisConnection;
  readonly #klaviyo: KlaviyoClient;
  readonly #base: string;
  readonly #ttl: number;
  readonly #absentTtl: number;
  readonly #pseudonymKey: () => Promise<string>;

  constructor(redis: RedisConnection, klaviyo: KlaviyoClient, options: ProfileCheckOptions) {
    this.#redis = redis;
    this.#klaviyo = klaviyo;
    this.#base = `${options.prefix}:kprofile`;
    this.#ttl = options.ttlSeconds;
    this.#absentTtl = options.absentTtlSeconds ?? Math.min(60, options.ttlSeconds);
    this.#pseudonymKey = options.pseudonymKey;
  }

  async #key(email: string): Promise<string> {
    return `${this.#base}:${hashEmail(email, await this.#pseudonymKey())}`;
  }

  async check(email: string): Promise<ProfileCheck> {
    const key = await this.#key(email);
    if (this.#ttl > 0) {
      const cached = await this.#redis.get(key);
      if (cached === '1') return { kind: 'exists', source: 'cache' };
      if (cached === '0') return { kind: 'absent', source: 'cache' };
    }
    const outcome = await this.#klaviyo.lookupProfile(email);
    if (outcome.kind !== 'exists' && outcome.kind !== 'absent') return { kind: 'failed', outcome };
    const ttl = outcome.kind === 'exists' ? this.#ttl : this.#absentTtl;
    if (ttl > 0) await this.#redis.set(key, outcome.kind === 'exists' ? '1' : '0', 'EX', ttl);
    return { kind: outcome.kind, source: 'klaviyo' };
  }
}
