/**
 * The worker benchmark's baseline: a plain BullMQ worker on the same Redis with the same
 * concurrency, whose processor only POSTs the event to Klaviyo (the same HTTP client the bridge
 * uses) and fails the job on anything but a 202. No payload validation, no per-email lease, no
 * ordering state, no logging, no metrics. Run as its own process, like the bridge's worker.
 */
import { createKlaviyoClient } from '@gk/klaviyo';
import { createWorkerConnection, type DeliveryJobData, QueueName } from '@gk/queue';
import { type Job, Worker } from 'bullmq';

const env = (name: string): string => {
  const value = process.env[name];
  if (!value) throw new Error(`${name} is required`);
  return value;
};

const connection = createWorkerConnection({ url: env('REDIS_URL') }, 'bench-baseline');
const klaviyo = createKlaviyoClient({ baseUrl: env('KLAVIYO_API_URL'), apiKey: env('KLAVIYO_API_KEY') });

const worker = new Worker(
  QueueName.deliveries,
  async (job: Job<DeliveryJobData>) => {
    const d = job.data;
    const value = d.kind === 'started';
    const answer = await klaviyo.createEvent({
      email: d.email,
      metricName: value ? 'started conversation in Gladly' : 'closed conversation in Gladly',
      propertyName: 'In Gladly Conversation',
      value,
      uniqueId: d.eventId,
      time: d.occurredAt,
      backfill: false,
    });
    if (answer.kind !== 'delivered') throw new Error(`klaviyo answered ${answer.status}`);
    return { status: answer.status };
  },
  {
    connection,
    prefix: env('QUEUE_PREFIX'),
    concurrency: Number(env('WORKER_CONCURRENCY')),
  },
);

const stop = async () => {
  await worker.close();
  await connection.quit();
  process.exit(0);
};
process.once('SIGTERM', () => void stop());
process.once('SIGINT', () => void stop());
