/**
 * A child process driven through its stdout lines: the one reader behind
 * `runPython`, `runNode` and the stress suite's `runFixture`.
 */
import type { ChildProcess } from 'node:child_process';
import { once } from 'node:events';
import { createInterface } from 'node:readline';

export interface Exited {
  code: number | null;
  signal: NodeJS.Signals | null;
  stdout: string;
  stderr: string;
}

export interface ChildLines {
  process: ChildProcess;
  /** The next line it prints on stdout; rejects (with its stderr) if it exits first. */
  line(): Promise<string>;
  /** Resolves when it exits, with what it printed (stderr keeps its last 32 KiB at least). */
  exit(): Promise<Exited>;
  /** Sends `signal` (default SIGKILL) if it is still running. */
  kill(signal?: NodeJS.Signals): void;
}

export function childLines(child: ChildProcess, label: string): ChildLines {
  let stdout = '';
  let stderr = '';
  child.stderr!.on('data', (d: Buffer) => {
    stderr += d.toString();
    if (stderr.length > 64 * 1024) stderr = stderr.slice(-32 * 1024);
  });
  const lines: string[] = [];
  const waiters: { resolve: (l: string) => void; reject: (e: Error) => void }[] = [];
  createInterface({ input: child.stdout! }).on('line', (l) => {
    stdout += l + '\n';
    const w = waiters.shift();
    if (w) w.resolve(l);
    else lines.push(l);
  });
  const exited = once(child, 'close').then(([code, signal]): Exited => {
    for (const w of waiters.splice(0)) {
      w.reject(new Error(`${label} exited (${code ?? signal}) before printing a line; stderr:\n${stderr}`));
    }
    return { code: code as number | null, signal: signal as NodeJS.Signals | null, stdout, stderr };
  });
  return {
    process: child,
    line: () => {
      const l = lines.shift();
      if (l !== undefined) return Promise.resolve(l);
      if (child.exitCode !== null || child.signalCode !== null) {
        return Promise.reject(new Error(`${label} has exited (${child.exitCode ?? child.signalCode}); stderr:\n${stderr}`));
      }
      return new Promise((resolve, reject) => waiters.push({ resolve, reject }));
    },
    exit: () => exited,
    kill: (signal = 'SIGKILL') => {
      if (child.exitCode === null && child.signalCode === null) child.kill(signal);
    },
  };
}
