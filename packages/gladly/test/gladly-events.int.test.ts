import { type GladlyEventRecord, type GladlyStandIn, startGladlyStandIn } from '@gk/stand-ins';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { buildEventsUrl, GladlyError, streamGladlyEvents } from '../src/index.js';

const USER = 'bridge@acme.example';
const TOKEN = 'tok-events-s3cret';
const minutesAgo = (m: number) => new Date(Date.now() - m * 60_000);

const event = (id: string, type: string, at: Date): GladlyEventRecord => ({
  id,
  type,
  timestamp: at.toISOString(),
  initiator: { id: 'agent1', type: 'AGENT' },
  content: { customerId: 'cust1', conversationId: 'conv1' },
});

let gladly: GladlyStandIn;

beforeEach(async () => {
  gladly = await startGladlyStandIn({
    user: USER,
    token: TOKEN,
    events: [
      event('old', 'CONVERSATION/CREATED', minutesAgo(180)),
      event('a', 'CONVERSATION/CREATED', minutesAgo(50)),
      event('note', 'CONVERSATION/NOTE_CREATED', minutesAgo(45)),
      event('agent', 'AGENT_STATUS/LOGGED_IN', minutesAgo(44)),
      event('b', 'CONVERSATION/CLOSED', minutesAgo(30)),
    ],
  });
});

afterEach(async () => {
  await gladly.close();
});

const options = (token = TOKEN) => ({ baseUrl: gladly.url, user: USER, token });

async function collect(lines: AsyncIterable<string>): Promise<string[]> {
  const out: string[] = [];
  for await (const line of lines) out.push(line);
  return out;
}

describe('Events API (stand-in) through streamGladlyEvents', () => {
  it('streams the window’s events of the asked entities, oldest first, one JSON object per line', async () => {
    gladly.recordEvents(event('c', 'CONVERSATION/REOPENED', minutesAgo(10)));
    const lines = await collect(
      streamGladlyEvents(options(), { startAt: minutesAgo(60), entities: ['CONVERSATION'] }),
    );
    expect(lines.map((l) => (JSON.parse(l) as GladlyEventRecord).id)).toEqual(['a', 'note', 'b', 'c']);
    expect(gladly.eventRequests.at(-1)).toMatchObject({ status: 200, count: 4, entities: ['CONVERSATION'] });
    // Events requests are not customer lookups.
    expect(gladly.requests).toHaveLength(0);
  });

  it('honours endAt and several entities', async () => {
    const lines = await collect(
      streamGladlyEvents(options(), {
        startAt: minutesAgo(60),
        endAt: minutesAgo(40),
        entities: ['CONVERSATION', 'AGENT_STATUS'],
      }),
    );
    expect(lines.map((l) => (JSON.parse(l) as GladlyEventRecord).id)).toEqual(['a', 'note', 'agent']);
  });

  it('answers JSON lines with the documented content type', async () => {
    const res = await fetch(
      buildEventsUrl(gladly.url, { startAt: minutesAgo(60), entities: ['CONVERSATION'] }),
      {
        headers: { authorization: `Basic ${Buffer.from(`${USER}:${TOKEN}`).toString('base64')}` },
      },
    );
    expect(res.headers.get('content-type')).toBe('application/x-jsonlines');
    expect((await res.text()).split('\n')).toHaveLength(4); // three lines and the final newline
  });

  it('refuses a startAt older than 24 hours with Gladly’s 400, as a protocol error naming it', async () => {
    const err = await collect(
      streamGladlyEvents(options(), { startAt: minutesAgo(25 * 60), entities: ['CONVERSATION'] }),
    ).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(GladlyError);
    expect(err).toMatchObject({ kind: 'protocol', status: 400 });
    expect((err as Error).message).toContain('startAt must be within the last 24 hours');
  });

  it('wrong credentials → auth, without the token in the message', async () => {
    const err = await collect(
      streamGladlyEvents(options('wrong-token'), { startAt: minutesAgo(60), entities: ['CONVERSATION'] }),
    ).catch((e: unknown) => e);
    expect(err).toMatchObject({ kind: 'auth', status: 401 });
    expect((err as Error).message).not.toContain(TOKEN);
  });

  it('over the rate limit → rate_limited with Retry-After', async () => {
    gladly.setRateLimit(1);
    const query = { startAt: minutesAgo(60), entities: ['CONVERSATION'] };
    await collect(streamGladlyEvents(options(), query));
    const err = await collect(streamGladlyEvents(options(), query)).catch((e: unknown) => e);
    expect(err).toMatchObject({ kind: 'rate_limited', status: 429 });
    expect(Number((err as GladlyError).retryAfter)).toBeGreaterThan(0);
  });

  it('a refused connection → network', async () => {
    const url = gladly.url;
    await gladly.close();
    const err = await collect(
      streamGladlyEvents(
        { baseUrl: url, user: USER, token: TOKEN },
        { startAt: minutesAgo(60), entities: ['X'] },
      ),
    ).catch((e: unknown) => e);
    expect(err).toMatchObject({ kind: 'network' });
    gladly = await startGladlyStandIn();
  });
});
