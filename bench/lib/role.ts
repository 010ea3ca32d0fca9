/**
 * The control channel between bench/run.ts and a role process (one side of
 * one system). The orchestrator starts the process with its RoleArgs as JSON
 * in argv[2]; the process prints one JSON object per line on stdout:
 * `{"event":"ready", ...}` once, then for every `{"cmd":"run", ...}` line it
 * reads on stdin, a `{"event":"result", ...}` (or `{"event":"error"}`);
 * `{"cmd":"exit"}` ends it. bench/python/role.py speaks the same protocol.
 */
import { createInterface } from 'node:readline';
import { peakRssKiB } from './proc.js';

export type Transport = 'unix' | 'tcp';
export type WorkloadId = 'W1' | 'W2' | 'W3' | 'W4' | 'W5' | 'W6';
/** A Unix socket path, or [host, port]. */
export type BenchAddress = string | [string, number];

export interface RoleArgs {
  workload: WorkloadId;
  system: string;
  variant: string;
  side: 'server' | 'client';
  /** The transports this pair serves; each run names one. */
  transports: Transport[];
  /** server: where to listen (unix: a path; tcp binds 127.0.0.1:0). Clients learn theirs from each RunSpec. */
  addresses: Partial<Record<Transport, BenchAddress>>;
}

/** One run: `warmup` untimed units (messages, round trips, connects), then `count` timed ones. */
export interface RunSpec {
  run: number;
  transport: Transport;
  count: number;
  warmup: number;
  /** Payload bytes per message (W1, W2, W3, W6). */
  size: number;
  /** Client: the server's address for `transport` (so both processes can start at once). */
  address: BenchAddress | null;
}

export type RoleResult = Record<string, unknown>;

export const AUTHKEY = 'mpconn-bench-authkey';

export function roleArgs(): RoleArgs {
  return JSON.parse(process.argv[2] ?? '{}') as RoleArgs;
}

export function emit(event: string, body: Record<string, unknown> = {}): void {
  process.stdout.write(JSON.stringify({ event, ...body }) + '\n');
}

/**
 * Answers the orchestrator's commands one at a time. `handler` runs one
 * measurement; `cleanup` runs before the process exits.
 */
export function serveCommands(handler: (spec: RunSpec) => Promise<RoleResult>, cleanup?: () => Promise<void>): void {
  const lines = createInterface({ input: process.stdin });
  let chain: Promise<void> = Promise.resolve();
  const finish = async (): Promise<void> => {
    try {
      await cleanup?.();
    } finally {
      emit('exit');
      process.exit(0);
    }
  };
  lines.on('line', (line) => {
    if (line.trim() === '') return;
    const cmd = JSON.parse(line) as { cmd: string; spec?: RunSpec };
    chain = chain.then(async () => {
      if (cmd.cmd === 'exit') return finish();
      try {
        const cpu0 = process.cpuUsage();
        const result = await handler(cmd.spec!);
        // runCpuMs: the whole run, connection setup included (cpuMs, where given, is the timed part).
        emit('result', { ...result, runCpuMs: cpuMs(cpu0), peakRssKiB: peakRssKiB() });
      } catch (err) {
        emit('error', { message: err instanceof Error ? `${err.name}: ${err.message}` : String(err), stack: err instanceof Error ? err.stack : undefined });
      }
    });
  });
  // The orchestrator went away: do not linger.
  lines.on('close', () => {
    chain = chain.then(finish);
  });
}

/** Milliseconds of CPU (user + system) this process used since `since`. */
export function cpuMs(since: NodeJS.CpuUsage): number {
  const d = process.cpuUsage(since);
  return (d.user + d.system) / 1000;
}

/** The median (the mean of the two middle values for an even count). */
export function median(xs: readonly number[]): number {
  const s = [...xs].sort((a, b) => a - b);
  const m = s.length >> 1;
  return s.length % 2 === 1 ? s[m]! : (s[m - 1]! + s[m]!) / 2;
}

/** Median and percentiles of latencies in µs (sorted copy). */
export function latencySummary(samplesUs: Float64Array | number[]): { medianUs: number; p99Us: number; meanUs: number; minUs: number } {
  const s = Float64Array.from(samplesUs).sort();
  const at = (q: number): number => s[Math.min(s.length - 1, Math.max(0, Math.ceil(q * s.length) - 1))]!;
  let sum = 0;
  for (const v of s) sum += v;
  return { medianUs: at(0.5), p99Us: at(0.99), meanUs: sum / s.length, minUs: s[0]! };
}
