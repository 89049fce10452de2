import { createServer, type Server } from 'node:http';
import type { Registry } from 'prom-client';
import type { Readiness } from './readiness.js';

export interface HealthServerOptions {
  readiness: Readiness;
  registry?: Registry;
  /** Shown in `/readyz` as `warnings` when non-empty; they do not make the process unready. */
  warnings?: () => string[];
  /** Said in every /readyz answer, e.g. "sandbox" (BRIDGE_SANDBOX=true). */
  mode?: string;
}

/**
 * A small HTTP listener for processes without an API of their own (the worker):
 * `/healthz` (alive), `/readyz` (200 only when every check passes, reasons otherwise), `/metrics`.
 */
export function createHealthServer(options: HealthServerOptions): Server {
  return createServer((req, res) => {
    const path = (req.url ?? '/').split('?')[0];
    const send = (status: number, body: unknown, type = 'application/json') => {
      res.writeHead(status, { 'content-type': type, 'cache-control': 'no-store' });
      res.end(typeof body === 'string' ? body : JSON.stringify(body));
    };
    if (req.method !== 'GET' && req.method !== 'HEAD') return send(405, { error: 'method not allowed' });
    if (path === '/healthz') return send(200, { status: 'ok' });
    if (path === '/readyz') {
      options.readiness.evaluate().then(
        (r) => {
          const warnings = options.warnings?.() ?? [];
          send(r.ready ? 200 : 503, {
            status: r.ready ? 'ready' : 'not ready',
            ...(options.mode ? { mode: options.mode } : {}),
            reasons: r.reasons,
            ...(warnings.length > 0 ? { warnings } : {}),
          });
        },
        (err: unknown) => send(503, { status: 'not ready', reasons: [String(err)] }),
      );
      return;
    }
    if (path === '/metrics' && options.registry) {
      const registry = options.registry;
      registry.metrics().then(
        (text) => send(200, text, registry.contentType),
        (err: unknown) => send(500, { error: String(err) }),
      );
      return;
    }
    send(404, { error: 'not found' });
  });
}

/** Listens and resolves once bound; rejects on EADDRINUSE and the like. */
export function listen(server: Server, port: number, host: string): Promise<void> {
  return new Promise((resolve, reject) => {
    server.once('error', reject);
    server.listen(port, host, () => {
      server.off('error', reject);
      resolve();
    });
  });
}

/** Stops accepting, waits for in-flight requests, and drops idle keep-alive sockets. */
export function closeServer(server: Server): Promise<void> {
  return new Promise((resolve) => {
    server.close(() => resolve());
    server.closeIdleConnections();
  });
}
