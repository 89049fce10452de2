import { METRIC_PREFIX } from '@gk/runtime';
import { Counter, Gauge, type Registry } from 'prom-client';

/** What the watchdog last saw of the bridge's Gladly webhook. */
export const WEBHOOK_STATES = ['enabled', 'disabled_retry_limit', 'disabled', 'missing', 'unknown'] as const;
export type WebhookState = (typeof WEBHOOK_STATES)[number];

export const RECONCILE_TRIGGERS = ['schedule', 'watchdog'] as const;
export type ReconcileTrigger = (typeof RECONCILE_TRIGGERS)[number];

export interface SelfHealingMetrics {
  /** One-hot: 1 for the state the watchdog last saw. */
  webhookState: Gauge<'state'>;
  /** Subscribed events the bridge needs but the webhook lacks (0 when all are there). */
  webhookMissingEvents: Gauge;
  webhookReenabled: Counter;
  /** PATCH enabled:true refused (Gladly's PING to the ingest failed) or not answered. */
  webhookEnableFailures: Counter;
  reconcileRuns: Counter<'trigger' | 'outcome'>;
  reconcileRead: Counter<'trigger'>;
  /** Events stored by a reconciliation that the webhook had not delivered. */
  reconcileRecovered: Counter<'trigger' | 'kind'>;
  /** Runs whose gap reached past Gladly's 24 h window, and how much of it was lost. */
  reconcileGapLost: Counter;
  reconcileGapLostSeconds: Counter;
  /** Unix time up to which the Events API has been read (the watermark). */
  reconcileWatermark: Gauge;
}

export function setWebhookState(metrics: SelfHealingMetrics, state: WebhookState): void {
  for (const s of WEBHOOK_STATES) metrics.webhookState.set({ state: s }, s === state ? 1 : 0);
}

export function createSelfHealingMetrics(registry: Registry): SelfHealingMetrics {
  const registers = [registry];
  const metrics: SelfHealingMetrics = {
    webhookState: new Gauge({
      name: `${METRIC_PREFIX}gladly_webhook_state`,
      help: "The bridge's Gladly webhook as the watchdog last saw it (1 = this state)",
      labelNames: ['state'],
      registers,
    }),
    webhookMissingEvents: new Gauge({
      name: `${METRIC_PREFIX}gladly_webhook_missing_events`,
      help: 'Event types the bridge uses that its Gladly webhook is not subscribed to',
      registers,
    }),
    webhookReenabled: new Counter({
      name: `${METRIC_PREFIX}gladly_webhook_reenabled_total`,
      help: 'Times the watchdog re-enabled the Gladly webhook after Gladly deactivated it',
      registers,
    }),
    webhookEnableFailures: new Counter({
      name: `${METRIC_PREFIX}gladly_webhook_enable_failures_total`,
      help: 'Attempts to re-enable the Gladly webhook that Gladly refused (PING failed) or did not answer',
      registers,
    }),
    reconcileRuns: new Counter({
      name: `${METRIC_PREFIX}reconcile_runs_total`,
      help: 'Events API reconciliation runs by trigger and outcome',
      labelNames: ['trigger', 'outcome'],
      registers,
    }),
    reconcileRead: new Counter({
      name: `${METRIC_PREFIX}reconcile_events_read_total`,
      help: 'Events read from the Events API by reconciliation',
      labelNames: ['trigger'],
      registers,
    }),
    reconcileRecovered: new Counter({
      name: `${METRIC_PREFIX}reconcile_recovered_total`,
      help: 'Events reconciliation stored that no webhook had delivered, by trigger and kind',
      labelNames: ['trigger', 'kind'],
      registers,
    }),
    reconcileGapLost: new Counter({
      name: `${METRIC_PREFIX}reconcile_gap_lost_total`,
      help: "Reconciliation runs whose gap reached past Gladly's 24 h Events API window",
      registers,
    }),
    reconcileGapLostSeconds: new Counter({
      name: `${METRIC_PREFIX}reconcile_gap_lost_seconds_total`,
      help: "Seconds of events reconciliation could not read (older than Gladly's 24 h window)",
      registers,
    }),
    reconcileWatermark: new Gauge({
      name: `${METRIC_PREFIX}reconcile_watermark_timestamp_seconds`,
      help: 'Unix time up to which continuous reconciliation has read the Events API',
      registers,
    }),
  };
  for (const trigger of RECONCILE_TRIGGERS) {
    for (const outcome of ['ok', 'failed']) metrics.reconcileRuns.inc({ trigger, outcome }, 0);
    metrics.reconcileRead.inc({ trigger }, 0);
    for (const kind of ['transition', 'customer_change'])
      metrics.reconcileRecovered.inc({ trigger, kind }, 0);
  }
  // All 0 until the watchdog's first run (or for good when it is off).
  for (const state of WEBHOOK_STATES) metrics.webhookState.set({ state }, 0);
  metrics.reconcileGapLost.inc(0);
  metrics.reconcileGapLostSeconds.inc(0);
  return metrics;
}
