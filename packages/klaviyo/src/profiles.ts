import { classifyKlaviyoResponse, type KlaviyoHttpAnswer, type KlaviyoOutcome } from './classify.js';

/**
 * `GET {base}/api/profiles?filter=equals(email,"…")&fields[profile]=email&page[size]=1`: Klaviyo's
 * Get Profiles filtered by email, asking only for the email and one profile (all we need to know
 * is whether one exists). Filter values are double-quoted; a `"` or `\` in the address (legal in
 * a quoted local part, never seen in practice) is escaped with a backslash.
 */
export function buildProfileLookupUrl(baseUrl: string, email: string): string {
  const quoted = email.replace(/["\\]/g, (c) => `\\${c}`);
  const params = new URLSearchParams({
    filter: `equals(email,"${quoted}")`,
    'fields[profile]': 'email',
    'page[size]': '1',
  });
  return `${baseUrl.replace(/\/+$/, '')}/api/profiles?${params}`;
}

/** What a Get Profiles answer says about an email; failures as for Create Event. */
export type ProfileLookupOutcome =
  | { kind: 'exists'; status: number }
  | { kind: 'absent'; status: number }
  | Exclude<KlaviyoOutcome, { kind: 'delivered' }>;

/**
 * 200 with a non-empty `data` list → exists; with an empty one → absent. A 200 without a `data`
 * list is not the answer we asked for (a proxy, a wrong KLAVIYO_API_URL): retryable, so nothing
 * is skipped over it. Anything else is classified as for Create Event (429 pause, 401/403 key,
 * 5xx retry, other 4xx permanent).
 */
export function classifyProfileLookup(answer: KlaviyoHttpAnswer): ProfileLookupOutcome {
  if (answer.status === 200) {
    const data = (answer.body as { data?: unknown } | undefined)?.data;
    if (!Array.isArray(data)) {
      return {
        kind: 'retryable',
        status: 200,
        reason: 'Klaviyo Get Profiles answered 200 without a data list',
      };
    }
    return data.length > 0 ? { kind: 'exists', status: 200 } : { kind: 'absent', status: 200 };
  }
  const outcome = classifyKlaviyoResponse(answer);
  if (outcome.kind === 'delivered') {
    return {
      kind: 'retryable',
      status: answer.status,
      reason: `unexpected answer from Klaviyo (${answer.status})`,
    };
  }
  return outcome;
}
