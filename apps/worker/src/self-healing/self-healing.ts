import { createGladlyWebhooksClient, type GladlyWebhooksClient, streamGladlyEvents } from '@gk/gladly';
import type { BridgeQueues, RedisConnection } from '@gk/queue';
import type { Logger } from '@gk/runtime';
import { type Job, Queue, Worker } from 'bullmq';
import type { Registry } from 'prom-client';
import type { WorkerConfig } from '../config.js';
import { createSelfHealingMetrics, type ReconcileTrigger } from './metrics.js';
import { createReconciler, type Reconciler } from './reconciler.js';
import { createWebhookWatchdog } from './webhook-watchdog.js';

/** The worker's own scheduled jobs live on a queue of their own (not in the ingest's contract). */
export const SELF_HEALING_QUEUE = 'self-healing';
const WATCH_SCHEDULER = 'gladly-webhook-watchdog';
const RECONCILE_SCHEDULER = 'events-reconciliation';
export const JobName = { watch: 'watch-webhook', reconcile: 'reconcile', recover: 'recover' } as const;

interface RecoverData {
  fromMs: number;
  trigger: ReconcileTrigger;
}

export interface SelfHealingDeps {
  config: WorkerConfig;
  connection: RedisConnection;
  prefix: string;
  queues: BridgeQueues;
  logger: Logger;
  registry: Registry;
  /** Tests may point the watchdog at a client of their own. */
  webhooks?: GladlyWebhooksClient;
}

export interface SelfHealing {
  /** Registers (or removes) the job schedulers and starts processing their jobs. */
  run(): Promise<void>;
  /** For /readyz: what reconciliation could not recover. */
  warnings(): string[];
  close(): Promise<void>;
}

/**
 * The webhook watchdog and continuous reconciliation as BullMQ job schedulers: every worker
 * process upserts the same two schedulers (idempotent), Redis makes one job per interval, and one
 * worker takes it, so they run once per interval across all workers.
 */
export function createSelfHealing(deps: SelfHealingDeps): SelfHealing {
  const { config, connection, prefix } = deps;
  const logger = deps.logger.child({ queue: SELF_HEALING_QUEUE });
  const settings = config.selfHealing;
  const metrics = createSelfHealingMetrics(deps.registry);
  const gladlyAuth = { baseUrl: config.gladly.baseUrl, user: config.gladly.user, token: config.gladly.token };
  const lagMs = settings.reconcileLagSeconds * 1000;
  const queue = new Queue(SELF_HEALING_QUEUE, { connection, prefix });

  const reconciler: Reconciler = createReconciler({
    connection,
    queues: deps.queues,
    readEvents: (query) => streamGladlyEvents(gladlyAuth, query),
    watermarkKey: queue.toKey('reconcile-watermark'),
    lagMs,
    gladlyRatePerSecond: config.gladly.ratePerSecond,
    metrics,
    logger,
  });

  const watchUrl = settings.webhookUrl;
  const watch =
    watchUrl && settings.watchSeconds > 0
      ? createWebhookWatchdog({
          webhooks: deps.webhooks ?? createGladlyWebhooksClient(gladlyAuth),
          url: watchUrl,
          metrics,
          logger,
          afterEnableDelayMs: lagMs + 1_000,
          async queueRecovery(fromMs, key, delayMs) {
            const data: RecoverData = { fromMs, trigger: 'watchdog' };
            await queue.add(JobName.recover, data, {
              jobId: `recover-${key}`,
              delay: delayMs,
              attempts: 10,
              backoff: { type: 'exponential', delay: 10_000 },
              // Kept as long as Gladly's Events API window: the same deactivation is queued once.
              removeOnComplete: { age: 24 * 3600 },
              removeOnFail: { age: 14 * 24 * 3600 },
            });
          },
        })
      : null;

  const worker = new Worker(
    SELF_HEALING_QUEUE,
    async (job: Job) => {
      switch (job.name) {
        case JobName.watch:
          return watch ? watch() : null;
        case JobName.reconcile:
          return settings.reconcileIntervalSeconds > 0 ? reconciler.runScheduled() : null;
        case JobName.recover: {
          const data = job.data as RecoverData;
          return reconciler.recover(data.fromMs, data.trigger);
        }
        default:
          logger.warn({ name: job.name }, 'unknown self-healing job; ignored');
          return null;
      }
    },
    { connection, prefix, autorun: false, concurrency: 2 },
  );
  worker.on('error', (err: Error) => logger.error({ err: err.message }, 'self-healing worker error'));

  const scheduled = { removeOnComplete: { count: 50 }, removeOnFail: { count: 50 }, attempts: 1 };

  async function schedule(id: string, everySeconds: number, name: string, what: string): Promise<void> {
    if (everySeconds > 0) {
      await queue.upsertJobScheduler(id, { every: everySeconds * 1000 }, { name, opts: scheduled });
      logger.info({ everySeconds }, `${what} on`);
    } else {
      await queue.removeJobScheduler(id);
      logger.info(`${what} off`);
    }
  }

  return {
    async run() {
      if (!watchUrl) {
        logger.info('Gladly webhook watchdog off: GLADLY_WEBHOOK_URL is not set');
        await queue.removeJobScheduler(WATCH_SCHEDULER);
      } else {
        await schedule(WATCH_SCHEDULER, settings.watchSeconds, JobName.watch, 'Gladly webhook watchdog');
      }
      await schedule(
        RECONCILE_SCHEDULER,
        settings.reconcileIntervalSeconds,
        JobName.reconcile,
        'Events API reconciliation',
      );
      // With both off nothing queues self-healing jobs: no worker on the queue.
      if (!watch && settings.reconcileIntervalSeconds === 0) return;
      worker.run().catch((err: unknown) => logger.error({ err }, 'self-healing worker stopped unexpectedly'));
    },
    warnings: () => reconciler.warnings(),
    async close() {
      await worker.close();
      await queue.close();
    },
  };
}
