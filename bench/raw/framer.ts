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
 * `message`: each payload is handed to the callback whole: a view of the chunk
 * when it lies inside one, else a buffer allocated for it (one per message).
 * `count`: payloads that span chunks are only counted, never assembled (the
 * callback gets `null`); the frame numbered `checksumFrame` is checksummed on
 * the fly so the run can still be verified.
 */
export type Delivery = 'message' | 'count';

export class RawDecoder {
  readonly #onMessage: (payload: Buffer | null, length: number) => void;
  readonly #delivery: Delivery;
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

  constructor(onMessage: (payload: Buffer | null, length: number) => void, delivery: Delivery = 'message', checksumFrame = -1) {
    this.#onMessage = onMessage;
    this.#delivery = delivery;
    this.#checksumFrame = checksumFrame;
  }

  push(chunk: Buffer): void {
    let pos = 0;
    const end = chunk.length;
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
        if (this.#delivery === 'message' && end - pos >= length) {
          this.frames++;
          this.#onMessage(chunk.subarray(pos, pos + length), length);
          pos += length;
          continue;
        }
        this.#length = length;
        this.#remaining = length;
        if (this.#delivery === 'message') this.#target = Buffer.allocUnsafe(length);
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
    this.#onMessage(payload, this.#length);
  }
}

/** One `socket.write` per message: a fresh header+payload buffer each (the socket keeps a reference). */
export async function sendEachWrite(socket: Socket, total: number, fill: (into: Buffer, i: number) => number, maxPayload: number): Promise<void> {
  const scratch = Buffer.allocUnsafe(maxPayload);
  for (let i = 0; i < total; i++) {
    const n = fill(scratch, i);
    const frame = Buffer.allocUnsafe(4 + n);
    frame.writeInt32BE(n, 0);
    scratch.copy(frame, 4, 0, n);
    if (!socket.write(frame)) await once(socket, 'drain');
  }
}

const BATCH_SIZE = 64 * 1024;

/** Coalesced: frames are copied into a 64 KiB batch that is written when full (one write per batch). */
export async function sendCoalesced(socket: Socket, total: number, fill: (into: Buffer, i: number) => number, maxPayload: number): Promise<void> {
  let batch = Buffer.allocUnsafe(BATCH_SIZE);
  let used = 0;
  for (let i = 0; i < total; i++) {
    if (used + 4 + maxPayload > BATCH_SIZE) {
      const ok = socket.write(batch.subarray(0, used));
      batch = Buffer.allocUnsafe(BATCH_SIZE);
      used = 0;
      if (!ok) await once(socket, 'drain');
    }
    const n = fill(batch.subarray(used + 4), i);
    batch.writeInt32BE(n, used);
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
