/**
 * `npm run doctor` and `npm run klaviyo -- segment ensure` after `npm start` in the sandbox, as a
 * user runs them: the scripts and built bins against the launcher's own Redis (AOF on), the
 * sandbox, the ingest and the worker. Then a sandbox whose Klaviyo key lacks scopes.
 */
import { captureLogOutput } from '@gk/testing';
import { afterEach, describe, expect, it } from 'vitest';
import { type LocalStack, runScript, startLocalStack } from './stack-process.js';

let stack: LocalStack | undefined;
afterEach(async () => {
  await stack?.stop();
  stack = undefined;
});

async function script(name: string, args: string[], env: Record<string, string>) {
  const run = runScript(name, env, args);
  const code = await run.exited;
  captureLogOutput(`${name} ${args.join(' ')}`, run.output());
  return { code, output: run.output() };
}

describe('npm run doctor in the sandbox', () => {
  it('exits 0 after npm start; segment ensure twice makes one segment; then the segment line is ✓', async () => {
    stack = await startLocalStack();
    const first = await script('doctor.mjs', [], stack.env);
    expect(first.output).not.toContain('✗');
    expect(first.code).toBe(0);
    expect(first.output).toContain('✓ redis persistence: AOF on (appendonly yes)');
    expect(first.output).toContain('✓ gladly credentials: accepted by');
    expect(first.output).toContain('! klaviyo segment: no segment "In a Gladly conversation"');

    const created = await script('klaviyo.mjs', ['segment', 'ensure'], stack.env);
    expect(created.code).toBe(0);
    expect(created.output).toContain('created segment "In a Gladly conversation"');
    const again = await script('klaviyo.mjs', ['segment', 'ensure'], stack.env);
    expect(again.code).toBe(0);
    expect(again.output).toContain('found segment "In a Gladly conversation"');
    const id = /created segment "[^"]+": (\S+)/.exec(created.output)?.[1];
    expect(again.output).toContain(`: ${id} `);

    const after = await script('doctor.mjs', ['--json'], stack.env);
    expect(after.code).toBe(0);
    const json = JSON.parse(after.output.slice(after.output.indexOf('{'))) as {
      ok: boolean;
      checks: { name: string; status: string; summary: string }[];
    };
    expect(json.ok).toBe(true);
    expect(json.checks.find((c) => c.name === 'klaviyo segment')).toMatchObject({ status: 'ok' });
  });

  it('exits 1 when the sandbox key lacks scopes (SANDBOX_KLAVIYO_SCOPES), naming each', async () => {
    stack = await startLocalStack({ SANDBOX_KLAVIYO_SCOPES: 'events:write' });
    const run = await script('doctor.mjs', [], stack.env);
    expect(run.code).toBe(1);
    expect(run.output).toContain('✗ klaviyo scope segments:read: missing');
    expect(run.output).toContain('✗ klaviyo scope metrics:read: missing');
    expect(run.output).toContain('✓ klaviyo scope events:write: present');
  });
});
