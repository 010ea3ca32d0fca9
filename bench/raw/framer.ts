/**
 * A minimal length-prefix framer over `node:net`: the Node limit mpconn is
 * compared with. Same wire format as mpconn for payloads under 2 GiB (a 4-byte
 * big-endian length, then the payload), no promises, no queues, no checks
 * beyond a negative length.
 */
import { once } from 'node:events';
import type { Socket } from 'node:net';
import { crc32 } from 'node:zlib';

/**
 * `message`: each payload is handed to the callback as (bytes, start, length):
 * the chunk itself and the frame's offset in it when the frame lies inside one
 * chunk (no view, no copy: a receiver that wants a view makes it), else a
 * buffer allocated for the frame (one per message) at offset 0.
 * `count`: payloads that span chunks are only counted, never assembled (the
 * callback gets `null`); the frame numbered `checksumFrame` is checksummed on
 * the fly so the run can still be verified.
 */
export type Delivery = 'message' | 'count';

export type OnFrame = (bytes: Buffer | null, start: number, length: number) => void;

export class RawDecoder {
  readonly #onMessage: OnFrame;
  readonly #message: boolean;
  readonly #checksumFrame: number;
  readonly #header = Buffer.alloc(4);
  #headerGot = 0;
  /** Payload bytes still to come for the current frame, or -1 while reading a header. */
  #remaining = -1;
  #length = 0;
  #target: Buffer | null = null;
  /** Frames completed so far. */
  frames = 0;
  /** crc32 of frame `checksumFrame` (count delivery). */
  crc = 0;

  constructor(onMessage: OnFrame, delivery: Delivery = 'message', checksumFrame = -1) {
    this.#onMessage = onMessage;
    this.#message = delivery === 'message';
    this.#checksumFrame = checksumFrame;
  }

