import { createServer, type IncomingMessage, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';

export interface StartOptions {
  /** Default 0: any free port. */
  port?: number;
  /** Default 127.0.0.1. */
  host?: string;
}

export type Handler = (
  req: IncomingMessage,
  res: ServerResponse,
  server: RunningServer,
) => Promise<void> | void;

export interface RunningServer {
  url: string;
  /** Waits `ms`; rejects once the server closes so a delayed answer never outlives it. */
  delay(ms: number): Promise<void>;
  close(): Promise<void>;
}

class ServerClosedError extends Error {
  constructor() {
    super('stand-in closed');
  }
}

/**
 * A node:http server on 127.0.0.1:0 by default. `close()` ends promptly: pending delays are
 * cancelled and every socket, idle keep-alive ones included, is closed.
 */
export async function startHttpServer(handler: Handler, options: StartOptions = {}): Promise<RunningServer> {
  const timers = new Map<NodeJS.Timeout, (err: Error) => void>();
  let closed = false;

  const server = createServer((req, res) => {
    Promise.resolve()
      .then(() => handler(req, res, running))
      .catch((err: unknown) => {
        if (err instanceof ServerClosedError || res.headersSent || res.destroyed) return;
        sendJson(res, 500, { errors: [{ code: 'error', detail: 'stand-in failure' }] });
      });
  });

  const running: RunningServer = {
    url: '',
    delay(ms) {
      if (closed) return Promise.reject(new ServerClosedError());
      return new Promise((resolve, reject) => {
        const timer = setTimeout(() => {
          timers.delete(timer);
          resolve();
        }, ms);
        timers.set(timer, reject);
      });
    },
    close() {
      closed = true;
      for (const [timer, reject] of timers) {
        clearTimeout(timer);
        reject(new ServerClosedError());
      }
      timers.clear();
      return new Promise((resolve) => {
        server.close(() => resolve());
        server.closeAllConnections();
      });
    },
  };

  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(options.port ?? 0, options.host ?? '127.0.0.1', () => {
      server.off('error', reject);
      resolve();
    });
  });
  const address = server.address() as AddressInfo;
  const host = address.family === 'IPv6' ? `[${address.address}]` : address.address;
  running.url = `http://${host}:${address.port}`;
  return running;
}

export function sendJson(
  res: ServerResponse,
  status: number,
  body: unknown,
  headers: Record<string, string> = {},
  contentType = 'application/json',
): void {
  if (res.destroyed || res.headersSent) return;
  const text = body === undefined ? '' : JSON.stringify(body);
  res.writeHead(status, {
    ...(text ? { 'content-type': contentType } : {}),
    'content-length': String(Buffer.byteLength(text)),
    ...headers,
  });
  res.end(text);
}

export class BodyTooLargeError extends Error {}

/** Reads the whole request body (the stand-ins always do, so keep-alive sockets stay usable). */
export function readBody(req: IncomingMessage, limitBytes = 1024 * 1024): Promise<Buffer> {
  return new Promise((resolve, reject) => {
    const chunks: Buffer[] = [];
    let size = 0;
    let tooLarge = false;
    req.on('data', (chunk: Buffer) => {
      size += chunk.length;
      if (size > limitBytes) tooLarge = true;
      else chunks.push(chunk);
    });
    req.on('end', () => (tooLarge ? reject(new BodyTooLargeError()) : resolve(Buffer.concat(chunks))));
    req.on('error', reject);
  });
}

/** The path without query string, with a trailing slash removed. */
export function pathOf(req: IncomingMessage): string {
  const path = (req.url ?? '/').split('?')[0] ?? '/';
  return path.length > 1 ? path.replace(/\/+$/, '') : path;
}
