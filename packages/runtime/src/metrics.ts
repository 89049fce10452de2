import { collectDefaultMetrics, Registry } from 'prom-client';

/** Every metric of the bridge starts with this, so one selector finds them all. */
export const METRIC_PREFIX = 'gk_';

/**
 * A registry per process (never prom-client's global one, so tests can build several apps in one
 * process) with Node's default process metrics and a `service` label.
 */
export function createMetricsRegistry(service: string): Registry {
  const registry = new Registry();
  registry.setDefaultLabels({ service });
  collectDefaultMetrics({ register: registry, prefix: METRIC_PREFIX });
  return registry;
}
