/**
 * The bytes every sender sends and every receiver checks, shared with
 * bench/python/role.py (which builds the same bytes): a fixed pattern with a
 * prime period, so a frame decoder that slips by a chunk boundary produces
 * different bytes, stamped with the message index at the head and the tail, so
 * the checksum of the last message proves it is the last one sent, whole.
 */
import { crc32 } from 'node:zlib';

/** Period of the fill pattern: prime, so it never lines up with chunk or page sizes. */
const PERIOD = 65521;

let block: Buffer | null = null;

function patternBlock(): Buffer {
  if (block === null) {
    block = Buffer.allocUnsafe(PERIOD);
    for (let j = 0; j < PERIOD; j++) block[j] = (j * 7 + (j >>> 8) * 13) & 0xff;
  }
  return block;
}

/** A fresh payload of `size` bytes, unstamped. */
export function patternBuffer(size: number): Buffer {
  const buf = Buffer.allocUnsafe(size);
  if (size > 0) buf.fill(patternBlock().subarray(0, Math.min(size, PERIOD)));
  return buf;
}

const cache = new Map<string, Buffer>();

/**
 * The sender's payload buffer `which` of `size` bytes, made once and reused
 * across runs (a 64 MiB fill costs more than sending it); senders restamp it
 * before every send.
 */
export function senderBuffer(size: number, which = 0): Buffer {
  const key = `${size}/${which}`;
  let buf = cache.get(key);
  if (buf === undefined) {
    buf = patternBuffer(size);
    cache.set(key, buf);
  }
  return buf;
}

/** Writes message index `i` into the head (and, for 8 bytes or more, the tail) of `buf`. */
export function stamp(buf: Uint8Array, i: number): void {
  // Plain byte stores: this runs once per message on the sender's hot path, for every system alike.
  const n = buf.length;
  if (n < 4) return;
  buf[0] = i >>> 24;
  buf[1] = i >>> 16;
  buf[2] = i >>> 8;
  buf[3] = i;
  if (n < 8) return;
  buf[n - 4] = i >>> 24;
  buf[n - 3] = i >>> 16;
  buf[n - 2] = i >>> 8;
  buf[n - 1] = i;
}

/**
 * `stamp` for the `n` bytes at `offset` of `buf`, without making a view of
 * them (the raw coalescing sender stamps frames in place in its batch).
 */
export function stampAt(buf: Uint8Array, offset: number, n: number, i: number): void {
  if (n < 4) return;
  buf[offset] = i >>> 24;
  buf[offset + 1] = i >>> 16;
  buf[offset + 2] = i >>> 8;
  buf[offset + 3] = i;
  if (n < 8) return;
  const e = offset + n;
  buf[e - 4] = i >>> 24;
  buf[e - 3] = i >>> 16;
  buf[e - 2] = i >>> 8;
  buf[e - 1] = i;
}

/** crc32 of the message with index `i` and `size` bytes: what a receiver must see last. */
export function expectedChecksum(size: number, i: number): number {
  const buf = patternBuffer(size);
  stamp(buf, i);
  return crc32(buf);
}

export function checksum(bytes: Uint8Array, previous = 0): number {
  return crc32(bytes, previous);
}

/** The W1 payload for Node's IPC channel (which carries strings, not bytes): 64 characters. */
export function ipcString(i: number): string {
  return String(i).padStart(10, '0') + IPC_FILL;
}
const IPC_FILL = 'abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ01'; // 54 chars

/** The W4 object. */
export interface SmallObject {
  id: number;
  name: string;
  values: number[];
}
export function smallObject(i: number): SmallObject {
  return { id: i, name: 'widget', values: [1.5, 2.5, 3.5] };
}

/** Reads VmHWM (peak resident set size) of this process from /proc, in KiB; null where there is no /proc. */
export { peakRssKiB } from './proc.js';
