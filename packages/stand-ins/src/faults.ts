/**
 * A failure to play instead of (or before) the normal answer: `status` answers that status
 * (with `Retry-After` when `retryAfterSeconds` is set), `drop` destroys the socket without
 * answering, `delayMs` waits first; a fault with only `delayMs` then answers normally.
 */
export interface InjectedFault {
  /** e.g. 429, 503, 500 */
  status?: number;
  retryAfterSeconds?: number;
  /** Destroy the socket without answering. */
  drop?: boolean;
  delayMs?: number;
}

/** Faults are consumed one per request, in the order injected. */
export class FaultQueue {
  private pending: InjectedFault[] = [];

  push(faults: InjectedFault[]): void {
    this.pending.push(...faults);
  }

  next(): InjectedFault | undefined {
    return this.pending.shift();
  }

  clear(): void {
    this.pending = [];
  }
}
