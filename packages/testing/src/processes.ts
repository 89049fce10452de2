import type { ChildProcess } from 'node:child_process';
import { basename } from 'node:path';
import { captureLogOutput } from './log-guard.js';

const children = new Set<ChildProcess>();
let hooked = false;

/** Remembers a child so it is killed when the test process exits, whatever happened. */
export function trackChild<T extends ChildProcess>(child: T): T {
  children.add(child);
  // Everything a child prints goes through the suite-wide log guard (see log-guard.ts).
  const source = `${child.spawnargs
    .slice(1)
    .map((a) => basename(a))
    .join(' ')}#${child.pid}`;
  child.stdout?.on('data', (d) => captureLogOutput(source, String(d)));
  child.stderr?.on('data', (d) => captureLogOutput(source, String(d)));
  child.once('exit', () => children.delete(child));
  if (!hooked) {
    hooked = true;
    process.once('exit', () => {
      for (const c of children) c.kill('SIGKILL');
    });
  }
  return child;
}
