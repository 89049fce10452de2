import type { BridgeQueues, RedisConnection } from '@gk/queue';
import { createMetricsRegistry, type Logger, Readiness, redisReachable } from '@gk/runtime';
import express, { type ErrorRequestHandler, type Express, type Request, type RequestHandler } from 'express';
import type { Registry } from 'prom-client';
import { createWebhookAuthenticator } from './auth.js';
import type { IngestConfig } from './config.js';
import { createDashboard, DASHBOARD_PATH } from './dashboard.js';
import { createIngestMetrics } from './metrics.js';
import { problemFromError, problems, sendProblem } from './problem.js';
import { createRequestLog } from './request-log.js';
import { JobStore } from './store/job-store.js';
import { createWebhookHandler, type WebhookLogFields } from './webhook.js';

export const WEBHOOK_PATH = '/webhooks/gladly';

export interface AppDeps {
  config: Pick<IngestConfig, 'webhookAuth' | 'admin'> & { sandbox?: boolean };
  queues: BridgeQueues;
  /** The producer connection the queues use; `/readyz` pings it. */
  connection: RedisConnection;
  logger: Logger;
  registry?: Registry;
  readiness?: Readiness;
  now?: () => Date;
  /** Where webhooks are stored: Redis, with the local spool when Redis does not answer. */
  store?: JobStore;
  /** For the default store (no spool) only. */
  enqueueTimeoutMs?: number;
  /** True (OPS_PORT set): `/healthz`, `/readyz` and `/metrics` only on `ops`, not on `app`. */
  separateOps?: boolean;
}

export interface IngestApp {
  app: Express;
  /** `/healthz`, `/readyz` and `/metrics` alone, for a listener on OPS_PORT. */
  ops: Express;
  readiness: Readiness;
  registry: Registry;
}

/**
 * The path as received: `req.path` is relative to a mount point while a mounted router (the
 * dashboard) handles the request, and still is when the response finishes.
 */
function pathOf(req: Request): string {
  return (req.originalUrl || req.url).split('?')[0] ?? '/';
}

/** A fixed route label per request, so metrics never get a series per URL someone tried. */
function routeLabel(req: Request): string {
  const path = pathOf(req);
  if (path === WEBHOOK_PATH || path === '/healthz' || path === '/readyz' || path === '/metrics') return path;
  if (path === DASHBOARD_PATH || path.startsWith(`${DASHBOARD_PATH}/`)) return DASHBOARD_PATH;
  return 'other';
}

/** What the webhook handler recorded for the request log line, if this was a webhook. */
function webhookOf(res: express.Response): WebhookLogFields | undefined {
  return res.locals?.webhook as WebhookLogFields | undefined;
}

/**
 * The ingest's HTTP app: Gladly webhook, health, metrics and the queue dashboard. Opens nothing
 * itself; the caller owns the Redis connection, the queues and the listener.
 */
export function createApp(deps: AppDeps): IngestApp {
  const registry = deps.registry ?? createMetricsRegistry('ingest');
  const store =
    deps.store ??
    new JobStore({
      queues: deps.queues,
      spool: null,
      logger: deps.logger,
      ...(deps.enqueueTimeoutMs === undefined ? {} : { enqueueTimeoutMs: deps.enqueueTimeoutMs }),
    });
  store.instrument(registry);
  const readiness =
    deps.readiness ??
    new Readiness().add(
      'redis',
      // The probe key shares the queues' hash tag: on a cluster, the master holding them is asked.
      store.redisReadiness(
        redisReachable(deps.connection, 1_000, deps.queues.transitions.toKey('ready-probe')),
      ),
    );
  const metrics = createIngestMetrics(registry, deps.queues);
  const app = express();
  app.disable('x-powered-by');

  app.use((req, res, next) => {
    const stop = metrics.requestDuration.startTimer();
    res.once('finish', () =>
      stop({ method: req.method, route: routeLabel(req), status_code: res.statusCode }),
    );
    // While shutting down, no keep-alive: the client's next request goes to another instance.
    if (readiness.shuttingDown) res.setHeader('Connection', 'close');
    res.setHeader('X-Content-Type-Options', 'nosniff');
    next();
  });

  const requestLog = createRequestLog(deps.logger, { dashboardPath: DASHBOARD_PATH, webhookOf });
  app.use(requestLog.middleware);

  // First: a webhook request is matched here, before it walks the probe and dashboard routes.
  app.post(
    WEBHOOK_PATH,
    createWebhookHandler({
      authenticate: createWebhookAuthenticator(deps.config.webhookAuth),
      metrics,
      logFor: requestLog.logFor,
      now: deps.now ?? (() => new Date()),
      store,
    }),
  );
  app.all(WEBHOOK_PATH, (_req, res) =>
    sendProblem(res, problems.methodNotAllowed('POST'), { Allow: 'POST' }),
  );

  // Probes and metrics: on the webhook port, or (OPS_PORT) only on the `ops` app's own listener.
  const ops = express.Router();
  ops.get('/healthz', (_req, res) => {
    res.set('Cache-Control', 'no-store').json({ status: 'ok' });
  });

  ops.get('/readyz', async (_req, res) => {
    const report = await readiness.evaluate();
    // Spool depth always (when on); warnings while it is in use (ready: it still stores webhooks).
    const { spool, warnings } = store.report();
    const extra = {
      ...(deps.config.sandbox ? { mode: 'sandbox' } : {}),
      ...(spool ? { spool } : {}),
      ...(warnings.length > 0 ? { warnings } : {}),
    };
    res
      .status(report.ready ? 200 : 503)
      .set('Cache-Control', 'no-store')
      .json(
        report.ready
          ? { status: 'ready', ...extra }
          : { status: 'not ready', reasons: report.reasons, ...extra },
      );
  });

  ops.get('/metrics', async (_req, res) => {
    const text = await registry.metrics();
    res.set('Cache-Control', 'no-store').type(registry.contentType).send(text);
  });

  if (!deps.separateOps) app.use(ops);

  if (deps.config.admin) {
    app.use(DASHBOARD_PATH, ...createDashboard(deps.queues, deps.config.admin));
    deps.logger.info(
      { path: DASHBOARD_PATH, readOnly: deps.config.admin.readOnly },
      'queue dashboard on (Basic auth with ADMIN_USERNAME/ADMIN_PASSWORD)',
    );
  } else {
    deps.logger.info('queue dashboard off: ADMIN_USERNAME and ADMIN_PASSWORD are not set');
  }

  const notFound: RequestHandler = (_req, res) => sendProblem(res, problems.notFound());
  app.use(notFound);

  /** Never a stack trace in an answer; unknown errors are a 500 problem and one log line. */
  const handleError: ErrorRequestHandler = (err, req, res, _next) => {
    const problem = problemFromError(err);
    if (problem.status >= 500) requestLog.logFor(req).error({ err }, 'unhandled error');
    if (res.headersSent) {
      res.destroy();
      return;
    }
    sendProblem(res, problem);
  };
  app.use(handleError);

  const opsApp = express();
  opsApp.disable('x-powered-by');
  opsApp.use(ops);
  opsApp.use(notFound);

  return { app, ops: opsApp, readiness, registry };
}
