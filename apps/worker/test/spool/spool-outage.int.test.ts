import { spoolOutageSuite } from './spool-outage.js';

// The whole stack (startStack) through a 5 s Redis outage under 20 webhooks/s, in `npm test`;
// spool-outage.chaos.test.ts runs the 30 s outage.
spoolOutageSuite({ outageMs: 5_000 });
