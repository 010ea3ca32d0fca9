import { execFileSync } from 'node:child_process';
import { existsSync, readdirSync, readFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';

export interface Machine {
  cpuModel: string;
  cores: number;
  memoryGiB: number;
  os: string;
  node: string;
  python: string | null;
  pythonPath: string | null;
  mpconnCommit: string | null;
  /** Files under src/ that differ from that commit (the measured code is not exactly the commit). */
  srcDirty: string[];
}

function run(cmd: string, args: string[], cwd?: string): string | null {
  try {
    return execFileSync(cmd, args, { encoding: 'utf8', cwd, stdio: ['ignore', 'pipe', 'ignore'], timeout: 10_000 }).trimEnd();
  } catch {
    return null;
  }
}

/** `$(pyenv root)/versions/3.12.*\/bin/python`, newest 3.12 first; null when absent. */
export function findPython(explicit?: string): string | null {
  if (explicit !== undefined) return existsSync(explicit) ? explicit : null;
  const root = run('pyenv', ['root']) ?? path.join(os.homedir(), '.pyenv');
  const versions = path.join(root, 'versions');
  if (!existsSync(versions)) return null;
  const candidates = readdirSync(versions)
    .filter((v) => /^3\.12\.\d+$/.test(v))
    .sort((a, b) => Number(b.split('.')[2]) - Number(a.split('.')[2]));
  for (const v of candidates) {
    const p = path.join(versions, v, 'bin', 'python');
    if (existsSync(p)) return p;
  }
  return null;
}

export function describeMachine(root: string, python: string | null): Machine {
  let cpuModel = os.cpus()[0]?.model ?? 'unknown';
  try {
    const m = /^model name\s*:\s*(.+)$/m.exec(readFileSync('/proc/cpuinfo', 'utf8'));
    if (m) cpuModel = m[1]!.trim();
  } catch {
    /* not Linux */
  }
  const status = run('git', ['status', '--porcelain', '--', 'src'], root);
  return {
    cpuModel,
    cores: os.availableParallelism?.() ?? os.cpus().length,
    memoryGiB: Math.round((os.totalmem() / 2 ** 30) * 10) / 10,
    os: `${os.type()} ${os.release()} ${os.arch()}`,
    node: process.version,
    python: python !== null ? run(python, ['-c', 'import sys; print(sys.version.split()[0])']) : null,
    pythonPath: python,
    mpconnCommit: run('git', ['rev-parse', '--short', 'HEAD'], root),
    srcDirty: status === null || status === '' ? [] : status.split('\n').map((l) => l.slice(3)),
  };
}
