import { createWorkerConnection, type RedisConnection } from '@gk/queue';
import { sleep, type TestRedis, uniquePrefix, useTestRedis } from '@gk/testing';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { type Admission, KlaviyoBreaker } from './breaker.js';

let redis: TestRedis;
let connection: RedisConnection;

beforeAll(async () => {
  redis = await useTestRedis();
  connection = createWorkerConnection(redis.target, 'breaker-test');
});
afterAll(async () => {
  connection.disconnect();
  await redis.stop();
});

const noQueue = {
  removeRateLimitKey: async () => 0,
  promoteJobs: async () => {},
  getDelayedCount: async () => 0,
};

async function openBreaker(b: KlaviyoBreaker) {
  for (let i = 0; i < 10; i += 1) await b.record('failure');
}

describe('KlaviyoBreaker (two worker processes sharing one Redis)', () => {
  it('lets only one probe at a time through across both, and closes for both when it succeeds', async () => {
    const prefix = `${uniquePrefix('breaker')}:state`;
    const options = { prefix, queues: [noQueue], probeMinMs: 200, refreshMs: 0 };
    const a = new KlaviyoBreaker(connection, options);
    const b = new KlaviyoBreaker(connection, options);
    await openBreaker(a);
    expect(a.state()).toBe('open');
    expect(await b.admit('b-0')).toMatchObject({ wait: expect.any(Number) });
    await sleep(250);
    const answers: Admission[] = await Promise.all(
      Array.from({ length: 20 }, (_, i) => (i % 2 ? a : b).admit(`${i % 2 ? 'a' : 'b'}-${i}`)),
    );
    expect(answers.filter((x) => x === 'probe')).toHaveLength(1);
    expect(answers.filter((x) => x === 'send')).toHaveLength(0);
    const prober = answers.indexOf('probe') % 2 ? a : b;
    const other = prober === a ? b : a;
    // While the probe is in flight, nobody else probes, however long it takes.
    await sleep(300);
    expect(await other.admit('late')).toMatchObject({ wait: expect.any(Number) });
    expect(await prober.admit('late-same')).toMatchObject({ wait: expect.any(Number) });
    // A failing probe keeps it open and the next one waits for the (doubled) gap.
    await prober.record('failure', { probe: true });
    expect(prober.state()).toBe('open');
    expect(await other.admit('too-soon')).toMatchObject({ wait: expect.any(Number) });
    await sleep(450);
    const next = await other.admit('second-probe');
    expect(next).toBe('probe');
    await other.record('ok', { probe: true });
    expect(other.state()).toBe('closed');
    expect(await prober.admit('after')).toBe('send');
  });

  it('429 and other 4xx (neutral) never open it', async () => {
    const b = new KlaviyoBreaker(connection, {
      prefix: `${uniquePrefix('breaker')}:state`,
      queues: [noQueue],
    });
    for (let i = 0; i < 30; i += 1) await b.record('neutral');
    for (let i = 0; i < 9; i += 1) await b.record('failure');
    expect(b.state()).toBe('closed');
    await b.record('failure');
    expect(b.state()).toBe('open');
  });
});
