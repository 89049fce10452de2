// What `npm start` gives its services when no real Gladly or Klaviyo is configured (the sandbox
// and the dev webhook pair), for the operator commands that must see the same configuration:
// `npm run doctor`, `npm run klaviyo`. Returns whether the sandbox route applies.
import { configured, DEV, stackUrls, value, webhookCredential } from './dev-stack.mjs';

export function applySandboxEnv(env) {
  const sandbox = !configured(env, 'KLAVIYO_API_KEY') && !configured(env, 'GLADLY_API_URL');
  if (sandbox) {
    const url = stackUrls(env).sandbox;
    env.GLADLY_API_URL = url;
    env.GLADLY_API_USER = value(env, 'SANDBOX_GLADLY_USER', DEV.sandboxGladlyUser);
    env.GLADLY_API_TOKEN = value(env, 'SANDBOX_GLADLY_TOKEN', DEV.sandboxGladlyToken);
    env.KLAVIYO_API_URL = url;
    env.KLAVIYO_API_KEY = value(env, 'SANDBOX_KLAVIYO_API_KEY', DEV.sandboxKlaviyoKey);
    // As npm start: the sandbox route accepts the dev credentials even with NODE_ENV=production.
    env.BRIDGE_SANDBOX = 'true';
  }
  // npm start gives the ingest the dev webhook pair when none is configured.
  const authDisabled = /^(true|1|yes)$/i.test(value(env, 'WEBHOOK_AUTH_DISABLED', 'false'));
  if (webhookCredential(env).source === 'dev' && !authDisabled) {
    env.WEBHOOK_BASIC_AUTH = `${DEV.webhookUser}:${DEV.webhookPassword}`;
  }
  return sandbox;
}
