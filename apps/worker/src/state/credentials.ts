/**
 * Whether an upstream last rejected our credentials (401/403). The worker does not fail jobs
 * over it: it pauses and retries slowly, and `/readyz` reports it until a request succeeds.
 */
export class CredentialsStatus {
  #rejected = false;
  #since: Date | null = null;

  constructor(private readonly upstream: 'gladly' | 'klaviyo') {}

  reject(): void {
    if (!this.#rejected) this.#since = new Date();
    this.#rejected = true;
  }

  accept(): void {
    this.#rejected = false;
    this.#since = null;
  }

  get rejected(): boolean {
    return this.#rejected;
  }

  /** A readiness check: null when fine. */
  readonly check = (): string | null =>
    this.#rejected
      ? `${this.upstream} credentials rejected since ${this.#since?.toISOString()} (fix the key; delivery resumes by itself)`
      : null;
}
