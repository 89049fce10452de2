import {
  createSegment,
  describeFailure,
  findSegmentsByName,
  isSuppressionDefinition,
  type KlaviyoAccountOptions,
  KlaviyoApiError,
} from '@gk/klaviyo';
import { ConfigError, parseEnv } from '@gk/runtime';
import type { z } from 'zod';
import { WorkerEnvShape } from '../config.js';
import type { CliIo } from './run.js';

export const KLAVIYO_USAGE = `Usage: npm run klaviyo -- segment ensure [--json]

segment ensure   creates the Klaviyo segment KLAVIYO_SEGMENT_NAME (default "In a Gladly
                 conversation") of profiles whose KLAVIYO_PROFILE_PROPERTY is true, or finds it
                 when it exists; prints its id and how to exclude it. Safe to run again: it never
                 creates a second one (the key needs segments:read and segments:write).
Exit status: 0 done, 1 Klaviyo or configuration error, 2 usage mistake.`;

const KlaviyoCliEnv = WorkerEnvShape.pick({
  KLAVIYO_API_URL: true,
  KLAVIYO_API_KEY: true,
  KLAVIYO_REVISION: true,
  KLAVIYO_PROFILE_PROPERTY: true,
  KLAVIYO_SEGMENT_NAME: true,
});

export function howToExclude(name: string): string {
  return [
    `To hold marketing back while a conversation is open, exclude "${name}":`,
    `  campaigns: Audience → "Don't send to" → add the segment "${name}"`,
    `  flows: flow filters → "If someone is in or not in a list or segment" → is not in "${name}"`,
    '  (a flow filter is checked at every step, so a customer who opens a conversation mid-flow is held too)',
  ].join('\n');
}

interface EnsureReport {
  segment: { id: string; name: string };
  created: boolean;
}

/**
 * Finds the segment by name, else creates it once. A create whose answer is lost (timeout, 5xx)
 * is never repeated: the name is looked up again instead, so no run makes a second segment, and
 * Create Segment's 100 requests a day are spent at most once per run.
 */
async function ensureSegment(
  options: KlaviyoAccountOptions,
  name: string,
  property: string,
): Promise<EnsureReport> {
  const existing = await findSegmentsByName(options, name);
  const [first] = existing;
  if (first) {
    if (!isSuppressionDefinition(first.definition, property)) {
      throw new KlaviyoApiError(
        `segment "${name}" (${first.id}) exists but is not "${property} equals true": fix it in Klaviyo, or set KLAVIYO_SEGMENT_NAME to another name`,
      );
    }
    return { segment: { id: first.id, name }, created: false };
  }
  try {
    return { segment: { id: await createSegment(options, name, property), name }, created: true };
  } catch (err) {
    const status = err instanceof KlaviyoApiError ? err.status : undefined;
    // A refusal (4xx) created nothing. Anything else may have: look before saying so.
    if (status !== undefined && status >= 400 && status < 500) throw err;
    const after = await findSegmentsByName(options, name);
    if (after[0]) return { segment: { id: after[0].id, name }, created: true };
    throw err;
  }
}

export async function runKlaviyoCli(
  argv: readonly string[],
  env: NodeJS.ProcessEnv,
  io: CliIo,
): Promise<number> {
  const json = argv.includes('--json');
  const words = argv.filter((a) => a !== '--json');
  if (words.includes('--help') || words.includes('-h') || words.length === 0) {
    (words.length === 0 ? io.stderr : io.stdout)(`${KLAVIYO_USAGE}\n`);
    return words.length === 0 ? 2 : 0;
  }
  if (words.length !== 2 || words[0] !== 'segment' || words[1] !== 'ensure') {
    io.stderr(`gk-klaviyo: unknown command "${words.join(' ')}"\n\n${KLAVIYO_USAGE}\n`);
    return 2;
  }
  let config: z.infer<typeof KlaviyoCliEnv>;
  try {
    config = parseEnv(KlaviyoCliEnv, env, { secrets: ['KLAVIYO_API_KEY'] });
  } catch (err) {
    if (!(err instanceof ConfigError)) throw err;
    io.stderr(`gk-klaviyo: ${err.message}\n`);
    return 1;
  }
  const options: KlaviyoAccountOptions = {
    baseUrl: config.KLAVIYO_API_URL,
    apiKey: config.KLAVIYO_API_KEY,
    revision: config.KLAVIYO_REVISION,
  };
  const name = config.KLAVIYO_SEGMENT_NAME;
  try {
    const report = await ensureSegment(options, name, config.KLAVIYO_PROFILE_PROPERTY);
    if (json) {
      io.stdout(`${JSON.stringify(report, null, 2)}\n`);
    } else {
      io.stdout(
        `${report.created ? 'created' : 'found'} segment "${name}": ${report.segment.id} (${config.KLAVIYO_PROFILE_PROPERTY} equals true)\n\n${howToExclude(name)}\n`,
      );
    }
    return 0;
  } catch (err) {
    const message =
      err instanceof KlaviyoApiError ? err.message : `no answer from Klaviyo (${describeFailure(err)})`;
    const hint =
      err instanceof KlaviyoApiError && (err.status === 401 || err.status === 403)
        ? '\n(check KLAVIYO_API_KEY; the key needs segments:read and segments:write — npm run doctor says which is missing)'
        : '';
    io.stderr(`gk-klaviyo: segment ensure failed: ${message}${hint}\n`);
    return 1;
  }
}
