import { redactEmails } from '@gk/domain';
import type { GladlyClient } from '@gk/gladly';
import type { KlaviyoClient } from '@gk/klaviyo';
import { type BridgeQueues, closeQueues, createQueues, QueueName, type RedisConnection } from '@gk/queue';
import type { Logger } from '@gk/runtime';
import { type Job, type Processor, Worker } from 'bullmq';
import type { Registry } from 'prom-client';
import { type BackoffPolicy, DEFAULT_BACKOFF, fullJitterDelay } from './backoff.js';
import type { WorkerConfig } from './config.js';
import { createWorkerMetrics } from './metrics.js';
import { createBulkDeliveries } from './processors/bulk-deliveries.js';
import { createBulkMetrics } from './processors/bulk-metrics.js';
import { createCustomerChangesProcessor } from './processors/customer-changes.js';
import { createDeliveriesProcessor, type DeliveriesDeps } from './processors/deliveries.js';
import { createTransitionsProcessor } from './processors/transitions.js';
import { createSelfHealing, type SelfHealing } from './self-healing/self-healing.js';
import { KlaviyoBreaker } from './state/breaker.js';
import { BulkRateLimit } from './state/bulk-rate.js';
import { ConversationState } from './state/conversations.js';
import { CredentialsStatus } from './state/credentials.js';
import { CustomerCache } from './state/customer-cache.js';
import { EmailState } from './state/email-state.js';
import { KlaviyoProfileCheck } from './state/profile-check.js';
import { PseudonymKey } from './state/pseudonym-key.js';

export interface WorkerDeps {
  config: WorkerConfig;
  /** A connection made with createWorkerConnection (maxRetriesPerRequest: null). */
  connection: RedisConnection;
  /** The full prefix (hash-tagged on a cluster). */
  prefix: string;
  logger: Logger;
  registry: Registry;
  gladly: GladlyClient;
  klaviyo: KlaviyoClient;
  /**
   * For the per-email state, the customer cache and the profile cache: a connection whose
   * commands time out (createStateConnection). Default: `connection`.
   */
  stateConnection?: RedisConnection;
  /** Overrides for tests (shorter pauses). */
  timings?: { authPauseMs?: number; backoff?: BackoffPolicy };
}

/**
 * How much longer than the job lock the per-email lease lasts: a worker frozen past its lock
 * loses the job (it is re-run elsewhere) a little before it loses the email's lease, and a killed
 * attempt holds its email up for at most the lock plus this.
 */
export const LEASE_MARGIN_MS = 5_000;
const DEFAULT_AUTH_PAUSE_MS = 30_000;

export interface BridgeWorkers {
  queues: BridgeQueues;
  workers: Worker[];
  gladlyCredentials: CredentialsStatus;
  klaviyoCredentials: CredentialsStatus;
  /** The Gladly webhook watchdog and Events API reconciliation (scheduled jobs). */
  selfHealing: SelfHealing;
  /** The key of the email pseudonyms (LOG_EMAIL_HASH_KEY, or generated and kept in Redis). */
  pseudonyms: PseudonymKey;
  run(): void;
  /** Stops taking jobs, waits for the ones in flight, closes queues. Leaves the connection open. */
  close(): Promise<void>;
  /**
   * For a close() that does not end (Redis away: BullMQ waits for jobs whose commands hang, and
   * on a cluster for an `end` event that never comes): stops the workers without waiting for
   * their jobs. Their locks lapse and the jobs are re-run elsewhere (deliveries are idempotent).
   */
  forceClose(): void;
}

/**
 * BullMQ's limiter is global across every worker of a queue (a counter in Redis). A limit of 0
 * means "lifted"; a limiter is still set because the queue-wide pause on a 429 needs one.
 */
function limiterFor(perSecond: number) {
  return { max: perSecond > 0 ? perSecond : 1_000_000, duration: 1_000 };
}

