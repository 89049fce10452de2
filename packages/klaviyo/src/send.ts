import { Agent as HttpAgent, request as httpRequest, type IncomingMessage } from 'node:http';
import { Agent as HttpsAgent, request as httpsRequest } from 'node:https';
import type { Socket } from 'node:net';
import { performance } from 'node:perf_hooks';
import { TLSSocket } from 'node:tls';

export interface SendOptions {
  method: 'POST';
  headers: Record<string, string>;
  body: string;
  timeoutMs: number;
  /** `performance.now()` value after which nothing may be sent (see CreateEventOptions). */
  deadline?: number;
}

export interface SentAnswer {
  status: number;
  headers: Headers;
  text: string;
}

/** Raised instead of sending: the caller's deadline had passed when the socket was ready. */
export class DeadlinePassedError extends Error {
  constructor() {
    super('deadline passed before sending');
    this.name = 'DeadlinePassedError';
  }
}

/** TLS sockets whose handshake finished (a kept-alive one is handed out again already secure). */
const secured = new WeakSet<Socket>();

const agents = {
  http: new HttpAgent({ keepAlive: true }),
  https: new HttpsAgent({ keepAlive: true }),
};

/**
 * One HTTP request whose bytes leave only once the socket is ready, with the caller's deadline
 * checked in that same synchronous step. fetch() cannot promise this: it may still be opening a
 * connection (or waiting for a pooled one) when the process is frozen, and on waking it writes
 * the request before any timer has run, so an attempt frozen past its per-email lease would
 * still send. Here the request is written by `end()` right after the check (Node tries the
 * socket write at once), and a socket still connecting (or in its TLS handshake) is waited for
 * first. No redirects are followed (a redirected POST would lose the event).
 */
export function sendRequest(url: string, options: SendOptions): Promise<SentAnswer> {
  const target = new URL(url);
  const secure = target.protocol === 'https:';
  return new Promise<SentAnswer>((resolve, reject) => {
    let settled = false;
    const finish = (err: Error | null, answer?: SentAnswer) => {
      if (settled) return;
      settled = true;
      clearTimeout(timer);
      if (err) reject(err);
      else resolve(answer as SentAnswer);
    };
    const req = (secure ? httpsRequest : httpRequest)(target, {
      method: options.method,
      headers: { ...options.headers, 'content-length': String(Buffer.byteLength(options.body)) },
      agent: secure ? agents.https : agents.http,
    });
    const timer = setTimeout(() => {
      const err = new Error(`no answer within ${options.timeoutMs} ms`);
      err.name = 'TimeoutError';
      req.destroy(err);
    }, options.timeoutMs);
    req.once('error', (err) => finish(err));
    req.once('response', (res: IncomingMessage) => {
      const chunks: Buffer[] = [];
      res.on('data', (chunk: Buffer) => chunks.push(chunk));
      res.once('error', (err) => finish(err));
      res.once('end', () => {
        const headers = new Headers();
        for (const [name, value] of Object.entries(res.headers)) {
          if (value === undefined) continue;
          for (const v of Array.isArray(value) ? value : [value]) headers.append(name, v);
        }
        finish(null, { status: res.statusCode ?? 0, headers, text: Buffer.concat(chunks).toString('utf8') });
      });
    });
    const send = () => {
      if (options.deadline !== undefined && performance.now() >= options.deadline) {
        req.destroy(new DeadlinePassedError());
        return;
      }
      req.end(options.body);
    };
    req.once('socket', (socket: Socket) => {
      if (socket instanceof TLSSocket) {
        if (secured.has(socket)) return send();
        socket.once('secureConnect', () => {
          secured.add(socket);
          send();
        });
      } else if (socket.connecting) socket.once('connect', send);
      else send();
    });
  });
}
