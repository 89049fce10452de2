export * from './connection.js';
export * from './dead-letter.js';
export * from './job-spec.js';
export * from './jobs.js';
export * from './names.js';
export * from './queues.js';
export * from './spool-records.js';
