/**
 * What is measured: the workloads, the systems (configs) each one compares,
 * how long each run lasts, how a run is verified, and which ratios the table
 * shows. bench/run.ts executes this.
 */
import { isDeepStrictEqual } from 'node:util';
import { checksum, expectedChecksum, ipcString, smallObject } from './payload.js';
import type { RoleResult, Transport, WorkloadId } from './role.js';

export type System = 'mpconn' | 'raw' | 'cpython' | 'ipc';

export interface ConfigSpec {
  /** Stable id used in results and in `--systems` filters. */
  id: string;
  /** Column header. */
  label: string;
  system: System;
  variant: string;
}

export interface MetricSpec {
  key: string;
  label: string;
  better: 'higher' | 'lower';
  format(v: number): string;
}

export interface RatioSpec {
  label: string;
  /** A target from issue 8, printed next to the ratio (a goal, never a measurement). */
  target?: string;
  /** Rows where this ratio applies (default all). */
  applies?(size: number): boolean;
  compute(get: (configId: string, metric: string) => number | undefined): number | undefined;
  format?(v: number): string;
}

/** How many units (messages, round trips, connects) a run has. */
export interface Plan {
  /** Units of the calibration run that sizes the measured runs (0: no calibration, use `fixedCount`). */
  calibrate: number;
  fixedCount: number;
  /** Seconds each measured run should last (sized from the calibration run). */
  targetSeconds: number;
  minCount: number;
  maxCount: number;
  /** Untimed leading units of each run, as a fraction of the count (at least minWarmup). */
  warmupFraction: number;
  minWarmup: number;
}

export interface RunResults {
  server: RoleResult;
  client: RoleResult | null;
}

export interface WorkloadSpec {
  id: WorkloadId;
  title: string;
  /** One table row per transport and size. */
  sizes: number[];
  configs: ConfigSpec[];
  metrics: MetricSpec[];
  ratios: RatioSpec[];
  /** W6: peak RSS needs a fresh pair of processes for every run. */
  freshProcesses?: boolean;
  plan(quick: boolean, size: number): Plan;
  /** Timed units of a result, and the seconds they took (for sizing runs). */
  timed(r: RunResults): { units: number; seconds: number };
  extract(r: RunResults, size: number): Record<string, number>;
  /** Null when the run delivered exactly what was sent, else what is wrong. */
  verify(r: RunResults, config: ConfigSpec, size: number, total: number): string | null;
  notes?: string[];
}

const KiB = 1024;
const MiB = 1024 * 1024;

export function sizeLabel(n: number): string {
  if (n >= MiB && n % MiB === 0) return `${n / MiB} MiB`;
  if (n >= KiB && n % KiB === 0) return `${n / KiB} KiB`;
  return `${n} B`;
}

const num = (x: unknown): number => (typeof x === 'number' ? x : NaN);
const mps = (v: number): string => (v / 1e6).toFixed(v >= 1e7 ? 1 : 3);
const fixed = (d: number) => (v: number): string => v.toFixed(d);
const ratioOf = (a: number | undefined, b: number | undefined): number | undefined =>
  a === undefined || b === undefined || !(b > 0) ? undefined : a / b;

function throughputRun(r: RunResults): { units: number; seconds: number } {
  return { units: num(r.server.timedMessages), seconds: num(r.server.seconds) };
}

function verifyStream(r: RunResults, config: ConfigSpec, size: number, total: number): string | null {
  const s = r.server;
  if (s.messages !== total) return `received ${String(s.messages)} of ${total} messages`;
  const expectBytes = total * size;
  if (s.bytes !== expectBytes) return `received ${String(s.bytes)} bytes, expected ${expectBytes}`;
  const expect = config.system === 'ipc' ? checksum(Buffer.from(ipcString(total - 1))) : expectedChecksum(size, total - 1);
  if (s.checksum !== expect) return `checksum of the last message is ${String(s.checksum)}, expected ${expect}`;
  return null;
}

