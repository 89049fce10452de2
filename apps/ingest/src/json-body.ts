import express, { type Request, type Response } from 'express';

/** An error shaped like body-parser's (status and type), so problemFromError answers the same. */
function bodyError(status: number, type: string, message: string): Error {
  return Object.assign(new Error(message), { status, statusCode: status, expose: true, type });
}

/** JSON's whitespace (RFC 8259), as body-parser's strict check skips it. */
function firstNonWhitespace(text: string): string | undefined {
  for (const char of text) {
    if (char !== ' ' && char !== '\t' && char !== '\n' && char !== '\r') return char;
  }
  return undefined;
}

/**
 * body-parser's strict JSON parse: an empty body is `{}`; anything but an object or array at the
 * top is a syntax error, as is what JSON.parse refuses.
 */
function parseStrictJson(text: string): unknown {
  if (text.length === 0) return {};
  const first = text[0] === '{' || text[0] === '[' ? text[0] : firstNonWhitespace(text);
  if (first !== '{' && first !== '[') throw bodyError(400, 'entity.parse.failed', 'strict JSON violation');
  try {
    return JSON.parse(text);
  } catch {
    throw bodyError(400, 'entity.parse.failed', 'invalid JSON');
  }
}

/** A plain UTF-8 body of a length Node's parser enforces: what every Gladly webhook is. */
function isPlainBody(req: Request, limit: number): boolean {
  const { headers } = req;
  const encoding = headers['content-encoding'];
  if (encoding !== undefined && encoding.toLowerCase() !== 'identity') return false;
  if (headers['transfer-encoding'] !== undefined) return false;
  const length = headers['content-length'];
  if (length === undefined || !/^[1-9][0-9]{0,9}$/.test(length) || Number(length) > limit) return false;
  const type = headers['content-type'] ?? '';
  if (type.includes(';') && !/^[^;]*; *charset="?utf-8"? *$/i.test(type)) return false;
  // body-parser leaves a request it sees as finished unread.
  return Boolean(req.socket?.readable) && !(req.complete && !req.readable);
}

/**
 * Reads a webhook's JSON body into `req.body`, with body-parser's answers (limit, strict JSON,
 * the empty body as `{}`, a UTF-8 byte order mark dropped). A plain UTF-8 body with a
 * Content-Length within the limit (every Gladly webhook) is read here: body-parser's stream
 * decoding, charset and type checks cost more CPU than the rest of reading. Anything else
 * (compressed, another charset, chunked, too large) goes to Express's parser, which knows it.
 */
export function createJsonBodyReader(limit: number): (req: Request, res: Response) => Promise<void> {
  const parseJsonBody = express.json({ limit, strict: true, type: () => true });
  const viaBodyParser = (req: Request, res: Response) =>
    new Promise<void>((resolve, reject) => {
      parseJsonBody(req, res, (err?: unknown) => (err ? reject(err) : resolve()));
    });

  return (req, res) => {
    if (!isPlainBody(req, limit)) return viaBodyParser(req, res);
    return new Promise<void>((resolve, reject) => {
      const chunks: Buffer[] = [];
      let received = 0;
      const cleanup = () => {
        req.removeListener('data', onData);
        req.removeListener('end', onEnd);
        req.removeListener('aborted', onAborted);
        req.removeListener('error', onAborted);
        req.removeListener('close', onAborted);
      };
      const onData = (chunk: Buffer) => {
        chunks.push(chunk);
        received += chunk.length;
      };
      const onEnd = () => {
        cleanup();
        const bytes = chunks.length === 1 ? (chunks[0] as Buffer) : Buffer.concat(chunks, received);
        let text = bytes.toString('utf8');
        if (text.charCodeAt(0) === 0xfeff) text = text.slice(1);
        try {
          req.body = parseStrictJson(text);
          resolve();
        } catch (err) {
          reject(err);
        }
      };
      const onAborted = () => {
        cleanup();
        reject(bodyError(400, 'request.aborted', 'request aborted'));
      };
      req.on('data', onData);
      req.on('end', onEnd);
      req.on('aborted', onAborted);
      req.on('error', onAborted);
      req.on('close', onAborted);
    });
  };
}