  push(chunk: Buffer): void {
    let pos = 0;
    const end = chunk.length;
    // Fast path, taken for nearly every frame of a stream of small messages:
    // whole frames read by offset from the chunk, with plain byte loads for
    // the header (cheaper than readInt32BE's bounds checks) and one callback.
    if (this.#remaining < 0 && this.#headerGot === 0 && this.#message) {
      const onMessage = this.#onMessage;
      while (end - pos >= 4) {
        const length = ((chunk[pos]! << 24) | (chunk[pos + 1]! << 16) | (chunk[pos + 2]! << 8) | chunk[pos + 3]!);
        if (length < 0) throw new Error(`raw framer: negative length ${length}`);
        if (end - pos - 4 < length) break;
        this.frames++;
        onMessage(chunk, pos + 4, length);
        pos += 4 + length;
      }
      if (pos === end) return;
    }
    while (pos < end) {
      if (this.#remaining < 0) {
        let length: number;
        if (this.#headerGot === 0 && end - pos >= 4) {
          length = chunk.readInt32BE(pos);
          pos += 4;
        } else {
          const take = Math.min(4 - this.#headerGot, end - pos);
          chunk.copy(this.#header, this.#headerGot, pos, pos + take);
          this.#headerGot += take;
          pos += take;
          if (this.#headerGot < 4) return;
          this.#headerGot = 0;
          length = this.#header.readInt32BE(0);
        }
        if (length < 0) throw new Error(`raw framer: negative length ${length}`);
        if (this.#message && end - pos >= length) {
          this.frames++;
          this.#onMessage(chunk, pos, length);
          pos += length;
          continue;
        }
        this.#length = length;
        this.#remaining = length;
        if (this.#message) this.#target = Buffer.allocUnsafe(length);
        if (length === 0) this.#complete();
        continue;
      }
      const take = Math.min(this.#remaining, end - pos);
      if (this.#target !== null) chunk.copy(this.#target, this.#length - this.#remaining, pos, pos + take);
      else if (this.frames === this.#checksumFrame) this.crc = crc32(chunk.subarray(pos, pos + take), this.crc);
      this.#remaining -= take;
      pos += take;
      if (this.#remaining === 0) this.#complete();
    }
  }

  #complete(): void {
    const payload = this.#target;
    this.#target = null;
    this.#remaining = -1;
    this.frames++;
    this.#onMessage(payload, 0, this.#length);
  }
}

/**
 * Writes the payload of message `i` into `into` at `offset` and returns its
 * length. Senders pass their batch and an offset rather than a view of it: a
 * `subarray` per message costs more than copying 64 bytes.
 */
export type Fill = (into: Buffer, offset: number, i: number) => number;

/** One `socket.write` per message: a fresh header+payload buffer each (the socket keeps a reference). */
export async function sendEachWrite(socket: Socket, total: number, fill: Fill, maxPayload: number): Promise<void> {
  const scratch = Buffer.allocUnsafe(maxPayload);
  for (let i = 0; i < total; i++) {
    const n = fill(scratch, 0, i);
    const frame = Buffer.allocUnsafe(4 + n);
    frame.writeInt32BE(n, 0);
    frame.set(n === scratch.length ? scratch : scratch.subarray(0, n), 4);
    if (!socket.write(frame)) await once(socket, 'drain');
  }
}

const BATCH_SIZE = 64 * 1024;

/**
 * Coalesced: frames are written by offset into a 64 KiB batch that is written
 * when full (one write per batch, the batch handed over by reference and a
 * fresh one started: reusing it would need a write callback per batch).
 */
export async function sendCoalesced(socket: Socket, total: number, fill: Fill, maxPayload: number): Promise<void> {
  let batch = Buffer.allocUnsafe(BATCH_SIZE);
  let used = 0;
  const limit = BATCH_SIZE - 4 - maxPayload;
  for (let i = 0; i < total; i++) {
    if (used > limit) {
      const ok = socket.write(batch.subarray(0, used));
      batch = Buffer.allocUnsafe(BATCH_SIZE);
      used = 0;
      if (!ok) await once(socket, 'drain');
    }
    const n = fill(batch, used + 4, i);
    batch[used] = n >>> 24;
    batch[used + 1] = n >>> 16;
    batch[used + 2] = n >>> 8;
    batch[used + 3] = n;
    used += 4 + n;
  }
  if (used > 0 && !socket.write(batch.subarray(0, used))) await once(socket, 'drain');
}

/**
 * Large messages: header and payload in one corked write, the payload by
 * reference. Two payload buffers take turns, so one message is always queued
 * behind the one the kernel is taking, and a buffer is restamped only after
 * its previous write completed.
 */
export async function sendLarge(socket: Socket, total: number, size: number, buffers: [Buffer, Buffer], stampInto: (buf: Buffer, i: number) => void): Promise<void> {
  const pending: Promise<void>[] = [Promise.resolve(), Promise.resolve()];
  for (let i = 0; i < total; i++) {
    const k = i & 1;
    await pending[k];
    const buf = buffers[k]!;
    stampInto(buf, i);
    const header = Buffer.allocUnsafe(4);
    header.writeInt32BE(size, 0);
    socket.cork();
    socket.write(header);
    pending[k] = new Promise<void>((resolve, reject) => socket.write(buf, (err) => (err ? reject(err) : resolve())));
    socket.uncork();
  }
  await Promise.all(pending);
}

/**
 * The floor of a promise-per-call API: the same framer, with one promise
 * awaited per send and one per receive (`await send(b)`, `await recv()`),
 * received frames queued in an inbox while nobody waits. Nothing else: no
 * checks, no serializer, no options.
 */
export class PromiseFramer {
  readonly #socket: Socket;
  readonly #inbox: Buffer[] = [];
  #resolve: ((b: Buffer) => void) | null = null;
  #reject: ((err: Error) => void) | null = null;
  #error: Error | null = null;

  constructor(socket: Socket) {
    this.#socket = socket;
    const decoder = new RawDecoder((bytes, start, length) => {
      const payload = bytes!.subarray(start, start + length);
      const resolve = this.#resolve;
      if (resolve !== null) {
        this.#resolve = null;
        this.#reject = null;
        resolve(payload);
      } else this.#inbox.push(payload);
    });
    socket.on('data', (chunk: Buffer) => decoder.push(chunk));
    const fail = (err: Error): void => {
      this.#error ??= err;
      const reject = this.#reject;
      this.#resolve = null;
      this.#reject = null;
      reject?.(this.#error);
    };
    socket.on('error', fail);
    socket.on('close', () => fail(new Error('raw framer: connection closed')));
  }

  send(payload: Buffer): Promise<void> {
    const frame = Buffer.allocUnsafe(4 + payload.length);
    frame.writeInt32BE(payload.length, 0);
    frame.set(payload, 4);
    this.#socket.write(frame);
    return Promise.resolve();
  }

  recv(): Promise<Buffer> {
    if (this.#inbox.length > 0) return Promise.resolve(this.#inbox.shift()!);
    if (this.#error !== null) return Promise.reject(this.#error);
    return new Promise((resolve, reject) => {
      this.#resolve = resolve;
      this.#reject = reject;
    });
  }
}

/** One frame (4-byte big-endian length + payload) for each part, in one buffer: a single write. */
export function frames(...payloads: Uint8Array[]): Buffer {
  let size = 0;
  for (const p of payloads) size += 4 + p.length;
  const out = Buffer.allocUnsafe(size);
  let at = 0;
  for (const p of payloads) {
    out.writeInt32BE(p.length, at);
    out.set(p, at + 4);
    at += 4 + p.length;
  }
  return out;
}
