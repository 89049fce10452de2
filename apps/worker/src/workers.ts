import { redactEmails } from '@gk/domain';
import type { GladlyClient } from '@gk/gladly';
import type { KlaviyoClient } from '@gk/klaviyo';
import { type BridgeQueues, closeQueues, createQueues, QueueName, type RedisConnection } from '@gk/queue';
import type { Logger } from '@gk/runtime';
import { type Job, type Processor, Worker } from 'bullmq';
import type { Registry } from 'prom-client';
import { type BackoffPolicy, DEFAULT_BACKOFF, fullJitterDelay } from './backoff.js';
import type { WorkerConfig } from './config.js';
import { CredentialsStatus } from './credentials.js';
import { CustomerCache } from './customer-cache.js';
import { createCustomerChangesProcessor } from './customer-changes-processor.js';
import { createDeliveriesProcessor } from './deliveries-processor.js';
import { EmailState } from './email-state.js';
import { createWorkerMetrics } from './metrics.js';
import { KlaviyoProfileCheck } from './profile-check.js';
import { createSelfHealing, type SelfHealing } from './self-healing/self-healing.js';
import { createTransitionsProcessor } from './transitions-processor.js';

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
  /** Overrides for tests (shorter pauses). */
  timings?: { authPauseMs?: number; backoff?: BackoffPolicy };
}

export interface BridgeWorkers {
  queues: BridgeQueues;
  workers: Worker[];
  gladlyCredentials: CredentialsStatus;
  klaviyoCredentials: CredentialsStatus;
  /** The Gladly webhook watchdog and Events API reconciliation (scheduled jobs). */
  selfHealing: SelfHealing;
  run(): void;
  /** Stops taking jobs, waits for the ones in flight, closes queues. Leaves the connection open. */
  close(): Promise<void>;
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
  const metrics = createWorkerMetrics(deps.registry, {
    credentialsRejected: (upstream) =>
      (upstream === 'gladly' ? gladlyCredentials : klaviyoCredentials).rejected,
  });
  const emailState = new EmailState(connection, { prefix: `${prefix}:state` });
  const customerCache = new CustomerCache(connection, {
    prefix,
    ttlSeconds: config.gladly.customerCacheTtlSeconds,
  });
  const authPauseMs = deps.timings?.authPauseMs;

  const table: { name: string; processor: Processor; limitPerSecond: number }[] = [
    {
      name: QueueName.transitions,
      limitPerSecond: config.gladly.ratePerSecond,
      processor: createTransitionsProcessor({
        gladly: deps.gladly,
        customerCache,
        deliveries: queues.deliveries,
        logger: logger.child({ queue: QueueName.transitions }),
        metrics,
        credentials: gladlyCredentials,
        pauseQueue: (ms) => queues.transitions.rateLimit(ms),
        emailHashKey: config.emailHashKey,
        ...(authPauseMs ? { authPauseMs } : {}),
      }) as Processor,
    },
    {
      name: QueueName.deliveries,
      limitPerSecond: config.klaviyo.ratePerSecond,
      processor: createDeliveriesProcessor({
        klaviyo: deps.klaviyo,
        emailState,
        logger: logger.child({ queue: QueueName.deliveries }),
        metrics,
        credentials: klaviyoCredentials,
        event: config.klaviyo,
        pauseQueue: (ms) => queues.deliveries.rateLimit(ms),
        emailHashKey: config.emailHashKey,
        ...(authPauseMs ? { authPauseMs } : {}),
        ...(config.klaviyo.createProfiles
          ? {}
          : {
              profileCheck: new KlaviyoProfileCheck(connection, deps.klaviyo, {
                prefix,
                ttlSeconds: config.klaviyo.profileCacheTtlSeconds,
              }),
            }),
      }) as Processor,
    },
    {
      // Only Redis work (dropping cache entries): no upstream, so no limit.
      name: QueueName.customerChanges,
      limitPerSecond: 0,
      processor: createCustomerChangesProcessor({
        customerCache,
        logger: logger.child({ queue: QueueName.customerChanges }),
        metrics,
      }) as Processor,
    },
  ];

  const lockDuration = config.lockDurationMs;
  const backoff = deps.timings?.backoff ?? DEFAULT_BACKOFF;
  const workers = table.map(({ name, processor, limitPerSecond }) => {
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
      settings: { backoffStrategy: (attemptsMade: number) => fullJitterDelay(attemptsMade, backoff) },
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
    run() {
      for (const w of workers) {
        w.run().catch((err: unknown) => logger.error({ err }, 'worker stopped unexpectedly'));
      }
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
      await Promise.allSettled([...workers.map((w) => w.close()), selfHealing.close()]);
      await closeQueues(queues);
    },
  };
}
