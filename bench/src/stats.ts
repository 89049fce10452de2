/** Pure helpers for the figures the benchmark reports. */

export interface LatencySummary {
  count: number;
  p50: number;
  p99: number;
  max: number;
  mean: number;
}

/** Nearest-rank percentile of ascending `sorted` values (p in 0..100). */
export function percentile(sorted: readonly number[], p: number): number {
  if (sorted.length === 0) return Number.NaN;
  const rank = Math.ceil((p / 100) * sorted.length);
  return sorted[Math.min(sorted.length, Math.max(1, rank)) - 1] as number;
}

export function median(values: readonly number[]): number {
  const sorted = [...values].sort((a, b) => a - b);
  if (sorted.length === 0) return Number.NaN;
  const mid = Math.floor(sorted.length / 2);
  return sorted.length % 2
    ? (sorted[mid] as number)
    : ((sorted[mid - 1] as number) + (sorted[mid] as number)) / 2;
}

export function summarize(values: readonly number[]): LatencySummary {
  const sorted = [...values].sort((a, b) => a - b);
  const sum = sorted.reduce((acc, v) => acc + v, 0);
  return {
    count: sorted.length,
    p50: percentile(sorted, 50),
    p99: percentile(sorted, 99),
    max: sorted.length > 0 ? (sorted[sorted.length - 1] as number) : Number.NaN,
    mean: sorted.length > 0 ? sum / sorted.length : Number.NaN,
  };
}

export interface RateProfile {
  /** Requests over the drain divided by its length (first to last request). */
  meanPerSecond: number;
  /** The busiest wall-clock second (counted from the epoch, as a clock on the wall would). */
  maxInOneSecond: number;
  /** The busiest sliding 1 s window starting at any request. */
  maxInAnyWindow: number;
  seconds: number;
}

/** Profile of request timestamps (ms since the epoch) against a per-second limit. */
export function rateProfile(times: readonly number[]): RateProfile {
  const sorted = [...times].sort((a, b) => a - b);
  const first = sorted[0];
  const last = sorted[sorted.length - 1];
  if (first === undefined || last === undefined || sorted.length < 2) {
    return {
      meanPerSecond: Number.NaN,
      maxInOneSecond: sorted.length,
      maxInAnyWindow: sorted.length,
      seconds: 0,
    };
  }
  const perSecond = new Map<number, number>();
  for (const t of sorted) {
    const s = Math.floor(t / 1000);
    perSecond.set(s, (perSecond.get(s) ?? 0) + 1);
  }
  let maxInAnyWindow = 0;
  let j = 0;
  for (let i = 0; i < sorted.length; i += 1) {
    while (j < sorted.length && (sorted[j] as number) < (sorted[i] as number) + 1000) j += 1;
    maxInAnyWindow = Math.max(maxInAnyWindow, j - i);
  }
  const seconds = (last - first) / 1000;
  return {
    // n requests span n-1 intervals.
    meanPerSecond: (sorted.length - 1) / seconds,
    maxInOneSecond: Math.max(...perSecond.values()),
    maxInAnyWindow,
    seconds,
  };
}

export const round = (value: number, digits = 2): number => {
  const f = 10 ** digits;
  return Math.round(value * f) / f;
};
