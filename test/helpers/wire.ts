/**
 * Raw bytes on the wire for tests: frames built by hand, a raw socket facing a
 * Connection (so a test can send anything, including broken framing), and
 * small promise helpers used as safety nets (never as timing assertions).
 */
import { once } from 'node:events';
import { mkdtempSync, rmSync } from 'node:fs';
import net from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Connection, type ConnectionOptions } from 'mpconn';

/** CPython's frame: 4-byte big-endian signed length, then the payload (a string as its UTF-8 bytes). */
export function frame(payload: Uint8Array | string): Buffer {
  const body = typeof payload === 'string' ? Buffer.from(payload) : payload;
  const header = Buffer.alloc(4);
  header.writeInt32BE(body.byteLength, 0);
  return Buffer.concat([header, body]);
}

/** The long form CPython uses above 0x7fffffff bytes: `-1`, then an 8-byte unsigned length. */
export function longFrame(payload: Uint8Array): Buffer {
  return Buffer.concat([longHeader(payload.byteLength), payload]);
}

export function longHeader(length: number | bigint): Buffer {
  const header = Buffer.alloc(12);
  header.writeInt32BE(-1, 0);
  header.writeBigUInt64BE(BigInt(length), 4);
  return header;
}

export function header(length: number): Buffer {
  const h = Buffer.alloc(4);
  h.writeInt32BE(length, 0);
  return h;
}

/** `n` pseudo-random bytes from `seed` (xorshift32): cheap, reproducible, no two offsets alike. */
export function patterned(n: number, seed: number): Buffer {
  const out = Buffer.allocUnsafe(n);
  let x = (seed | 0) || 0x9e3779b9;
  let i = 0;
  for (; i + 4 <= n; i += 4) {
    x ^= x << 13;
    x ^= x >>> 17;
    x ^= x << 5;
    out.writeInt32LE(x | 0, i);
  }
  for (; i < n; i++) {
    x ^= x << 13;
    x ^= x >>> 17;
    x ^= x << 5;
    out[i] = x & 0xff;
  }
  return out;
}

export interface RawPeer {
  /** The far end: write raw bytes here, read what the Connection sends. */
  raw: net.Socket;
  /** A Connection over the near end (made with `Connection.fromStream`). */
  conn: Connection;
  /** The socket under `conn` (to observe its events; the Connection owns it). */
  near: net.Socket;
  /** Closes both ends and removes the socket file. */
  dispose(): Promise<void>;
}

/**
 * Two connected sockets over a Unix socket in a private directory (or TCP on
 * loopback with `tcp: true`): `[near, far]`, both allowing half-open.
 */
export async function socketPair(tcp = false): Promise<[net.Socket, net.Socket]> {
  const dir = tcp ? null : mkdtempSync(join(tmpdir(), 'mpconn-test-'));
  const server = net.createServer({ allowHalfOpen: true });
  if (dir === null) server.listen(0, '127.0.0.1');
  else server.listen(join(dir, 's'));
  await once(server, 'listening');
  const accepted = once(server, 'connection') as Promise<[net.Socket]>;
  const far =
    dir === null
      ? net.connect({ port: (server.address() as net.AddressInfo).port, host: '127.0.0.1', allowHalfOpen: true })
      : net.connect({ path: join(dir, 's'), allowHalfOpen: true });
  const [[near]] = await Promise.all([accepted, once(far, 'connect')]);
  server.close();
  if (dir !== null) rmSync(dir, { recursive: true, force: true });
  return [near, far];
}

/**
 * A Connection facing a raw socket, over a Unix socket (or TCP on loopback
 * with `tcp: true`), so a test controls every byte the Connection reads.
 */
export async function rawPeer(options?: ConnectionOptions, tcp = false): Promise<RawPeer> {
  const [near, raw] = await socketPair(tcp);
  const conn = Connection.fromStream(near, options);
  // Tests see write failures through writeRaw's callback; an 'error' event must not crash the run.
  raw.on('error', () => {});
  return {
    raw,
    conn,
    near,
    async dispose() {
      raw.destroy();
      await conn.close();
    },
  };
}

