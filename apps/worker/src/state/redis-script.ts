import { createHash } from 'node:crypto';
import type { RedisConnection } from '@gk/queue';

/** A Lua script and its SHA1, for EVALSHA. */
export interface LuaScript {
  lua: string;
  sha: string;
}

export const defineScript = (lua: string): LuaScript => ({
  lua,
  sha: createHash('sha1').update(lua).digest('hex'),
});

/** EVALSHA, and EVAL once when the server does not know the script yet (first use, restart). */
export async function runScript(
  redis: RedisConnection,
  script: LuaScript,
  keys: readonly string[],
  args: readonly (string | number)[],
): Promise<unknown> {
  try {
    return await redis.evalsha(script.sha, keys.length, ...keys, ...args);
  } catch (err) {
    if (!(err instanceof Error) || !err.message.includes('NOSCRIPT')) throw err;
    return redis.eval(script.lua, keys.length, ...keys, ...args);
  }
}