export function createWorkers(deps: WorkerDeps): BridgeWorkers {
  const { config, connection, prefix, logger } = deps;
  const queues = createQueues(connection, prefix);
  const gladlyCredentials = new CredentialsStatus('gladly');
  const klaviyoCredentials = new CredentialsStatus('klaviyo');
  const stateConnection = deps.stateConnection ?? connection;
  const pseudonyms = new PseudonymKey(stateConnection, prefix, config.emailHashKey);
  const pseudonymKey = () => pseudonyms.get();
  const emailState = new EmailState(stateConnection, {
    prefix: `${prefix}:state`,
    leaseMs: config.lockDurationMs + LEASE_MARGIN_MS,
    pseudonymKey,
  });
  let breaker: KlaviyoBreaker | undefined;
  const metrics = createWorkerMetrics(deps.registry, {
    ...(config.klaviyo.breaker.enabled
      ? { breakerState: () => breaker?.refresh() ?? Promise.resolve('closed' as const) }
      : {}),
    credentialsRejected: (upstream) =>
      (upstream === 'gladly' ? gladlyCredentials : klaviyoCredentials).rejected,
    stuckProfiles: () =>
      emailState.countHeldSince(new Date(Date.now() - config.stuckAfterDays * 24 * 3600 * 1000)),
  });
  const conversations = new ConversationState(stateConnection, { prefix: `${prefix}:state`, pseudonymKey });
  const customerCache = new CustomerCache(stateConnection, {
    prefix,
    ttlSeconds: config.gladly.customerCacheTtlSeconds,
  });
  if (config.klaviyo.breaker.enabled) {
    const log = logger.child({ upstream: 'klaviyo' });
    breaker = new KlaviyoBreaker(stateConnection, {
      prefix: `${prefix}:state`,
      queues: [queues.deliveries],
      rule: config.klaviyo.breaker.rule,
      probeMaxMs: config.klaviyo.breaker.probeMaxMs,
      probeLockMs: config.lockDurationMs + LEASE_MARGIN_MS,
      metrics: metrics.breaker,
      onTransition: (to, { promoted }) =>
        to === 'closed'
          ? log.info(
              { promoted },
              'klaviyo breaker closed: a probe succeeded; backed-off deliveries are ready again',
            )
          : to === 'open'
            ? log.warn(
                'klaviyo breaker open: most recent answers failed; deliveries pause while one probe at a time tests klaviyo',
              )
            : log.debug('klaviyo breaker half-open: probing'),
    });
  }
  const upstream = {
    maxPauseMs: config.upstreamMaxPauseMs,
    authPauseMs: deps.timings?.authPauseMs ?? DEFAULT_AUTH_PAUSE_MS,
  };

  const deliveriesDeps: DeliveriesDeps = {
    settings: {
      metricStarted: config.klaviyo.metricStarted,
      metricClosed: config.klaviyo.metricClosed,
      profileProperty: config.klaviyo.profileProperty,
      includeConversationId: config.klaviyo.includeConversationId,
      upstream,
    },
    pseudonymKey,
    klaviyo: deps.klaviyo,
    emailState,
    logger: logger.child({ queue: QueueName.deliveries }),
    metrics,
    credentials: klaviyoCredentials,
    pauseQueue: (ms) => queues.deliveries.rateLimit(ms),
    ...(breaker ? { breaker } : {}),
    ...(config.klaviyo.createProfiles
      ? {}
      : {
          profileCheck: new KlaviyoProfileCheck(stateConnection, deps.klaviyo, {
            prefix,
            ttlSeconds: config.klaviyo.profileCacheTtlSeconds,
            pseudonymKey,
          }),
        }),
  };

  const table: { name: string; processor: Processor; limitPerSecond: number }[] = [
    {
      name: QueueName.transitions,
      limitPerSecond: config.gladly.ratePerSecond,
      processor: createTransitionsProcessor({
        settings: { upstream },
        pseudonymKey,
        gladly: deps.gladly,
        customerCache,
        conversations,
        deliveries: queues.deliveries,
        logger: logger.child({ queue: QueueName.transitions }),
        metrics,
        credentials: gladlyCredentials,
        pauseQueue: (ms) => queues.transitions.rateLimit(ms),
      }) as Processor,
    },
    {
      name: QueueName.deliveries,
      limitPerSecond: config.klaviyo.ratePerSecond,
      processor: createDeliveriesProcessor(deliveriesDeps) as Processor,
    },
    {
      // Only Redis work (dropping cache entries, joining merged conversations): no upstream, so no limit.
      name: QueueName.customerChanges,
      limitPerSecond: 0,
      processor: createCustomerChangesProcessor({
        customerCache,
        conversations,
        deliveries: queues.deliveries,
        pseudonymKey,
        logger: logger.child({ queue: QueueName.customerChanges }),
        metrics,
      }) as Processor,
    },
  ];

  const lockDuration = config.lockDurationMs;
  const backoff = deps.timings?.backoff ?? DEFAULT_BACKOFF;
  const settings = { backoffStrategy: (attemptsMade: number) => fullJitterDelay(attemptsMade, backoff) };
  const mode = config.klaviyo.deliveryMode;
  // KLAVIYO_DELIVERY_MODE=bulk: no single deliveries at all; the bulk consumer takes every one.
  const active = mode === 'bulk' ? table.filter((t) => t.name !== QueueName.deliveries) : table;
  const workers = active.map(({ name, processor, limitPerSecond }) => {
    const worker = new Worker(name, processor, {
      connection,
      prefix,
      autorun: false,
      concurrency: config.concurrency,
      limiter: limiterFor(limitPerSecond),
      lockDuration,
      stalledInterval: lockDuration,
      // A kill -9 leaves jobs active until their lock lapses; they are then retried. Allow many
      // such stalls: a delivery is idempotent in Klaviyo (unique_id), so a re-run is harmless.
      maxStalledCount: 50,
      settings,
    });
    worker.on('failed', (job: Job | undefined, err: Error) => {
      // Emitted for every failed attempt; `finishedOn` is set only when the job landed in the
      // failed set (an UnrecoverableError, or its attempts used up).
      if (job && (job.finishedOn !== undefined || job.attemptsMade >= (job.opts.attempts ?? 1))) {
        metrics.jobsFailed.inc({ queue: name });
        logger.error(
          {
            queue: name,
            jobId: job.id,
            eventId: job.data?.eventId,
            attempts: job.attemptsMade,
            reason: redactEmails(err.message),
          },
          'job failed; it stays in the failed set until retried (npm run jobs -- retry)',
        );
      }
    });
    worker.on('error', (err: Error) => logger.error({ queue: name, err: err.message }, 'worker error'));
    return worker;
  });

  // Bulk Create Events (KLAVIYO_DELIVERY_MODE auto or bulk): deliveries fetched by hand, with the
  // same lock, stall and retry settings as the single worker. Its limiter lets it take as many
  // jobs as a bulk request holds, and makes it honour the queue-wide pause of a 429.
  const fetcher =
    mode === 'single'
      ? null
      : new Worker(QueueName.deliveries, null, {
          connection,
          prefix,
          autorun: false,
          lockDuration,
          stalledInterval: lockDuration,
          maxStalledCount: 50,
          limiter: { max: 1_000_000_000, duration: 1_000 },
          settings,
        });
  fetcher?.on('error', (err: Error) =>
    logger.error({ queue: QueueName.deliveries, err: err.message }, 'bulk fetcher error'),
  );
  const bulk = fetcher
    ? createBulkDeliveries({
        ...deliveriesDeps,
        logger: logger.child({ queue: QueueName.deliveries }),
        mode: mode === 'bulk' ? 'bulk' : 'auto',
        minBacklog: config.klaviyo.bulkMinBacklog,
        queue: queues.deliveries,
        fetcher,
        lockDurationMs: lockDuration,
        rate: new BulkRateLimit(stateConnection, `${prefix}:state:klaviyo-bulk-rate`, {
          perMinute: config.klaviyo.bulkRatePerMinute,
        }),
        bulkMetrics: createBulkMetrics(deps.registry),
      })
    : null;

  const selfHealing = createSelfHealing({
    config,
    connection,
    prefix,
    queues,
    logger,
    registry: deps.registry,
  });

  return {
    queues,
    workers,
    gladlyCredentials,
    klaviyoCredentials,
    selfHealing,
    pseudonyms,
    run() {
      for (const w of workers) {
        w.run().catch((err: unknown) => logger.error({ err }, 'worker stopped unexpectedly'));
      }
      bulk?.run();
      // Without a single deliveries worker, nobody else looks for this queue's stalled jobs.
      if (mode === 'bulk') fetcher?.startStalledCheckTimer().catch(() => {});
      selfHealing
        .run()
        .catch((err: unknown) =>
          logger.error(
            { err: (err as Error).message },
            'could not schedule the webhook watchdog and reconciliation',
          ),
        );
    },
    async close() {
      await Promise.allSettled([
        ...workers.map((w) => w.close()),
        (async () => {
          await bulk?.close();
          await fetcher?.close();
        })(),
        selfHealing.close(),
      ]);
      await closeQueues(queues);
    },
    forceClose() {
      for (const w of [...workers, ...(fetcher ? [fetcher] : [])]) w.close(true).catch(() => {});
    },
  };
}