/** Writes `data` on a raw socket and resolves once the OS has it. */
export function writeRaw(socket: net.Socket, data: Uint8Array): Promise<void> {
  return new Promise((resolve, reject) => socket.write(data, (err) => (err ? reject(err) : resolve())));
}

/** Ends a raw socket's writing side (the Connection sees end of stream) once written. */
export function endRaw(socket: net.Socket): Promise<void> {
  return new Promise((resolve) => socket.end(resolve));
}

const PENDING = Symbol('pending');

/**
 * Whether `promise` is still unsettled after `ms` (a safety net for "this must
 * not resolve yet"; it can only fail when the code under test is wrong).
 */
export async function stillPending(promise: Promise<unknown>, ms = 50): Promise<boolean> {
  promise.catch(() => {});
  let timer: NodeJS.Timeout | undefined;
  const result = await Promise.race([
    promise.then(
      () => 'settled',
      () => 'settled',
    ),
    new Promise((resolve) => {
      timer = setTimeout(() => resolve(PENDING), ms);
    }),
  ]);
  clearTimeout(timer);
  return result === PENDING;
}

/** `promise`, or a rejection naming `what` after `ms` (so a hang fails the test with a reason). */
export async function within<T>(promise: Promise<T>, ms: number, what: string): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  try {
    return await Promise.race([
      promise,
      new Promise<never>((_, reject) => {
        timer = setTimeout(() => reject(new Error(`${what}: no result within ${ms} ms`)), ms);
      }),
    ]);
  } finally {
    clearTimeout(timer);
  }
}

export type Outcome<T = unknown> = { ok: true; value: T } | { ok: false; error: unknown };

/** Settles `promise` into a record, so a test can look at how it ended. */
export function outcome<T>(promise: Promise<T>): Promise<Outcome<T>> {
  return promise.then(
    (value) => ({ ok: true as const, value }),
    (error: unknown) => ({ ok: false as const, error }),
  );
}

/** The rejection reason of `promise` (throws when it resolves instead). */
export async function rejectionOf(promise: Promise<unknown>): Promise<any> {
  let value: unknown;
  try {
    value = await promise;
  } catch (err) {
    return err;
  }
  throw new Error(`expected a rejection, got ${describeValue(value)}`);
}

/** What `fn` throws (throws itself when `fn` returns instead). */
export function thrown(fn: () => unknown): any {
  try {
    fn();
  } catch (err) {
    return err;
  }
  throw new Error('expected a throw');
}

function describeValue(value: unknown): string {
  if (Buffer.isBuffer(value)) return `a ${value.length}-byte Buffer`;
  try {
    return JSON.stringify(value) ?? String(value);
  } catch {
    return String(value);
  }
}

/** Resolves once `condition()` holds, checking every few ms; rejects naming `what` after `ms`. */
export async function until(condition: () => boolean, ms: number, what: string): Promise<void> {
  const deadline = Date.now() + ms;
  while (!condition()) {
    if (Date.now() > deadline) throw new Error(`${what}: not true within ${ms} ms`);
    await new Promise((resolve) => setTimeout(resolve, 2));
  }
}

export const tick = (): Promise<void> => new Promise((resolve) => setImmediate(resolve));
export const sleep = (ms: number): Promise<void> => new Promise((resolve) => setTimeout(resolve, ms));

/** Counts event-loop turns (setImmediate callbacks) until `stop()`, which returns the count. */
export function countLoopTurns(): { stop(): number } {
  let turns = 0;
  let running = true;
  const spin = (): void => {
    turns++;
    if (running) setImmediate(spin);
  };
  setImmediate(spin);
  return {
    stop: () => {
      running = false;
      return turns;
    },
  };
}
