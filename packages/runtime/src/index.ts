export * from './env.js';
export * from './health-server.js';
export * from './logger.js';
export * from './metrics.js';
export * from './readiness.js';
export * from './redis-checks.js';
export * from './redis-events.js';
export * from './shutdown.js';
