import { createBullBoard } from '@bull-board/api';
import { BullMQAdapter } from '@bull-board/api/bullMQAdapter';
import { ExpressAdapter } from '@bull-board/express';
import type { BridgeQueues } from '@gk/queue';
import type { RequestHandler } from 'express';
import { ADMIN_REALM, basicChallenge, createBasicAuthenticator } from './auth.js';
import type { AdminConfig } from './config.js';
import { problems, sendProblem } from './problem.js';

export const DASHBOARD_PATH = '/admin/queues';

/** The dashboard can retry and delete jobs: no framing, no caching, no referrer leaking job ids. */
const dashboardSecurityHeaders: RequestHandler = (_req, res, next) => {
  res.set({
    'X-Content-Type-Options': 'nosniff',
    'X-Frame-Options': 'DENY',
    'Referrer-Policy': 'no-referrer',
    'Cache-Control': 'no-store',
  });
  next();
};

/**
 * Bull Board over every queue, behind its own Basic credentials (never the webhook's: the
 * authenticator only knows the admin pair). Returns the handlers to mount at DASHBOARD_PATH.
 */
export function createDashboard(queues: BridgeQueues, admin: AdminConfig): RequestHandler[] {
  const serverAdapter = new ExpressAdapter();
  serverAdapter.setBasePath(DASHBOARD_PATH);
  const options = { readOnlyMode: admin.readOnly, allowRetries: !admin.readOnly };
  createBullBoard({
    queues: Object.values(queues).map((queue) => new BullMQAdapter(queue, options)),
    serverAdapter,
    options: { uiConfig: { boardTitle: 'Gladly → Klaviyo' } },
  });
  const authenticate = createBasicAuthenticator([{ username: admin.username, password: admin.password }]);
  const requireAdmin: RequestHandler = (req, res, next) => {
    if (authenticate(req.headers)) return next();
    sendProblem(res, problems.unauthorized(), { 'WWW-Authenticate': basicChallenge(ADMIN_REALM) });
  };
  return [dashboardSecurityHeaders, requireAdmin, serverAdapter.getRouter() as RequestHandler];
}
