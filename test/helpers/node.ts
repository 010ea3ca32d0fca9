/**
 * Child Node processes for tests that need a process of their own (exit-time
 * cleanup, a busy event loop, memory measured away from the test runner).
 * The child imports mpconn from this build (`dist/src/index.js`).
 */
import { spawn } from 'node:child_process';
import { childLines, type ChildLines } from './child-lines.js';

/** URL of the built package entry, for `import … from '${MPCONN}'` in child code. */
export const MPCONN = new URL('../../src/index.js', import.meta.url).href;

export type NodeChild = ChildLines;

/**
 * Runs ESM `code` in a fresh `node`; `args` become `process.argv.slice(1)`
 * (node -e has no script name). `env` is added to this process's environment.
 */
export function runNode(code: string, args: string[] = [], nodeArgs: string[] = [], env: NodeJS.ProcessEnv = {}): NodeChild {
  const child = spawn(process.execPath, [...nodeArgs, '--input-type=module', '-e', code, '--', ...args], {
    stdio: ['pipe', 'pipe', 'pipe'],
    env: { ...process.env, ...env },
  });
  return childLines(child, 'node child');
}
