import {
  BRIDGE_WEBHOOK_EVENTS,
  GladlyError,
  type GladlyWebhooksClient,
  missingWebhookEvents,
} from '@gk/gladly';
import type { Logger } from '@gk/runtime';
import { type SelfHealingMetrics, setWebhookState, type WebhookState } from './metrics.js';

/**
 * Gladly retries a delivery at 30 s, 5 min, 30 min and 1 h, then deactivates the webhook: the
 * first event it gave up on may be up to an hour older than `disabledAtDueToRetryLimit`, and other
 * deliveries were failing before it. Reconciling from 1 h 40 min before covers the whole span.
 */
export const RECOVERY_MARGIN_MS = 100 * 60_000;

export interface WatchResult {
  state: WebhookState;
  reenabled: boolean;
}

export interface WebhookWatchdogDeps {
  webhooks: GladlyWebhooksClient;
  /** GLADLY_WEBHOOK_URL. */
  url: string;
  metrics: SelfHealingMetrics;
  logger: Logger;
  /**
   * Queue a reconciliation from `fromMs`, after `delayMs` (so its end, now minus the lag, lies
   * after the moment the webhook came back). `key` names the deactivation, so repeated watchdog
   * runs queue it once.
   */
  queueRecovery(fromMs: number, key: string, delayMs: number): Promise<void>;
  /** Delay for the recovery queued after a re-enable (the reconciliation lag plus a little). */
  afterEnableDelayMs: number;
}

/**
 * One watchdog run: find the webhook by URL; when Gladly deactivated it after its retries, queue
 * a reconciliation of the gap at once (the worker can store what the ingest missed), then try to
 * enable it again. Gladly enables a webhook only if its PING gets a 200, so while the ingest is
 * down the PATCH is refused and the next run tries again; that refusal is the readiness check.
 * A webhook disabled by hand (no `disabledAtDueToRetryLimit`) is left alone: someone meant it.
 */
export function createWebhookWatchdog(deps: WebhookWatchdogDeps): () => Promise<WatchResult> {
  const { metrics, logger } = deps;
  const result = (state: WebhookState, reenabled = false): WatchResult => {
    setWebhookState(metrics, state);
    return { state, reenabled };
  };

  return async () => {
    let hook: Awaited<ReturnType<GladlyWebhooksClient['findByUrl']>>;
    try {
      hook = await deps.webhooks.findByUrl(deps.url);
    } catch (err) {
      logger.warn({ err: (err as Error).message }, 'webhook watchdog could not read the Gladly webhooks');
      return result('unknown');
    }
    if (!hook) {
      logger.warn(
        { url: deps.url },
        'no Gladly webhook has GLADLY_WEBHOOK_URL: run npm run gladly -- webhook register',
      );
      return result('missing');
    }
    const missing = missingWebhookEvents(hook, BRIDGE_WEBHOOK_EVENTS);
    metrics.webhookMissingEvents.set(missing.length);
    if (hook.enabled) return result('enabled');
    if (!hook.disabledAtDueToRetryLimit) {
      logger.warn(
        { webhookId: hook.id },
        'the Gladly webhook is disabled by hand; the watchdog leaves it so',
      );
      return result('disabled');
    }
    const disabledAt = Date.parse(hook.disabledAtDueToRetryLimit);
    const fromMs = (Number.isFinite(disabledAt) ? disabledAt : Date.now()) - RECOVERY_MARGIN_MS;
    const key = String(Number.isFinite(disabledAt) ? disabledAt : 'unknown');
    await deps.queueRecovery(fromMs, `${key}-disabled`, 0);
    try {
      await deps.webhooks.patch(hook.id, { enabled: true });
    } catch (err) {
      metrics.webhookEnableFailures.inc();
      const refused = err instanceof GladlyError && err.kind === 'protocol';
      logger.warn(
        { webhookId: hook.id, disabledAt: hook.disabledAtDueToRetryLimit, err: (err as Error).message },
        refused
          ? 'Gladly deactivated the webhook and refuses to enable it again yet (its PING to the ingest failed); retrying next run'
          : 'Gladly deactivated the webhook; enabling it failed, retrying next run',
      );
      return result('disabled_retry_limit');
    }
    metrics.webhookReenabled.inc();
    // Events Gladly recorded while the webhook was off and shortly before the enable: read once
    // more after the lag, so the last of them are in the Events API by then.
    await deps.queueRecovery(fromMs, `${key}-enabled`, deps.afterEnableDelayMs);
    logger.warn(
      {
        webhookId: hook.id,
        disabledAt: hook.disabledAtDueToRetryLimit,
        reconcileFrom: new Date(fromMs).toISOString(),
      },
      'Gladly had deactivated the webhook after its retries; re-enabled it and queued a reconciliation of the gap',
    );
    return result('enabled', true);
  };
}
