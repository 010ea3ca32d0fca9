/**
 * Shared pieces of the stress suite: the size multiplier, child processes
 * running a fixture from `test/fixtures/stress-*`, file-descriptor counts and
 * the message format the load and backpressure tests check end to end.
 *
 * `STRESS_SCALE` (default 1, what `npm test` runs) multiplies the work each
 * test does; `npm run stress -- --scale 10` sets it for longer runs.
 */
import { spawn } from 'node:child_process';
import { readdirSync, readlinkSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { crc32 } from 'node:zlib';
import { childLines, type ChildLines } from '../helpers/child-lines.js';

function readScale(): number {
  const raw = process.env.STRESS_SCALE;
  if (raw === undefined || raw === '') return 1;
  const value = Number(raw);
  if (!Number.isFinite(value) || value <= 0) throw new RangeError(`STRESS_SCALE must be a positive number, got ${JSON.stringify(raw)}`);
  return value;
}

/** The size multiplier: 1 under `npm test`. */
export const SCALE = readScale();

/** `n` times the scale, at least `min`. */
export function scaled(n: number, min = 1): number {
  return Math.max(min, Math.round(n * SCALE));
}

/** A mocha timeout for work that takes about `ms` at scale 1. */
export function budget(ms: number): number {
  return Math.round(ms * Math.max(1, SCALE));
}

/** Open file descriptors of this process. */
export function fdCount(): number {
  return readdirSync('/proc/self/fd').length;
}

/** Open file descriptors of this process, by what they point at (for a useful failure message). */
export function fdTargets(): string[] {
  return readdirSync('/proc/self/fd').map((fd) => {
    try {
      return readlinkSync(`/proc/self/fd/${fd}`);
    } catch {
      return '?';
    }
  });
}

/** Path of a compiled fixture under dist/test/fixtures. */
export function fixture(name: string): string {
  return fileURLToPath(new URL(`../fixtures/${name}.js`, import.meta.url));
}

export interface Child extends ChildLines {
  /** The next line, parsed as JSON. */
  json<T = any>(): Promise<T>;
  /** Writes `text` on the child's stdin. */
  write(text: string): void;
}

/** Runs `node dist/test/fixtures/<name>.js ...args`; stdout is read line by line. */
export function runFixture(name: string, args: string[] = [], nodeArgs: string[] = []): Child {
  const child = spawn(process.execPath, [...nodeArgs, fixture(name), ...args], { stdio: ['pipe', 'pipe', 'pipe'] });
  child.stdin!.on('error', () => {}); // the child may be gone (killed) before it reads
  const lines = childLines(child, name);
  return {
    ...lines,
    json: async () => JSON.parse(await lines.line()),
    write: (text) => void child.stdin!.write(text),
  };
}

/**
 * A message that checks itself: `[id u32][seq u32][crc32 u32][body]`, the
 * CRC covering id, seq and body. A message lost, repeated, reordered, cut or
 * mixed with another client's shows up as a wrong seq or a wrong CRC.
 */
export const MESSAGE_HEADER = 12;

export function sealMessage(into: Buffer, id: number, seq: number, bodyLength: number): Buffer {
  const msg = into.subarray(0, MESSAGE_HEADER + bodyLength);
  msg.writeUInt32BE(id, 0);
  msg.writeUInt32BE(seq, 4);
  msg.writeUInt32BE(crc32(msg.subarray(MESSAGE_HEADER), crc32(msg.subarray(0, 8))), 8);
  return msg;
}

/** Why `msg` is not message `seq` of client `id`, or null when it is. */
export function checkMessage(msg: Buffer, id: number, seq: number): string | null {
  if (msg.length < MESSAGE_HEADER) return `a ${msg.length}-byte message, shorter than its own header`;
  const gotId = msg.readUInt32BE(0);
  const gotSeq = msg.readUInt32BE(4);
  if (gotId !== id) return `client ${id} got a message of client ${gotId} (seq ${gotSeq})`;
  if (gotSeq !== seq) return `client ${id}: expected seq ${seq}, got ${gotSeq}`;
  const crc = crc32(msg.subarray(MESSAGE_HEADER), crc32(msg.subarray(0, 8)));
  if (crc !== msg.readUInt32BE(8)) return `client ${id} seq ${seq}: checksum mismatch over ${msg.length} bytes`;
  return null;
}

/** A small deterministic PRNG (mulberry32), so a failing run can be replayed from its seed. */
export function prng(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

/** A seed from `STRESS_SEED` (to replay a failure) or a fresh one; tests print it when they fail. */
export function seed(): number {
  const fixed = process.env.STRESS_SEED;
  return fixed !== undefined && fixed !== '' ? Number(fixed) >>> 0 : (Math.random() * 2 ** 32) >>> 0;
}
