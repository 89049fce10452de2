export * from './log-guard.js';
export * from './ports.js';
export * from './processes.js';
export * from './redis-cluster.js';
export * from './redis-server.js';
export * from './service-process.js';
export * from './test-redis.js';
