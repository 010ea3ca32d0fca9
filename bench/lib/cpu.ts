/**
 * How much of the machine's CPU went to processes other than the benchmark's
 * own. The load average cannot say: the two processes being measured keep a
 * 2-core machine at a load of about 2 by themselves.
 */
import { execFileSync } from 'node:child_process';
import { readFileSync } from 'node:fs';

let ticksPerSecond: number | null = null;

/** USER_HZ, the unit of /proc/stat and /proc/<pid>/stat times. */
export function clockTicks(): number {
  if (ticksPerSecond === null) {
    try {
      ticksPerSecond = Number(execFileSync('getconf', ['CLK_TCK'], { encoding: 'utf8' }).trim()) || 100;
    } catch {
      ticksPerSecond = 100;
    }
  }
  return ticksPerSecond;
}

/**
 * CPU time the whole machine spent running processes (user + nice + system;
 * not interrupts, which our own loopback traffic causes too) and time stolen by
 * the hypervisor, in ticks; null without /proc.
 */
export function machineTicks(): { busy: number; steal: number } | null {
  try {
    const line = readFileSync('/proc/stat', 'utf8').split('\n', 1)[0]!;
    const f = line.trim().split(/\s+/).slice(1).map(Number);
    return { busy: f[0]! + f[1]! + f[2]!, steal: f[7] ?? 0 };
  } catch {
    return null;
  }
}

/** utime + stime of a process, in ticks; null when it is gone. */
export function processTicks(pid: number | 'self'): number | null {
  const f = statFields(pid);
  return f === null ? null : Number(f[11]) + Number(f[12]);
}

/**
 * A process's user-mode CPU ticks (all its threads; `utime` alone). On a VM
 * the steadier figure: system time swings with how the scheduler wakes the
 * two ends of each round trip (a wake-up from an idle vCPU costs far more).
 */
export function processUserTicks(pid: number | 'self'): number | null {
  const f = statFields(pid);
  return f === null ? null : Number(f[11]);
}

/** The fields of /proc/PID/stat after the command name, or null when the process is gone. */
function statFields(pid: number | 'self'): string[] | null {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
    return stat.slice(stat.lastIndexOf(')') + 2).split(' ');
  } catch {
    return null;
  }
}

/** The benchmark's own CPU time: this process and every process it started. */
export class CpuLedger {
  #finished = 0;
  readonly #live = new Map<number, number>();

  track(pid: number | undefined): void {
    if (pid !== undefined && !this.#live.has(pid)) this.#live.set(pid, processTicks(pid) ?? 0);
  }

  /** Call just before the process exits: its time stays counted. */
  release(pid: number | undefined): void {
    if (pid === undefined || !this.#live.has(pid)) return;
    this.#finished += processTicks(pid) ?? this.#live.get(pid)!;
    this.#live.delete(pid);
  }

  /** Total ticks so far. */
  sample(): number {
    let total = this.#finished + (processTicks('self') ?? 0);
    for (const [pid, last] of this.#live) {
      const now = processTicks(pid) ?? last;
      this.#live.set(pid, now);
      total += now;
    }
    return total;
  }
}

/** Measures, over an interval, the share of the machine's CPU that other processes used. */
export function startInterval(ledger: CpuLedger, cores: number): () => { otherShare: number | null; ownShare: number | null; stealShare: number | null } {
  const m0 = machineTicks();
  const own0 = ledger.sample();
  const t0 = performance.now();
  return () => {
    const m1 = machineTicks();
    const own1 = ledger.sample();
    const capacity = ((performance.now() - t0) / 1000) * clockTicks() * cores;
    if (m0 === null || m1 === null || capacity <= 0) return { otherShare: null, ownShare: null, stealShare: null };
    const other = m1.busy - m0.busy - (own1 - own0);
    return { otherShare: Math.max(0, other) / capacity, ownShare: (own1 - own0) / capacity, stealShare: (m1.steal - m0.steal) / capacity };
  };
}
