/**
 * A suite-wide net for "no log line contains an email address or a secret": every log line a
 * test sees (in-process loggers of the test harnesses, output of every child process started
 * through trackChild / startServiceProcess) is captured here, and the integration project's setup
 * file (vitest.log-guard.ts) fails a test file whose captured output holds an email address in
 * clear or one of the secrets registered by the helpers or passed to a service in its env.
 */

export interface LogLeak {
  /** Where the line came from: a harness name or `script#pid`. */
  source: string;
  /** The offending line, with the leaked value itself blanked out. */
  line: string;
  what: 'email' | 'secret';
}

/**
 * An address in clear. A mask (`r***@example.com`) does not match: `*` is not allowed right
 * before the `@`. Hashes and job ids carry no `@`.
 */
const EMAIL_IN_CLEAR = /[A-Za-z0-9._%+-]+@[A-Za-z0-9-]+(?:\.[A-Za-z0-9-]+)*\.[A-Za-z]{2,}/g;

/** Shorter values (user names, `gk`) would match innocent text; real test secrets are longer. */
const MIN_SECRET_LENGTH = 8;

/** Env var names whose values are secrets. */
const SECRET_ENV = /(PASSWORD|TOKEN|TOKENS|API_KEY|SECRET|BASIC_AUTH|HASH_KEY)$/;

const secrets = new Set<string>();
const captured = new Map<string, string>();
/** Sources whose output is a report for a person about sandbox data, allowed to show its emails. */
const reportSources: { source: RegExp; logLines?: RegExp }[] = [];

export function registerTestSecrets(...values: readonly string[]): void {
  for (const value of values) if (value.length >= MIN_SECRET_LENGTH) secrets.add(value);
}

/**
 * The secret values in a service's env: passwords, tokens and keys, each entry of a
 * comma-separated list, the password of each `user:password` pair and its Basic header form.
 */
export function secretsFromEnv(env: Record<string, string | undefined>): string[] {
  const found: string[] = [];
  for (const [name, value] of Object.entries(env)) {
    if (!value || !SECRET_ENV.test(name)) continue;
    for (const entry of value.split(',').map((v) => v.trim())) {
      if (!entry) continue;
      found.push(entry);
      if (name.endsWith('BASIC_AUTH')) {
        const password = entry.slice(entry.indexOf(':') + 1);
        found.push(password, Buffer.from(entry, 'utf8').toString('base64'));
      }
    }
  }
  return found;
}

/**
 * The output of a source matching `source` is a report for a person (the demo's summary of what
 * the sandbox's Klaviyo holds, the launcher's banner), so it may show sandbox emails; lines of it
 * matching `logLines` are service log lines passed through, and are checked like any log line.
 * Secrets are checked everywhere.
 */
export function treatAsReport(source: RegExp, options: { logLines?: RegExp } = {}): void {
  reportSources.push({ source, ...options });
}

/** Records a chunk of log output; chunks of one source are joined before lines are split. */
export function captureLogOutput(source: string, chunk: string): void {
  captured.set(source, (captured.get(source) ?? '') + chunk);
}

function blank(line: string, value: string): string {
  return line.split(value).join(`[${value.slice(0, 2)}…]`);
}

/** The leaks in one source's output. Pure: tests of the guard itself call it directly. */
export function findLogLeaks(
  source: string,
  text: string,
  options: { secrets?: Iterable<string>; checkEmails?: boolean | RegExp } = {},
): LogLeak[] {
  const leaks: LogLeak[] = [];
  const secretList = [...(options.secrets ?? secrets)];
  const { checkEmails = true } = options;
  for (const line of text.split('\n')) {
    if (!line) continue;
    const check = checkEmails instanceof RegExp ? checkEmails.test(line) : checkEmails;
    const emails = check ? (line.match(EMAIL_IN_CLEAR) ?? []) : [];
    const found = secretList.filter((s) => line.includes(s));
    if (emails.length === 0 && found.length === 0) continue;
    let shown = line.length > 400 ? `${line.slice(0, 400)}…` : line;
    for (const value of [...emails, ...found]) shown = blank(shown, value);
    leaks.push({ source, line: shown, what: found.length > 0 ? 'secret' : 'email' });
  }
  return leaks;
}

/** Checks and forgets everything captured so far; the setup file calls it after each test file. */
export function takeLogLeaks(): { leaks: LogLeak[]; linesChecked: number } {
  const leaks: LogLeak[] = [];
  let linesChecked = 0;
  for (const [source, text] of captured) {
    linesChecked += text.split('\n').filter(Boolean).length;
    const report = reportSources.find((r) => r.source.test(source));
    const checkEmails = report ? (report.logLines ?? false) : true;
    leaks.push(...findLogLeaks(source, text, { checkEmails }));
  }
  captured.clear();
  return { leaks, linesChecked };
}
