import { spoolOutageSuite } from './spool-outage.js';

// Issue 8's test: Redis down for 30 s under a steady 20 webhooks/s (`npm run test:chaos`).
spoolOutageSuite({ outageMs: 30_000 });
