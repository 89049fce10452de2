import { readGladlyEvent } from '@gk/domain';
import { addJobOnce, type BridgeQueues, type TransitionJobData, transitionJob } from '@gk/queue';

export interface BackfillSummary {
  dryRun: boolean;
  /** Non-empty lines read from Gladly. */
  read: number;
  /** CONVERSATION/CREATED, REOPENED and CLOSED events among them. */
  transitions: number;
  /** Stored now (0 in a dry run). */
  enqueued: number;
  /** Not stored yet (in a dry run: what a real run would store). */
  missing: number;
  /** Already in Redis: received by webhook, or by an earlier backfill. */
  alreadyPresent: number;
  /** Events of other types, by type (skipped). */
  skippedByType: Record<string, number>;
  /** Lines that are not JSON or not a valid event of a type the bridge uses. */
  invalid: number;
  /** The first few invalid lines: line number and why (never the line itself). */
  invalidLines: { line: number; reason: string }[];
}

export interface BackfillDeps {
  /** The bridge's queues (transitions are added there, the same JobSpec path as the webhook's). */
  queues: BridgeQueues;
  dryRun: boolean;
  now: () => Date;
  /** Stores in flight at once. Default 16. */
  concurrency?: number;
  /** Called after every line with the running counts. */
  onProgress?: (summary: Readonly<BackfillSummary>) => void;
}

const MAX_INVALID_SAMPLES = 20;

/** Reading or storing failed part way; `summary` says what was done before (all of it kept). */
export class BackfillFailure extends Error {
  override name = 'BackfillFailure';
  constructor(
    override readonly cause: unknown,
    readonly summary: BackfillSummary,
  ) {
    super(cause instanceof Error ? cause.message : String(cause));
  }
}

/** The ioredis client behind BullMQ's adapter has every command; the adapter type declares only its own. */
type WithExists = { exists(key: string): Promise<number> };

/**
 * Reads Events API lines and stores each conversation transition exactly as the webhook does:
 * the same reading of the event (readGladlyEvent), the same store (enqueueTransition), so the
 * same job id, and a transition received by webhook is found already present, never repeated.
 */
export async function backfillEvents(
  lines: AsyncIterable<string>,
  deps: BackfillDeps,
): Promise<BackfillSummary> {
  const summary: BackfillSummary = {
    dryRun: deps.dryRun,
    read: 0,
    transitions: 0,
    enqueued: 0,
    missing: 0,
    alreadyPresent: 0,
    skippedByType: {},
    invalid: 0,
    invalidLines: [],
  };
  const limit = deps.concurrency ?? 16;
  const inFlight = new Set<Promise<void>>();
  const seenInDryRun = new Set<string>();
  let failure: unknown;

  const invalid = (line: number, reason: string) => {
    summary.invalid += 1;
    if (summary.invalidLines.length < MAX_INVALID_SAMPLES) summary.invalidLines.push({ line, reason });
  };

  const store = async (transition: TransitionJobData) => {
    const spec = transitionJob(transition);
    if (deps.dryRun) {
      const jobId = spec.jobId;
      const client = (await deps.queues.transitions.getBackend().client) as unknown as WithExists;
      const present =
        seenInDryRun.has(jobId) || (await client.exists(deps.queues.transitions.toKey(jobId))) === 1;
      seenInDryRun.add(jobId);
      if (present) summary.alreadyPresent += 1;
      else summary.missing += 1;
      return;
    }
    const result = await addJobOnce(deps.queues, spec);
    if (result.outcome === 'duplicate') summary.alreadyPresent += 1;
    else {
      summary.missing += 1;
      summary.enqueued += 1;
    }
  };

  try {
    for await (const line of lines) {
      if (failure) break;
      await readLine(line);
    }
  } catch (err) {
    failure ??= err;
  }
  await Promise.all(inFlight);
  if (failure) throw new BackfillFailure(failure, summary);
  return summary;

  async function readLine(line: string): Promise<void> {
    summary.read += 1;
    const lineNo = summary.read;
    let body: unknown;
    try {
      body = JSON.parse(line);
    } catch {
      invalid(lineNo, 'not JSON');
      deps.onProgress?.(summary);
      return;
    }
    const reading = readGladlyEvent(body, deps.now());
    switch (reading.kind) {
      case 'transition': {
        summary.transitions += 1;
        const task = store(reading.transition).catch((err: unknown) => {
          failure ??= err;
        });
        inFlight.add(task);
        void task.finally(() => inFlight.delete(task));
        if (inFlight.size >= limit) await Promise.race(inFlight);
        break;
      }
      case 'malformed':
      case 'invalid':
        invalid(lineNo, describeIssue(reading.error.issues[0]));
        break;
      default:
        summary.skippedByType[reading.type] = (summary.skippedByType[reading.type] ?? 0) + 1;
    }
    deps.onProgress?.(summary);
  }
}

function describeIssue(issue: { path: PropertyKey[]; message: string } | undefined): string {
  if (!issue) return 'invalid event';
  const path = issue.path.map(String).join('.');
  return path ? `${path}: ${issue.message}` : issue.message;
}
