/**
 * `gk-klaviyo segment ensure` as an operator runs it: the built bin against the Klaviyo stand-in,
 * which validates Create Segment's body as Klaviyo's OpenAPI description does.
 */
import { execFile } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { type KlaviyoStandIn, startKlaviyoStandIn } from '@gk/stand-ins';
import { captureLogOutput, registerTestSecrets } from '@gk/testing';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';

const CLI = fileURLToPath(new URL('../dist/cli/klaviyo.js', import.meta.url));
const KEY = 'pk_segment_test_key_123';

let klaviyo: KlaviyoStandIn;

interface Run {
  code: number;
  stdout: string;
  stderr: string;
}

function cli(args: string[], env: Record<string, string> = {}): Promise<Run> {
  return new Promise((resolve) => {
    execFile(
      process.execPath,
      [CLI, ...args],
      { env: { PATH: process.env.PATH ?? '', KLAVIYO_API_URL: klaviyo.url, KLAVIYO_API_KEY: KEY, ...env } },
      (err, stdout, stderr) => {
        captureLogOutput(`klaviyo.js ${args.join(' ')}`, `${stdout}${stderr}`);
        resolve({ code: err ? (typeof err.code === 'number' ? err.code : 1) : 0, stdout, stderr });
      },
    );
  });
}

const named = (name: string) => klaviyo.segments.filter((s) => s.name === name);

beforeAll(async () => {
  registerTestSecrets(KEY);
  klaviyo = await startKlaviyoStandIn({ apiKey: KEY });
});
afterEach(() => klaviyo.setScopes(null));
afterAll(async () => {
  await klaviyo?.close();
});

describe('npm run klaviyo -- segment ensure', () => {
  it('creates the segment once; run again, it finds the same one and creates nothing', async () => {
    const first = await cli(['segment', 'ensure']);
    expect(first.code).toBe(0);
    const [segment] = named('In a Gladly conversation');
    expect(segment?.definition).toEqual({
      condition_groups: [
        {
          conditions: [
            {
              type: 'profile-property',
              property: "properties['In Gladly Conversation']",
              filter: { type: 'boolean', operator: 'equals', value: true },
            },
          ],
        },
      ],
    });
    expect(first.stdout).toContain(`created segment "In a Gladly conversation": ${segment?.id}`);
    expect(first.stdout).toContain(`"Don't send to" → add the segment "In a Gladly conversation"`);

    const second = await cli(['segment', 'ensure', '--json']);
    expect(second.code).toBe(0);
    expect(JSON.parse(second.stdout)).toEqual({
      segment: { id: segment?.id, name: 'In a Gladly conversation' },
      created: false,
    });
    expect(named('In a Gladly conversation')).toHaveLength(1);
  });

  it('takes the name and property from KLAVIYO_SEGMENT_NAME and KLAVIYO_PROFILE_PROPERTY', async () => {
    const run = await cli(['segment', 'ensure'], {
      KLAVIYO_SEGMENT_NAME: 'Held: "support"',
      KLAVIYO_PROFILE_PROPERTY: 'Open Ticket',
    });
    expect(run.code).toBe(0);
    expect(named('Held: "support"')[0]?.definition).toMatchObject({
      condition_groups: [{ conditions: [{ property: "properties['Open Ticket']" }] }],
    });
  });

  it('refuses to use a segment of that name with another definition', async () => {
    await cli(['segment', 'ensure'], {
      KLAVIYO_SEGMENT_NAME: 'Shared name',
      KLAVIYO_PROFILE_PROPERTY: 'Other',
    });
    const run = await cli(['segment', 'ensure'], { KLAVIYO_SEGMENT_NAME: 'Shared name' });
    expect(run.code).toBe(1);
    expect(run.stderr).toContain('exists but is not "In Gladly Conversation equals true"');
    expect(named('Shared name')).toHaveLength(1);
  });

  it('without segments:write: exit 1 naming the scope, nothing created', async () => {
    klaviyo.setScopes(['events:write', 'segments:read']);
    const run = await cli(['segment', 'ensure'], { KLAVIYO_SEGMENT_NAME: 'No write scope' });
    expect(run.code).toBe(1);
    expect(run.stderr).toContain('missing the required scope: segments:write');
    expect(named('No write scope')).toHaveLength(0);
  });

  it('a rejected key: exit 1', async () => {
    const run = await cli(['segment', 'ensure'], { KLAVIYO_API_KEY: 'pk_wrong_key_999' });
    expect(run.code).toBe(1);
    expect(run.stderr).toContain('Klaviyo answered 401');
  });

  it('an answer lost or a 5xx: looks the name up instead of posting again; the next run creates it once', async () => {
    const creates = klaviyo.segmentCreates;
    klaviyo.injectFaults({ drop: true });
    const dropped = await cli(['segment', 'ensure'], { KLAVIYO_SEGMENT_NAME: 'Flaky' });
    expect(dropped.code).toBe(1);
    expect(dropped.stderr).toContain('no answer from Klaviyo');
    klaviyo.injectFaults({ status: 503 });
    const unavailable = await cli(['segment', 'ensure'], { KLAVIYO_SEGMENT_NAME: 'Flaky' });
    expect(unavailable.code).toBe(1);
    expect(unavailable.stderr).toContain('Klaviyo answered 503');
    expect(klaviyo.segmentCreates).toBe(creates);
    expect((await cli(['segment', 'ensure'], { KLAVIYO_SEGMENT_NAME: 'Flaky' })).code).toBe(0);
    expect(named('Flaky')).toHaveLength(1);
  });

  it('configuration and usage mistakes', async () => {
    const noKey = await cli(['segment', 'ensure'], { KLAVIYO_API_KEY: '' });
    expect(noKey.code).toBe(1);
    expect(noKey.stderr).toContain('KLAVIYO_API_KEY');
    expect((await cli(['segment', 'delete'])).code).toBe(2);
    expect((await cli([])).code).toBe(2);
    expect((await cli(['--help'])).code).toBe(0);
  });
});
