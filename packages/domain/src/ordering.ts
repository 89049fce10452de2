/**
 * Per-email ordering: a transition older (by Gladly timestamp) than the newest one already
 * applied to that email must not change the profile nor trigger a flow. Ties are broken by
 * event id so that two events with the same timestamp have one stable order everywhere.
 */
export interface AppliedMark {
  occurredAt: string;
  eventId: string;
}

export function isStale(candidate: AppliedMark, newestApplied: AppliedMark | null | undefined): boolean {
  if (!newestApplied) return false;
  if (candidate.eventId === newestApplied.eventId) return false;
  const a = Date.parse(candidate.occurredAt);
  const b = Date.parse(newestApplied.occurredAt);
  if (a !== b) return a < b;
  return candidate.eventId < newestApplied.eventId;
}
