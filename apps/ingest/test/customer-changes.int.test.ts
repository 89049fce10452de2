import { customerChangeJobId, transitionJobId } from '@gk/queue';
import { type TestRedis, uniquePrefix, useTestRedis } from '@gk/testing';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { bodyOf, freshEvent, postWebhook, type RunningIngest, scrape, startIngest } from './helpers.js';

const RECEIVED_AT = new Date('2026-11-20T15:00:00.000Z');

let redis: TestRedis;
let ingest: RunningIngest;

beforeAll(async () => {
  redis = await useTestRedis();
  ingest = await startIngest({
    redis: redis.target,
    prefix: uniquePrefix('ingest-customers'),
    now: () => RECEIVED_AT,
  });
});

afterAll(async () => {
  await ingest?.close();
  await redis?.stop();
});

describe('POST /webhooks/gladly: customer changes', () => {
  it('stores CUSTOMER_PROFILE/UPDATED as a customer-changes job, once per event id', async () => {
    const event = freshEvent('customer-profile-updated.json');
    const jobId = customerChangeJobId(event.id);
    const first = await postWebhook(ingest.url, event);
    expect(first.status).toBe(200);
    expect(await first.json()).toEqual({ status: 'accepted', id: event.id, jobId });
    const again = await postWebhook(ingest.url, event);
    expect(await again.json()).toEqual({ status: 'duplicate', id: event.id, jobId });

    const job = await ingest.queues.customerChanges.getJob(jobId);
    expect(job?.data).toEqual({
      eventId: event.id,
      gladlyType: 'CUSTOMER_PROFILE/UPDATED',
      customerIds: ['cUs7omErIdX0000000001a'],
      occurredAt: '2026-11-20T14:20:05.118Z',
      receivedAt: RECEIVED_AT.toISOString(),
    });
    expect((await ingest.queues.customerChanges.getJobCounts('waiting')).waiting).toBe(1);
    // Nothing for the transitions queue: a profile edit is not a conversation transition.
    expect(await ingest.queues.transitions.getJob(transitionJobId(event.id))).toBeUndefined();
  });

  it('stores CUSTOMER/MERGED naming both customers', async () => {
    const event = freshEvent('customer-merged.json');
    const res = await postWebhook(ingest.url, event);
    expect(res.status).toBe(200);
    const job = await ingest.queues.customerChanges.getJob(customerChangeJobId(event.id));
    expect(job?.data.customerIds).toEqual(['oLdCuStOmErId000000001b', 'cUs7omErIdX0000000001a']);
    expect(job?.name).toBe('CUSTOMER/MERGED');
  });

  it('answers 400 naming the field when a customer change lacks its customer id, and stores nothing', async () => {
    const event = freshEvent('customer-merged.json');
    const content = { ...(event.content as Record<string, unknown>) };
    delete content.destinationCustomerId;
    const res = await postWebhook(ingest.url, { ...event, content });
    expect(res.status).toBe(400);
    expect((await bodyOf(res)).errors).toEqual([
      expect.objectContaining({ field: 'content.destinationCustomerId' }),
    ]);
    expect(await ingest.queues.customerChanges.getJob(customerChangeJobId(event.id))).toBeUndefined();
  });

  it('counts customer webhooks by type and outcome', async () => {
    const text = await scrape(ingest.url);
    expect(text).toContain('gk_webhooks_received_total{type="CUSTOMER_PROFILE/UPDATED",outcome="accepted"');
    expect(text).toContain('gk_webhooks_received_total{type="CUSTOMER_PROFILE/UPDATED",outcome="duplicate"');
    expect(text).toContain('gk_webhooks_received_total{type="CUSTOMER/MERGED",outcome="rejected_invalid"');
  });
});
