/**
 * Real CPython peers for interop tests: every `$(pyenv root)/versions/3.*`
 * interpreter, plus `python3` on PATH. When none is found, the interop suites
 * register a pending test that says so (never a silent pass).
 */
import { execFileSync, spawn, type ChildProcess } from 'node:child_process';
import { existsSync, readdirSync, realpathSync } from 'node:fs';
import { join } from 'node:path';
import { createInterface } from 'node:readline';

export interface Python {
  /** e.g. '3.12.1' */
  version: string;
  minor: number;
  executable: string;
}

function versionOf(executable: string): string | null {
  try {
    return execFileSync(executable, ['-c', 'import sys; print("%d.%d.%d" % sys.version_info[:3])'], {
      encoding: 'utf8',
      stdio: ['ignore', 'pipe', 'ignore'],
      timeout: 10_000,
    }).trim();
  } catch {
    return null;
  }
}

let found: Python[] | null = null;

/** Every distinct CPython 3.x on this machine, oldest first. */
export function pythons(): Python[] {
  if (found !== null) return found;
  const candidates: string[] = [];
  try {
    const root = execFileSync('pyenv', ['root'], { encoding: 'utf8', stdio: ['ignore', 'pipe', 'ignore'] }).trim();
    const versions = join(root, 'versions');
    for (const name of readdirSync(versions)) candidates.push(join(versions, name, 'bin', 'python'));
  } catch {
    // no pyenv
  }
  for (const dir of (process.env.PATH ?? '').split(':')) candidates.push(join(dir, 'python3'));
  const seen = new Set<string>();
  const result: Python[] = [];
  for (const candidate of candidates) {
    if (!existsSync(candidate)) continue;
    const version = versionOf(candidate);
    if (version === null || !version.startsWith('3.')) continue;
    let real = candidate;
    try {
      real = realpathSync(candidate);
    } catch {
      // keep the candidate path
    }
    if (seen.has(version) || seen.has(real)) continue;
    seen.add(version);
    seen.add(real);
    result.push({ version, minor: Number(version.split('.')[1]), executable: candidate });
  }
  result.sort((a, b) => a.minor - b.minor);
  found = result;
  return result;
}

export const NO_PYTHON =
  'SKIPPED: no CPython 3.x found (looked in $(pyenv root)/versions/*/bin/python and python3 on PATH), so this interop test did not run';

/**
 * Declares `body` once per CPython found (filtered by `minMinor`..`maxMinor`);
 * when there is none, a pending test says so in the report.
 */
export function forEachPython(
  filter: { min?: number; max?: number; only?: number[] } | undefined,
  body: (py: Python) => void,
): void {
  const chosen = pythons().filter(
    (p) =>
      (filter?.min === undefined || p.minor >= filter.min) &&
      (filter?.max === undefined || p.minor <= filter.max) &&
      (filter?.only === undefined || filter.only.includes(p.minor)),
  );
  if (chosen.length === 0) {
    it(`${NO_PYTHON}${filter ? ` (wanted ${JSON.stringify(filter)})` : ''}`);
    return;
  }
  for (const py of chosen) body(py);
}

export interface PythonProcess {
  process: ChildProcess;
  /** The next line the script prints on stdout. */
  line(): Promise<string>;
  /** Resolves when it exits, with everything it printed. */
  exit(): Promise<{ code: number | null; signal: NodeJS.Signals | null; stdout: string; stderr: string }>;
  kill(): void;
}

/** Runs `code` under `py`; `args` become `sys.argv[1:]`. */
export function runPython(py: Python, code: string, args: string[] = [], env: NodeJS.ProcessEnv = {}): PythonProcess {
  const child = spawn(py.executable, ['-u', '-c', code, ...args], {
    stdio: ['pipe', 'pipe', 'pipe'],
    env: { ...process.env, ...env },
  });
  let stdout = '';
  let stderr = '';
  const pending: string[] = [];
  const waiters: ((line: string) => void)[] = [];
  const lineWaiterErrors: ((err: Error) => void)[] = [];
  const rl = createInterface({ input: child.stdout! });
  rl.on('line', (l) => {
    stdout += l + '\n';
    const w = waiters.shift();
    lineWaiterErrors.shift();
    if (w) w(l);
    else pending.push(l);
  });
  child.stderr!.on('data', (d: Buffer) => (stderr += d.toString()));
  const exited = new Promise<{ code: number | null; signal: NodeJS.Signals | null; stdout: string; stderr: string }>(
    (resolve) => {
      child.on('close', (code, signal) => {
        for (const fail of lineWaiterErrors.splice(0)) {
          fail(new Error(`python ${py.version} exited (${code ?? signal}) before printing a line; stderr:\n${stderr}`));
        }
        waiters.length = 0;
        resolve({ code, signal, stdout, stderr });
      });
    },
  );
  return {
    process: child,
    line: () => {
      const l = pending.shift();
      if (l !== undefined) return Promise.resolve(l);
      if (child.exitCode !== null || child.signalCode !== null) {
        return Promise.reject(new Error(`python ${py.version} has exited; stderr:\n${stderr}`));
      }
      return new Promise<string>((resolve, reject) => {
        waiters.push(resolve);
        lineWaiterErrors.push(reject);
      });
    },
    exit: () => exited,
    kill: () => {
      child.kill('SIGKILL');
    },
  };
}
