import { Agent, type IncomingMessage, request, type ServerResponse } from 'node:http';

/** Headers that describe one hop, not the message (RFC 9110 §7.6.1): never forwarded. */
const HOP_BY_HOP = new Set([
  'connection',
  'keep-alive',
  'proxy-authenticate',
  'proxy-authorization',
  'te',
  'trailer',
  'transfer-encoding',
  'upgrade',
]);

export interface Proxy {
  /** Resolves with the upstream status once the answer is passed on; 0 when the upstream dropped it. */
  forward(req: IncomingMessage, res: ServerResponse, upstreamUrl: string): Promise<number>;
  close(): void;
}

/**
 * Passes a request to a stand-in on a loopback port and its answer back unchanged, so the
 * sandbox can serve both stand-ins and its page on one port. When the stand-in drops the
 * connection (an injected `drop` fault), the client's connection is dropped too.
 */
export function createProxy(): Proxy {
  const agent = new Agent({ keepAlive: true, maxSockets: 64 });
  return {
    forward(req, res, upstreamUrl) {
      return new Promise((resolve) => {
        const target = new URL(req.url ?? '/', upstreamUrl);
        const headers: Record<string, string | string[]> = {};
        for (const [name, value] of Object.entries(req.headers)) {
          if (value !== undefined && !HOP_BY_HOP.has(name)) headers[name] = value;
        }
        headers.host = target.host;
        const upstream = request(target, { method: req.method ?? 'GET', headers, agent }, (answer) => {
          const out: Record<string, string | string[]> = {};
          for (const [name, value] of Object.entries(answer.headers)) {
            if (value !== undefined && !HOP_BY_HOP.has(name)) out[name] = value;
          }
          res.writeHead(answer.statusCode ?? 502, out);
          answer.pipe(res);
          answer.once('end', () => resolve(answer.statusCode ?? 502));
          answer.once('error', () => {
            res.destroy();
            resolve(0);
          });
        });
        upstream.once('error', () => {
          // The stand-in hung up without answering: do the same to the client.
          res.destroy();
          resolve(0);
        });
        // A client that hangs up first (a worker timing out) must not leave the upstream request open.
        res.once('close', () => {
          if (!res.writableFinished) upstream.destroy();
        });
        req.pipe(upstream);
      });
    },
    close() {
      agent.destroy();
    },
  };
}
