/**
 * The ingest benchmark's baseline: a bare Express 5 app answering 200 to the same POST with no
 * work at all (no auth, no body parsing, no logging, no Redis). Run as its own process, like the
 * ingest, with `PORT` and `HOST`.
 */
import { createServer } from 'node:http';
import express from 'express';

const app = express();
app.disable('x-powered-by');
app.post('/webhooks/gladly', (_req, res) => {
  res.status(200).json({ status: 'accepted' });
});
app.get('/readyz', (_req, res) => {
  res.status(200).json({ status: 'ready' });
});

const server = createServer(app);
server.listen(Number(process.env.PORT ?? 3000), process.env.HOST ?? '127.0.0.1');
const stop = () => server.close(() => process.exit(0));
process.once('SIGTERM', stop);
process.once('SIGINT', stop);
