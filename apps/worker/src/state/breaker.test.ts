import { describe, expect, it } from 'vitest';
import { DEFAULT_BREAKER_RULE, shouldOpen, type WindowAnswer } from './breaker.js';

const rule = DEFAULT_BREAKER_RULE;
const answers = (now: number, ...failed: boolean[]): WindowAnswer[] =>
  failed.map((f, i) => ({ at: now - (failed.length - i) * 100, failed: f }));

describe('the breaker opening rule (≥ 10 answers in 10 s, > 50 % of the last 20 failures)', () => {
  const now = 1_000_000;

  it('opens on 10 failures out of 10', () => {
    expect(shouldOpen(answers(now, ...Array(10).fill(true)), now, rule)).toBe(true);
  });

  it('does not open on 9 answers, all failures (too few to judge)', () => {
    expect(shouldOpen(answers(now, ...Array(9).fill(true)), now, rule)).toBe(false);
  });

  it('does not open at exactly half failures, opens just above', () => {
    expect(shouldOpen(answers(now, ...Array(10).fill(true), ...Array(10).fill(false)), now, rule)).toBe(
      false,
    );
    expect(shouldOpen(answers(now, ...Array(11).fill(true), ...Array(9).fill(false)), now, rule)).toBe(true);
  });

  it('judges only the last 20: old failures followed by 20 successes do not open it', () => {
    expect(shouldOpen(answers(now, ...Array(30).fill(true), ...Array(20).fill(false)), now, rule)).toBe(
      false,
    );
  });

  it('forgets answers older than 10 s', () => {
    const old = Array.from({ length: 15 }, () => ({ at: now - 10_001, failed: true }));
    expect(shouldOpen(old, now, rule)).toBe(false);
    expect(shouldOpen([...old, ...answers(now, ...Array(10).fill(true))], now, rule)).toBe(true);
  });
});
