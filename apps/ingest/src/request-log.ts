import { randomUUID } from 'node:crypto';
import type { Logger } from '@gk/runtime';
import type { Request, RequestHandler, Response } from 'express';
import type { WebhookLogFields } from './webhook.js';

/** What the request log line says about the request: no headers (credentials), no query string. */
interface RequestFields {
  id: string;
  method: string;
  url: string;
}

/** Probes come every few seconds; a Redis outage is logged once by watchRedisConnection. */
const PROBE_PATHS = new Set(['/healthz', '/readyz', '/metrics']);

type Level = 'silent' | 'debug' | 'info' | 'warn' | 'error';

export interface RequestLog {
  /** One line per request once it is answered (or its connection closed), at a level by outcome. */
  middleware: RequestHandler;
  /** A logger whose lines carry the request's `req` fields, for the rare line a handler writes. */
  logFor(req: Request): Logger;
}

const FIELDS = Symbol('requestLogFields');
type Logged = Request & { [FIELDS]?: RequestFields };

/**
 * The request log line, written directly with the app's logger: the line pino-http wrote (the
 * same `req`, `webhook`, `res`, `responseTime` fields and message), without a child logger and
 * serializer wrappers per request, which cost more CPU than the rest of the webhook's logging.
 * The logger's redaction applies as to every line.
 */
export function createRequestLog(
  logger: Logger,
  options: { dashboardPath: string; webhookOf: (res: Response) => WebhookLogFields | undefined },
): RequestLog {
  const levelOf = (path: string, status: number, failed: boolean): Level => {
    if (PROBE_PATHS.has(path)) return status >= 400 || failed ? 'debug' : 'silent';
    if (failed || status >= 500) return status === 503 ? 'warn' : 'error';
    if (status >= 400) return 'warn';
    if (path.startsWith(options.dashboardPath)) return 'debug';
    return 'info';
  };

  const middleware: RequestHandler = (req, res, next) => {
    const startedAt = Date.now();
    const url = req.originalUrl || req.url;
    const query = url.indexOf('?');
    const fields: RequestFields = {
      id: randomUUID(),
      method: req.method,
      url: query < 0 ? url : url.slice(0, query),
    };
    (req as Logged)[FIELDS] = fields;
    const done = (err?: unknown) => {
      res.removeListener('close', done);
      res.removeListener('finish', done);
      res.removeListener('error', done);
      const status = res.statusCode;
      const failed = err !== undefined || status >= 500;
      const level = levelOf(fields.url, status, err !== undefined);
      if (level === 'silent' || !logger.isLevelEnabled(level)) return;
      const webhook = options.webhookOf(res);
      // null: the connection closed before an answer went out (as pino's response serializer says).
      const answered = { statusCode: res.headersSent ? status : null };
      const line = webhook
        ? { req: fields, webhook, res: answered, responseTime: Date.now() - startedAt }
        : { req: fields, res: answered, responseTime: Date.now() - startedAt };
      const message = webhook
        ? `webhook ${webhook.outcome}`
        : failed
          ? `request failed with ${status}`
          : 'request completed';
      logger[level](line, message);
    };
    res.on('close', done);
    res.on('finish', done);
    res.on('error', done);
    next();
  };

  return {
    middleware,
    logFor: (req) => {
      const fields = (req as Logged)[FIELDS];
      return fields ? logger.child({ req: fields }) : logger;
    },
  };
}
