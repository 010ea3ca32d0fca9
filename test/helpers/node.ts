/**
 * Child Node processes for tests that need a process of their own (exit-time
 * cleanup, a busy event loop, memory measured away from the test runner).
 * The child imports mpconn from this build (`dist/src/index.js`).
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { once } from 'node:events';
import { createInterface } from 'node:readline';

/** URL of the built package entry, for `import … from '${MPCONN}'` in child code. */
export const MPCONN = new URL('../../src/index.js', import.meta.url).href;

export interface NodeChild {
  process: ChildProcess;
  line(): Promise<string>;
  exit(): Promise<{ code: number | null; signal: NodeJS.Signals | null; stderr: string }>;
  /** SIGKILL, if still running. */
  kill(): void;
}

/** Runs ESM `code` in a fresh `node`; `args` become `process.argv.slice(1)` (node -e has no script name). */
export function runNode(code: string, args: string[] = [], nodeArgs: string[] = []): NodeChild {
  const child = spawn(process.execPath, [...nodeArgs, '--input-type=module', '-e', code, '--', ...args], {
    stdio: ['pipe', 'pipe', 'pipe'],
  });
  let stderr = '';
  child.stderr!.on('data', (d: Buffer) => (stderr += d.toString()));
  const lines: string[] = [];
  const waiters: { resolve: (l: string) => void; reject: (e: Error) => void }[] = [];
  createInterface({ input: child.stdout! }).on('line', (l) => {
    const w = waiters.shift();
    if (w) w.resolve(l);
    else lines.push(l);
  });
  const exited = once(child, 'close').then(([code, signal]) => {
    for (const w of waiters.splice(0)) w.reject(new Error(`node child exited (${code ?? signal}); stderr:\n${stderr}`));
    return { code: code as number | null, signal: signal as NodeJS.Signals | null, stderr };
  });
  return {
    process: child,
    line: () => {
      const l = lines.shift();
      if (l !== undefined) return Promise.resolve(l);
      if (child.exitCode !== null || child.signalCode !== null) {
        return Promise.reject(new Error(`node child has exited; stderr:\n${stderr}`));
      }
      return new Promise((resolve, reject) => waiters.push({ resolve, reject }));
    },
    exit: () => exited,
    kill: () => {
      if (child.exitCode === null && child.signalCode === null) child.kill('SIGKILL');
    },
  };
}
