import { maskEmail } from '@gk/domain';
import { addJobOnce, type BridgeQueues, deliveryJob } from '@gk/queue';
import type { EmailState, HeldAddress } from '../state/email-state.js';
import { table } from './format.js';

/** A held address as the CLI shows it: the email masked, never in clear. */
export interface StuckView {
  /** Names the address in `--close` (its keyed pseudonym, not reversible). */
  id: string;
  email: string;
  since: string;
  days: number;
  customerId: string;
  conversations: string[];
}

export interface StuckList {
  stuckAfterDays: number;
  addresses: StuckView[];
}

export interface CloseReport {
  /** Closing events queued (a delivery each; the worker sends it). */
  queued: { id: string; email: string; jobId: string; outcome: 'accepted' | 'duplicate' }[];
  /** Ids that are not held "in conversation" (never, or no longer). */
  notHeld: string[];
}

const DAY_MS = 24 * 3600 * 1000;

function view(held: HeldAddress, now: number): StuckView {
  return {
    id: held.id,
    email: maskEmail(held.email),
    since: held.since,
    days: Math.floor((now - Date.parse(held.since)) / DAY_MS),
    customerId: held.customerId,
    conversations: held.conversations,
  };
}

/** Addresses held "in conversation" since more than `days` days (by the Gladly time that set it). */
export async function listStuck(state: EmailState, days: number, now = Date.now()): Promise<StuckList> {
  const held = await state.heldSince(new Date(now - days * DAY_MS));
  return { stuckAfterDays: days, addresses: held.map((h) => view(h, now)) };
}

/**
 * Queues the closing event for each address: a delivery of a close that lets go of every
 * conversation holding it (`release`), timed now, so it is newer than anything applied and sets
 * "not in conversation". Its event id (Klaviyo's unique_id) and job id follow from the address
 * and since when it is held, so closing it twice queues it once.
 */
export async function closeStuck(
  state: EmailState,
  queues: BridgeQueues,
  pseudonymKey: () => Promise<string>,
  ids: readonly string[],
  now = new Date(),
): Promise<CloseReport> {
  const report: CloseReport = { queued: [], notHeld: [] };
  for (const id of [...new Set(ids)]) {
    const held = await state.heldAddress(id);
    if (!held) {
      report.notHeld.push(id);
      continue;
    }
    const spec = deliveryJob(
      {
        eventId: `bridge-release-${held.id}-${Date.parse(held.since)}`,
        kind: 'closed',
        gladlyType: 'CONVERSATION/CLOSED',
        customerId: held.customerId || 'unknown',
        conversationId: held.conversations[0] ?? 'none',
        occurredAt: now.toISOString(),
        receivedAt: now.toISOString(),
      },
      held.email,
      held.customerId || 'unknown',
      await pseudonymKey(),
    );
    const added = await addJobOnce(queues, { ...spec, data: { ...spec.data, release: true } });
    report.queued.push({ id, email: maskEmail(held.email), jobId: added.jobId, outcome: added.outcome });
  }
  return report;
}

export function formatStuck(list: StuckList): string {
  const head = `addresses held "in conversation" for more than ${list.stuckAfterDays} day(s): ${list.addresses.length}`;
  if (list.addresses.length === 0) return head;
  const rows = list.addresses.map((a) => [
    a.id,
    a.email,
    a.since,
    String(a.days),
    a.customerId || '-',
    a.conversations.join(',') || '-',
  ]);
  return `${head}\n${table([['id', 'email', 'since', 'days', 'customer', 'open conversations'], ...rows])}\nclose them with: npm run jobs -- profiles stuck --close <id>...`;
}

export function formatClose(report: CloseReport): string {
  const lines = [`closing events queued: ${report.queued.length}`];
  for (const q of report.queued) {
    lines.push(`  ${q.id}  ${q.email}  ${q.jobId}${q.outcome === 'duplicate' ? ' (already queued)' : ''}`);
  }
  if (report.notHeld.length > 0) {
    lines.push(`not held "in conversation" (nothing sent): ${report.notHeld.join(', ')}`);
  }
  return lines.join('\n');
}
