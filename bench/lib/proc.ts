import { readFileSync } from 'node:fs';

/** VmHWM (peak resident set size) of a process, in KiB, from /proc; null where there is no /proc. */
export function peakRssKiB(pid: number | 'self' = 'self'): number | null {
  try {
    const m = /^VmHWM:\s+(\d+) kB/m.exec(readFileSync(`/proc/${pid}/status`, 'utf8'));
    return m ? Number(m[1]) : null;
  } catch {
    return null;
  }
}
