/**
 * Real CPython peers for interop tests: every `$(pyenv root)/versions/3.*`
 * interpreter, plus `python3` on PATH. When none is found, the interop suites
 * register a pending test that says so (never a silent pass).
 */
import { execFileSync, spawn } from 'node:child_process';
import { existsSync, readdirSync, realpathSync } from 'node:fs';
import { join } from 'node:path';
import { childLines, type ChildLines } from './child-lines.js';

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

/** The newest CPython found, at least 3.`minMinor`; undefined when there is none. */
export function newestPython(minMinor = 0): Python | undefined {
  return pythons().filter((p) => p.minor >= minMinor).at(-1);
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

export type PythonProcess = ChildLines;

/**
 * For a describe block: `runPython` under `py`, every process it started
 * killed after each test (a failed test must not leave its peer running).
 */
export function pythonsKilledAfterEach(py: Python): (code: string, args?: string[], env?: NodeJS.ProcessEnv) => PythonProcess {
  const started: PythonProcess[] = [];
  afterEach(() => {
    for (const p of started.splice(0)) p.kill();
  });
  return (code, args, env) => {
    const p = runPython(py, code, args, env);
    started.push(p);
    return p;
  };
}

/** Runs `code` under `py`; `args` become `sys.argv[1:]`. */
export function runPython(py: Python, code: string, args: string[] = [], env: NodeJS.ProcessEnv = {}): PythonProcess {
  const child = spawn(py.executable, ['-u', '-c', code, ...args], {
    stdio: ['pipe', 'pipe', 'pipe'],
    env: { ...process.env, ...env },
  });
  return childLines(child, `python ${py.version}`);
}
