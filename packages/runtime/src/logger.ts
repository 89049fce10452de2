import { type Logger, pino } from 'pino';

export type { Logger } from 'pino';

/**
 * Paths pino blanks out wherever they appear in a log object. Emails are never logged by the
 * bridge's own code (it logs a hash), this is the net underneath for headers and payloads.
 */
export const REDACTED_PATHS = [
  'req.headers.authorization',
  'req.headers.cookie',
  'req.headers["x-gladly-token"]',
  'res.headers["set-cookie"]',
  'headers.authorization',
  'authorization',
  'password',
  'token',
  'apiKey',
  'email',
  '*.email',
  '*.password',
  '*.token',
  '*.apiKey',
];

export interface LoggerOptions {
  name: string;
  level?: string;
  /** Extra header names to redact (e.g. a custom webhook token header). */
  redactHeaders?: readonly string[];
  /** Where to write; defaults to stdout. Tests pass a stream to inspect lines. */
  destination?: pino.DestinationStream;
}

export function createLogger(options: LoggerOptions): Logger {
  const extra = (options.redactHeaders ?? []).map((h) => `req.headers["${h.toLowerCase()}"]`);
  return pino(
    {
      name: options.name,
      level: options.level ?? 'info',
      redact: { paths: [...REDACTED_PATHS, ...extra], censor: '[redacted]' },
      base: { service: options.name },
      timestamp: pino.stdTimeFunctions.isoTime,
      formatters: { level: (label) => ({ level: label }) },
    },
    options.destination ?? pino.destination({ sync: false }),
  );
}