function verifyEcho(r: RunResults, config: ConfigSpec, size: number, total: number): string | null {
  const c = config.system === 'ipc' ? r.server : r.client!;
  if (c.roundTrips !== total) return `${String(c.roundTrips)} of ${total} round trips`;
  const expect = config.system === 'ipc' ? checksum(Buffer.from(ipcString(total - 1))) : expectedChecksum(size, total - 1);
  if (c.lastReplyChecksum !== expect) return `checksum of the last reply is ${String(c.lastReplyChecksum)}, expected ${expect}`;
  return null;
}

const small = (quick: boolean, calibrate: number): Plan => ({
  calibrate,
  fixedCount: 0,
  targetSeconds: quick ? 0.1 : 1,
  minCount: 2000,
  maxCount: 50_000_000,
  warmupFraction: 0.1,
  minWarmup: 200,
});

const msgRate: MetricSpec = { key: 'msgPerSec', label: 'M msg/s', better: 'higher', format: mps };
const msgRateOf = (r: RunResults): Record<string, number> => ({ msgPerSec: num(r.server.timedMessages) / num(r.server.seconds) });

export const WORKLOADS: WorkloadSpec[] = [
  {
    id: 'W1',
    title: '64 B sendBytes one way, pipelined',
    sizes: [64],
    configs: [
      { id: 'mpconn', label: 'mpconn', system: 'mpconn', variant: 'bytes' },
      { id: 'mpconn-batch', label: 'mpconn batch', system: 'mpconn', variant: 'batch' },
      { id: 'raw-write', label: 'raw write', system: 'raw', variant: 'write' },
      { id: 'raw-coalesced', label: 'raw coalesced', system: 'raw', variant: 'coalesced' },
      { id: 'cpython', label: 'CPython', system: 'cpython', variant: 'bytes' },
      { id: 'ipc-json', label: 'IPC json', system: 'ipc', variant: 'json' },
      { id: 'ipc-advanced', label: 'IPC advanced', system: 'ipc', variant: 'advanced' },
    ],
    metrics: [msgRate],
    ratios: [
      { label: 'mpconn/raw coalesced', target: '≥0.5', compute: (g) => ratioOf(g('mpconn', 'msgPerSec'), g('raw-coalesced', 'msgPerSec')) },
      { label: 'mpconn batch/raw coalesced', target: '≥0.5', compute: (g) => ratioOf(g('mpconn-batch', 'msgPerSec'), g('raw-coalesced', 'msgPerSec')) },
      { label: 'mpconn/raw write', compute: (g) => ratioOf(g('mpconn', 'msgPerSec'), g('raw-write', 'msgPerSec')) },
      { label: 'mpconn/CPython', target: '≥5', compute: (g) => ratioOf(g('mpconn', 'msgPerSec'), g('cpython', 'msgPerSec')) },
      { label: 'mpconn/IPC json', compute: (g) => ratioOf(g('mpconn', 'msgPerSec'), g('ipc-json', 'msgPerSec')) },
    ],
    plan: (quick) => small(quick, 5000),
    timed: throughputRun,
    extract: msgRateOf,
    verify: verifyStream,
    notes: ['IPC sends a 64-character string per message (the channel carries values, not bytes).'],
  },
  {
    id: 'W2',
    title: '64 B ping-pong round trip',
    sizes: [64],
    configs: [
      { id: 'mpconn', label: 'mpconn', system: 'mpconn', variant: 'bytes' },
      { id: 'raw-write', label: 'raw write', system: 'raw', variant: 'write' },
      { id: 'raw-promise', label: 'raw promise', system: 'raw', variant: 'promise' },
      { id: 'cpython', label: 'CPython', system: 'cpython', variant: 'bytes' },
      { id: 'ipc-json', label: 'IPC json', system: 'ipc', variant: 'json' },
      { id: 'ipc-advanced', label: 'IPC advanced', system: 'ipc', variant: 'advanced' },
    ],
    metrics: [
      { key: 'medianUs', label: 'median µs', better: 'lower', format: fixed(1) },
      { key: 'p99Us', label: 'p99 µs', better: 'lower', format: fixed(1) },
    ],
    ratios: [
      { label: 'mpconn/raw median', target: '≤1.15', compute: (g) => ratioOf(g('mpconn', 'medianUs'), g('raw-write', 'medianUs')) },
      { label: 'mpconn/raw p99', target: '≤1.5', compute: (g) => ratioOf(g('mpconn', 'p99Us'), g('raw-write', 'p99Us')) },
      { label: 'mpconn/raw promise median', compute: (g) => ratioOf(g('mpconn', 'medianUs'), g('raw-promise', 'medianUs')) },
      { label: 'raw promise/raw write median', compute: (g) => ratioOf(g('raw-promise', 'medianUs'), g('raw-write', 'medianUs')) },
      { label: 'mpconn/CPython median', compute: (g) => ratioOf(g('mpconn', 'medianUs'), g('cpython', 'medianUs')) },
    ],
    plan: (quick) => ({ ...small(quick, 300), minCount: 1000, minWarmup: 100 }),
    timed: (r) => {
      const c = r.client ?? r.server;
      return { units: num(c.roundTrips), seconds: (num(c.meanUs) * num(c.roundTrips)) / 1e6 };
    },
    extract: (r) => {
      const c = r.client ?? r.server;
      return { medianUs: num(c.medianUs), p99Us: num(c.p99Us) };
    },
    verify: verifyEcho,
    notes: [
      'One write per message is already what a ping-pong sends, so the raw coalesced sender would measure the same thing.',
      'raw promise: the same framer with one awaited promise per send and per receive on both sides: the floor of a promise-per-call API.',
    ],
  },
  {
    id: 'W3',
    title: 'large messages one way',
    sizes: [1 * MiB, 64 * MiB],
    configs: [
      { id: 'mpconn-bytes', label: 'mpconn recvBytes', system: 'mpconn', variant: 'bytes' },
      { id: 'mpconn-into', label: 'mpconn recvBytesInto', system: 'mpconn', variant: 'into' },
      { id: 'raw-alloc', label: 'raw alloc', system: 'raw', variant: 'alloc' },
      { id: 'raw-count', label: 'raw count', system: 'raw', variant: 'count' },
      { id: 'cpython-bytes', label: 'CPython recv_bytes', system: 'cpython', variant: 'bytes' },
      { id: 'cpython-into', label: 'CPython recv_bytes_into', system: 'cpython', variant: 'into' },
    ],
    metrics: [{ key: 'MBps', label: 'MB/s', better: 'higher', format: fixed(0) }],
    ratios: [
      { label: 'recvBytes/raw alloc', target: '≥0.9', compute: (g) => ratioOf(g('mpconn-bytes', 'MBps'), g('raw-alloc', 'MBps')) },
      { label: 'recvBytesInto/raw count', target: '≥0.5 @64MiB', compute: (g) => ratioOf(g('mpconn-into', 'MBps'), g('raw-count', 'MBps')) },
      { label: 'recvBytesInto/CPython into', target: '≥2', compute: (g) => ratioOf(g('mpconn-into', 'MBps'), g('cpython-into', 'MBps')) },
      { label: 'recvBytes/CPython', compute: (g) => ratioOf(g('mpconn-bytes', 'MBps'), g('cpython-bytes', 'MBps')) },
    ],
    plan: (quick, size) =>
      size <= MiB
        ? { calibrate: 8, fixedCount: 0, targetSeconds: quick ? 0.1 : 1, minCount: 24, maxCount: 100_000, warmupFraction: 0.1, minWarmup: 4 }
        : quick
          ? { calibrate: 0, fixedCount: 1, targetSeconds: 0, minCount: 1, maxCount: 1, warmupFraction: 0, minWarmup: 0 }
          : { calibrate: 2, fixedCount: 0, targetSeconds: 1, minCount: 4, maxCount: 200, warmupFraction: 0, minWarmup: 1 },
    timed: throughputRun,
    extract: (r) => ({ MBps: num(r.server.timedBytes) / num(r.server.seconds) / 1e6 }),
    verify: verifyStream,
    notes: [
      'MB = 10^6 bytes. Senders reuse their payload buffers (mpconn: one, awaiting each sendBytes; raw: two taking turns).',
      'raw alloc allocates a buffer per message and copies into it; raw count only counts the bytes (and checksums the last message on the fly).',
    ],
  },
  {
    id: 'W4',
    title: 'small object {id, name, values:[1.5,2.5,3.5]} send/recv',
    sizes: [0],
    configs: [
      { id: 'mpconn', label: 'mpconn', system: 'mpconn', variant: 'msgpack' },
      { id: 'mpconn-batch', label: 'mpconn batch', system: 'mpconn', variant: 'batch' },
      { id: 'raw-write', label: 'raw+msgpack write', system: 'raw', variant: 'write' },
      { id: 'raw-coalesced', label: 'raw+msgpack coalesced', system: 'raw', variant: 'coalesced' },
      { id: 'cpython', label: 'CPython pickle', system: 'cpython', variant: 'pickle' },
      { id: 'ipc-json', label: 'IPC json', system: 'ipc', variant: 'json' },
      { id: 'ipc-advanced', label: 'IPC advanced', system: 'ipc', variant: 'advanced' },
    ],
    metrics: [msgRate],
    ratios: [
      { label: 'mpconn/raw coalesced', target: '≥0.8', compute: (g) => ratioOf(g('mpconn', 'msgPerSec'), g('raw-coalesced', 'msgPerSec')) },
      { label: 'mpconn batch/raw coalesced', target: '≥0.8', compute: (g) => ratioOf(g('mpconn-batch', 'msgPerSec'), g('raw-coalesced', 'msgPerSec')) },
      { label: 'mpconn/raw write', compute: (g) => ratioOf(g('mpconn', 'msgPerSec'), g('raw-write', 'msgPerSec')) },
      { label: 'mpconn/CPython', target: '≥3', compute: (g) => ratioOf(g('mpconn', 'msgPerSec'), g('cpython', 'msgPerSec')) },
      { label: 'mpconn/IPC json', target: '≥2', compute: (g) => ratioOf(g('mpconn', 'msgPerSec'), g('ipc-json', 'msgPerSec')) },
      { label: 'mpconn/IPC advanced', compute: (g) => ratioOf(g('mpconn', 'msgPerSec'), g('ipc-advanced', 'msgPerSec')) },
    ],
    plan: (quick) => small(quick, 3000),
    timed: throughputRun,
    extract: msgRateOf,
    verify: (r, _config, _size, total) => {
      if (r.server.messages !== total) return `received ${String(r.server.messages)} of ${total} objects`;
      if (!isDeepStrictEqual(r.server.lastObject, smallObject(total - 1))) return `last object is ${JSON.stringify(r.server.lastObject)}`;
      return null;
    },
    notes: ['raw uses @msgpack/msgpack with one reused Encoder (encodeSharedRef) and Decoder.'],
  },
  {
    id: 'W5',
    title: 'connect (+ authentication), sequential',
    sizes: [0],
    configs: [
      { id: 'mpconn-auth', label: 'mpconn auth', system: 'mpconn', variant: 'auth' },
      { id: 'cpython-auth', label: 'CPython auth', system: 'cpython', variant: 'auth' },
      { id: 'mpconn-noauth', label: 'mpconn no auth', system: 'mpconn', variant: 'noauth' },
      { id: 'cpython-noauth', label: 'CPython no auth', system: 'cpython', variant: 'noauth' },
      { id: 'raw-auth', label: 'node raw auth', system: 'raw', variant: 'auth' },
      { id: 'raw-floor', label: 'node connect+RTT', system: 'raw', variant: 'floor' },
    ],
    metrics: [
      { key: 'msPerConnect', label: 'ms/connect', better: 'lower', format: fixed(3) },
    ],
    ratios: [
      { label: 'mpconn/CPython auth', target: '≤2', compute: (g) => ratioOf(g('mpconn-auth', 'msPerConnect'), g('cpython-auth', 'msPerConnect')) },
      { label: 'mpconn auth/node raw auth', target: '≤1.15', compute: (g) => ratioOf(g('mpconn-auth', 'msPerConnect'), g('raw-auth', 'msPerConnect')) },
      { label: 'mpconn auth/node connect+RTT', compute: (g) => ratioOf(g('mpconn-auth', 'msPerConnect'), g('raw-floor', 'msPerConnect')) },
      { label: 'mpconn/CPython no auth', compute: (g) => ratioOf(g('mpconn-noauth', 'msPerConnect'), g('cpython-noauth', 'msPerConnect')) },
    ],
    plan: (quick) => ({ calibrate: 20, fixedCount: 0, targetSeconds: quick ? 0.1 : 1, minCount: 40, maxCount: 4000, warmupFraction: 0.1, minWarmup: 10 }),
    timed: (r) => ({ units: num(r.client!.timedConnects), seconds: num(r.client!.seconds) }),
    extract: (r) => ({ msPerConnect: (num(r.client!.seconds) * 1000) / num(r.client!.timedConnects), medianConnectMs: num(r.client!.medianUs) / 1000 }),
    verify: (r, _config, _size, total) => {
      if (r.client!.connects !== total) return `${String(r.client!.connects)} of ${total} connects`;
      if (r.server.accepted !== total) return `server accepted ${String(r.server.accepted)} of ${total}`;
      return null;
    },
    notes: [
      'ms per connect over a sequential loop: Client() (with its handshake) then close(); the server accepts and closes.',
      'node raw auth: net.connect and the same authentication bytes (challenge both ways, HMAC-SHA256), pipelined over Unix sockets only as mpconn does, no mpconn: the floor of an authenticated connect.',
      'node connect+RTT: net.connect, one 4-byte round trip, destroy: the floor any Node client pays.',
    ],
  },
  {
    id: 'W6',
    title: 'peak RSS streaming in 1 MiB messages (recvBytes)',
    sizes: [1 * MiB],
    freshProcesses: true,
    configs: [
      { id: 'mpconn', label: 'mpconn', system: 'mpconn', variant: 'bytes' },
      { id: 'raw-alloc', label: 'raw alloc', system: 'raw', variant: 'alloc' },
      { id: 'cpython', label: 'CPython', system: 'cpython', variant: 'bytes' },
    ],
    metrics: [
      { key: 'recvRssMB', label: 'recv MB', better: 'lower', format: fixed(0) },
      { key: 'sendRssMB', label: 'send MB', better: 'lower', format: fixed(0) },
    ],
    ratios: [
      {
        label: 'mpconn worst side MB',
        target: '<200',
        compute: (g) => {
          const a = g('mpconn', 'recvRssMB');
          const b = g('mpconn', 'sendRssMB');
          return a === undefined || b === undefined ? undefined : Math.max(a, b);
        },
        format: fixed(0),
      },
    ],
    plan: (quick) => ({ calibrate: 0, fixedCount: quick ? 128 : 2048, targetSeconds: 0, minCount: 1, maxCount: 1e9, warmupFraction: 0, minWarmup: 1 }),
    timed: throughputRun,
    extract: (r) => ({
      recvRssMB: num(r.server.peakRssKiB) / 1024,
      sendRssMB: num(r.client?.peakRssKiB) / 1024,
      MBps: num(r.server.timedBytes) / num(r.server.seconds) / 1e6,
    }),
    verify: verifyStream,
    notes: ['Peak RSS is VmHWM of each process (/proc/<pid>/status), fresh processes for every run; it includes the runtime itself (compare with raw).'],
  },
];

export function isTransportOf(config: ConfigSpec, transport: Transport): boolean {
  // Node's IPC channel is a Unix socketpair: it has no TCP form.
  return config.system !== 'ipc' || transport === 'unix';
}
