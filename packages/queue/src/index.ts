export * from './connection.js';
export * from './jobs.js';
export * from './names.js';
export * from './queues.js';
