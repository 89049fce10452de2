/** A named check that answers null when fine, or a short human reason when not. */
export type ReadinessCheck = () => Promise<string | null> | string | null;

export interface ReadinessReport {
  ready: boolean;
  reasons: string[];
}

/**
 * What `/readyz` answers: not ready while shutting down or while any check names a problem
 * (Redis unreachable, an API key rejected, …). Checks run in parallel, each bounded in time.
 */
export class Readiness {
  #shuttingDown = false;
  readonly #checks = new Map<string, ReadinessCheck>();

  constructor(private readonly checkTimeoutMs = 1_000) {}

  add(name: string, check: ReadinessCheck): this {
    this.#checks.set(name, check);
    return this;
  }

  markShuttingDown(): void {
    this.#shuttingDown = true;
  }

  get shuttingDown(): boolean {
    return this.#shuttingDown;
  }

  async evaluate(): Promise<ReadinessReport> {
    const reasons: string[] = [];
    if (this.#shuttingDown) reasons.push('shutting down');
    const results = await Promise.all(
      [...this.#checks].map(async ([name, check]) => {
        try {
          return await withTimeout(Promise.resolve(check()), this.checkTimeoutMs, `${name}: check timed out`);
        } catch (err) {
          return `${name}: ${err instanceof Error ? err.message : String(err)}`;
        }
      }),
    );
    for (const r of results) if (r) reasons.push(r);
    return { ready: reasons.length === 0, reasons };
  }
}

export function withTimeout<T>(promise: Promise<T>, ms: number, message: string): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  const timeout = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(new Error(message)), ms);
    timer.unref();
  });
  return Promise.race([promise, timeout]).finally(() => clearTimeout(timer));
}
