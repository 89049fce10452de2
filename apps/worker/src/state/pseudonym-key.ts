import { createHash, randomBytes } from 'node:crypto';
import type { RedisConnection } from '@gk/queue';

/**
 * The key of every email pseudonym the worker makes (delivery job ids, per-email Redis keys, log
 * fields): `LOG_EMAIL_HASH_KEY` when set, else a random key generated at first start and kept in
 * Redis, so every worker of one Redis uses the same one.
 *
 * Once in use it never changes: pseudonyms made with another key would not find a delivery's job
 * or an email's ordering mark. Redis keeps the generated key (`g:<key>`) or, for a configured
 * one, only its fingerprint (`f:<sha256>`); a worker whose key does not match what Redis holds
 * refuses to run (PseudonymKeyMismatch) instead of quietly starting over.
 */
export class PseudonymKeyMismatch extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'PseudonymKeyMismatch';
  }
}

const fingerprint = (key: string) =>
  `f:${createHash('sha256').update(`gk-email-pseudonym-key:${key}`).digest('hex')}`;

export class PseudonymKey {
  readonly #redis: RedisConnection;
  readonly #redisKey: string;
  readonly #configured: string | undefined;
  #resolved: Promise<string> | null = null;

  /** `prefix` is the bridge's (hash-tagged on a cluster); `configured` is LOG_EMAIL_HASH_KEY. */
  constructor(redis: RedisConnection, prefix: string, configured: string | undefined) {
    this.#redis = redis;
    this.#redisKey = `${prefix}:state:email-pseudonym-key`;
    this.#configured = configured === '' ? undefined : configured;
  }

  /** Where Redis keeps it (tests and the soak's key census). */
  get redisKey(): string {
    return this.#redisKey;
  }

  /**
   * The key; read (or first written) in Redis once per process. A Redis error is not remembered
   * (the next call asks again); a mismatch is.
   */
  get(): Promise<string> {
    if (!this.#resolved) {
      this.#resolved = this.#resolve();
      this.#resolved.catch((err: unknown) => {
        if (!(err instanceof PseudonymKeyMismatch)) this.#resolved = null;
      });
    }
    return this.#resolved;
  }

  async #resolve(): Promise<string> {
    const configured = this.#configured;
    const mine = configured === undefined ? `g:${randomBytes(32).toString('hex')}` : fingerprint(configured);
    // The first writer wins; everyone else reads what it wrote (the key never expires or changes).
    const wrote = await this.#redis.set(this.#redisKey, mine, 'NX');
    const stored = wrote === 'OK' ? mine : await this.#redis.get(this.#redisKey);
    if (stored === null) throw new Error('the email pseudonym key vanished from Redis; trying again');
    if (configured !== undefined) {
      if (stored === mine) return configured;
      throw new PseudonymKeyMismatch(
        stored.startsWith('g:')
          ? 'LOG_EMAIL_HASH_KEY is set, but this Redis already holds pseudonyms made with a generated key; unset LOG_EMAIL_HASH_KEY (or start from an empty Redis)'
          : 'LOG_EMAIL_HASH_KEY differs from the key this Redis’s pseudonyms were made with; set it back (a key in use never changes)',
      );
    }
    if (stored.startsWith('g:')) return stored.slice(2);
    throw new PseudonymKeyMismatch(
      'this Redis’s pseudonyms were made with LOG_EMAIL_HASH_KEY, which is not set; set it to the same key',
    );
  }
}
