// Types for scripts/deploy-metrics.mjs (a plain script, also imported by the operations test).
export interface MetricReference {
  name: string;
  matchers: { label: string; op: '=' | '!=' | '=~' | '!~'; value: string }[];
}
export const ROOT: string;
export function deployFiles(): string[];
export function metricReferences(text: string): MetricReference[];
export function exportedMetrics(): Promise<Map<string, Set<string>>>;
export function dashboardProblems(dashboard: unknown): string[];
export function checkDeploy(): Promise<{
  problems: string[];
  references: number;
  metrics: string[];
  exported: string[];
}>;
