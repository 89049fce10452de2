export type TakeResult = { ok: true } | { ok: false; retryAfterMs: number };

/**
 * Refills `ratePerSecond` tokens per second up to `burst`; each request takes one. This is how
 * Klaviyo describes its limits (a burst allowance on top of a steady rate), and close enough to
 * Gladly's flat 10 requests/s with `burst = rate`.
 */
export class TokenBucket {
  private tokens: number;
  private last: number;

  constructor(
    readonly ratePerSecond: number,
    readonly burst: number,
    now: number = Date.now(),
  ) {
    if (!(ratePerSecond > 0) || !(burst >= 1)) throw new RangeError('rate must be > 0 and burst >= 1');
    this.tokens = burst;
    this.last = now;
  }

  /** Whole tokens left now, without taking one. */
  remaining(now: number = Date.now()): number {
    const tokens = Math.min(this.burst, this.tokens + ((now - this.last) / 1000) * this.ratePerSecond);
    return Math.max(0, Math.floor(tokens));
  }

  take(now: number = Date.now()): TakeResult {
    this.tokens = Math.min(this.burst, this.tokens + ((now - this.last) / 1000) * this.ratePerSecond);
    this.last = Math.max(this.last, now);
    if (this.tokens >= 1) {
      this.tokens -= 1;
      return { ok: true };
    }
    return { ok: false, retryAfterMs: Math.ceil(((1 - this.tokens) / this.ratePerSecond) * 1000) };
  }
}

/** Integer seconds for a `Retry-After` header: rounded up, at least 1. */
export function retryAfterSeconds(ms: number): number {
  return Math.max(1, Math.ceil(ms / 1000));
}
