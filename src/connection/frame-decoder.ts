import { ProtocolError } from '../core/errors.js';

/**
 * A frame at most this long that spans chunks gets its whole payload buffer as
 * soon as the header is read. Longer frames are kept as the chunks that arrived
 * and joined once at the end, so a header that lies about its length costs what
 * was actually sent plus at most this much.
 */
export const EAGER_ALLOCATION_LIMIT = 1 << 20;

/** Largest length a 4-byte header carries; CPython switches to `-1` + 8 bytes above it. */
export const MAX_SHORT_FRAME = 0x7fffffff;

/**
 * Pieces of a long payload at least this long are kept as views of the chunk
 * they arrived in; shorter ones are copied into blocks. Every chunk is a
 * Buffer of its own with a few hundred bytes of bookkeeping, so keeping a
 * peer's one-byte writes as pieces would cost hundreds of times their size.
 */
const PIECE_MIN = 16 * 1024;
/** Blocks grow with the payload (fewer pieces to join), within these bounds. */
const BLOCK_MIN = 64 * 1024;
const BLOCK_MAX = 1 << 20;

const subarray = Buffer.prototype.subarray;

/**
 * Whether `Buffer.prototype.subarray` may be called on a plain object that
 * holds a chunk's `length`, `buffer` and `byteOffset`. Node 20's reads just
 * those three and makes the view; on a Buffer, `buffer` and `byteOffset` are
 * typed-array getters V8 11 does not inline, about 50 of the ~120 ns a view
 * of a 64-byte frame costs. Read once per chunk instead, the view is the same
 * Buffer for less. Checked here, once: a Node whose `subarray` works another
 * way (it throws, or makes something else) gets views the usual way.
 */
const viewsOfPlainChunk = ((): boolean => {
  try {
    const chunk = Buffer.from([1, 2, 3, 4, 5]).subarray(1);
    const view = subarray.call({ length: chunk.length, buffer: chunk.buffer, byteOffset: chunk.byteOffset } as unknown as Buffer, 1, 3);
    return (
      Object.getPrototypeOf(view) === Buffer.prototype &&
      view.buffer === chunk.buffer &&
      view.byteOffset === chunk.byteOffset + 1 &&
      view.length === 2 &&
      view[0] === 3
    );
  } catch {
    return false;
  }
})();

export interface FrameHandler {
  /**
   * A header was read. Return a view of exactly `length` bytes to receive the
   * payload straight into, `null` to let the decoder own the payload, or
   * `false` to stop decoding (the caller has given up on this stream).
   */
  header(length: number): Uint8Array | null | false;
  /** A whole payload. `direct` when it was written into the view `header` returned. */
  frame(payload: Buffer, direct: boolean): void;
  /**
   * The view `header` returned (or `attachTarget` was given) can no longer
   * hold the payload: its buffer was detached or shrunk. The rest of that
   * frame is skipped; decoding goes on with the next one.
   */
  targetLost?(length: number): void;
  /** The stream broke the framing rules; decoding has stopped. */
  error(err: ProtocolError): void;
}

const enum State {
  Header,
  LongHeader,
  Payload,
  Halted,
}

/**
 * The incremental decoder for CPython's framing: a 4-byte big-endian signed
 * length, or `-1` followed by an 8-byte big-endian unsigned length, then the
 * payload. Every transport feeds its chunks here.
 *
 * It consumes exactly the bytes of each frame: payloads that lie inside one
 * chunk are handed over as views of that chunk, and nothing already seen is
 * concatenated again.
 */
export class FrameDecoder {
  readonly #handler: FrameHandler;
  readonly #maxMessageSize: number;
  #state = State.Header;
  /** Header bytes that arrived split across chunks (made when that first happens: most connections never need it). */
  #headerBytes: Buffer | null = null;
  #headerGot = 0;
  /** Payload length of the frame being read. */
  #length = 0;
  /** Payload bytes of that frame received so far. */
  #got = 0;
  /** Where the payload goes when it has one buffer: eager allocation or the handler's view. */
  #target: Uint8Array | null = null;
  #direct = false;
  /** Pieces of a long payload, joined when the frame is complete. */
  #pieces: Buffer[] = [];
  /** Where small chunks of a long payload are copied, and how much of it is used. */
  #block: Buffer | null = null;
  #blockUsed = 0;
  /** The rest of the current frame is dropped (its target was lost). */
  #skipping = false;
  /** The next `#capCount` frames may be at most `#capMax` bytes (the handshake's cap). */
  #capCount = 0;
  #capMax = Infinity;

  constructor(handler: FrameHandler, maxMessageSize: number) {
    this.#handler = handler;
    this.#maxMessageSize = maxMessageSize;
  }

  /** Payload length of the frame being read, or -1 between frames (and while a lost frame is skipped). */
  get currentFrameLength(): number {
    return this.#state === State.Payload && !this.#skipping ? this.#length : -1;
  }

  /**
   * The next `count` frames may carry at most `max` bytes, checked as soon as
   * each header is read: a handshake reads a few short messages, and a peer
   * that announces a huge one must not make us take it in first.
   */
  limitNext(count: number, max: number): void {
    this.#capCount = count;
    this.#capMax = max;
  }

  /** True when no byte of a next frame has arrived. */
  get atBoundary(): boolean {
    return this.#state === State.Header && this.#headerGot === 0;
  }

  get halted(): boolean {
    return this.#state === State.Halted;
  }

  /** Stop decoding for good; later chunks are ignored. */
  halt(): void {
    this.#state = State.Halted;
    this.#release();
  }

  /**
   * A receiver with room for the frame under way arrived after its header:
   * what has arrived is copied into `view` (exactly the frame's length) and the
   * rest is written straight there, instead of being gathered and copied again
   * at the end. Returns false when no frame is under way or it has a view already.
   */
  attachTarget(view: Uint8Array): boolean {
    if (this.#state !== State.Payload || this.#direct || this.#skipping || view.byteLength !== this.#length) return false;
    this.#sealBlock();
    if (this.#target !== null) {
      view.set(this.#target.subarray(0, this.#got));
    } else {
      let at = 0;
      for (const piece of this.#pieces) {
        view.set(piece, at);
        at += piece.length;
      }
    }
    this.#target = view;
    this.#direct = true;
    this.#pieces = [];
    return true;
  }

  /**
   * The view returned by `header()` can no longer be written (its receive was
   * aborted): keep what arrived in it in memory of our own and go on.
   */
  detachTarget(): void {
    if (!this.#direct || this.#target === null) return;
    if (this.#target.byteLength !== this.#length) {
      // Its buffer was detached too: what arrived went with it, so the frame cannot be kept.
      this.#target = null;
      this.#direct = false;
      this.#skipping = true;
      return;
    }
    const arrived = Buffer.from(this.#target.subarray(0, this.#got));
    this.#target = null;
    this.#direct = false;
    this.#pieces = this.#got > 0 ? [arrived] : [];
  }

  push(chunk: Buffer): void {
    let pos = 0;
    const end = chunk.length;
    while (pos < end) {
      switch (this.#state) {
        case State.Header: {
          if (this.#headerGot === 0) {
            pos = this.#wholeFrames(chunk, pos);
            if (pos < 0) return;
            if (pos === end || this.#state !== State.Header) continue;
          }
          let length: number;
          if (this.#headerGot === 0 && end - pos >= 4) {
            length = chunk.readInt32BE(pos);
            pos += 4;
          } else {
            pos = this.#gatherHeader(chunk, pos, 4);
            if (this.#headerGot < 4) return;
            this.#headerGot = 0;
            length = this.#headerBytes!.readInt32BE(0);
          }
          if (length === -1) {
            this.#state = State.LongHeader;
            continue;
          }
          if (length < 0) {
            this.#fail(
              new ProtocolError(
                'ERR_BAD_LENGTH',
                `invalid frame header: length ${length} (only -1 may be negative); is the peer speaking the multiprocessing.connection protocol?`,
              ),
            );
            return;
          }
          pos = this.#beginPayload(length, chunk, pos);
          if (pos < 0) return;
          break;
        }
        case State.LongHeader: {
          pos = this.#gatherHeader(chunk, pos, 8);
          if (this.#headerGot < 8) return;
          this.#headerGot = 0;
          const long = this.#headerBytes!.readBigUInt64BE(0);
          const length = long > BigInt(Number.MAX_SAFE_INTEGER) ? Infinity : Number(long);
          pos = this.#beginPayload(length, chunk, pos);
          if (pos < 0) return;
          break;
        }
        case State.Payload: {
          const take = Math.min(this.#length - this.#got, end - pos);
          // A caller's buffer can be detached (transferred) or shrunk under us at any time.
          if (this.#direct && this.#target!.byteLength !== this.#length) this.#loseTarget();
          if (this.#skipping) {
            // dropped
          } else if (this.#target !== null) {
            this.#target.set(chunk.subarray(pos, pos + take), this.#got);
          } else {
            this.#gather(chunk, pos, take);
          }
          this.#got += take;
          pos += take;
          if (this.#got === this.#length) this.#completePayload();
          break;
        }
        case State.Halted:
          return;
      }
    }
  }

  /**
   * The stream ended. Returns the error that describes where: `null` at a
   * frame boundary (a clean end of stream), `ERR_TRUNCATED` inside a frame.
   */
  finish(): ProtocolError | null {
    if (this.#state === State.Halted || this.atBoundary) {
      this.halt();
      return null;
    }
    const where =
      this.#state === State.Payload
        ? `after ${this.#got} of ${this.#length} payload bytes`
        : 'inside a frame header';
    this.halt();
    return new ProtocolError('ERR_TRUNCATED', `the peer closed the connection ${where}`);
  }

  /**
   * The hot loop of small messages: frames whose header and payload lie whole
   * in `chunk` from `pos`, each handed over as a view. Stops at the first
   * frame that needs more (a long header, a bad or capped length, a payload
   * that goes on in the next chunk, a receiver's buffer to fill) with the
   * position of its header, or returns -1 when decoding stopped.
   */
  #wholeFrames(chunk: Buffer, pos: number): number {
    const end = chunk.length;
    const handler = this.#handler;
    const views = viewsOfPlainChunk
      ? ({ length: end, buffer: chunk.buffer, byteOffset: chunk.byteOffset } as unknown as Buffer)
      : chunk;
    while (end - pos >= 4 && this.#capCount === 0) {
      // Plain byte loads: cheaper than readInt32BE's checks, which the loop condition makes needless.
      const length = (chunk[pos]! << 24) | (chunk[pos + 1]! << 16) | (chunk[pos + 2]! << 8) | chunk[pos + 3]!;
      const start = pos + 4;
      if (length < 0 || length > end - start || length > this.#maxMessageSize) return pos;
      const target = handler.header(length);
      if (target !== null) return this.#startPayload(length, target, chunk, start);
      pos = start + length;
      handler.frame(subarray.call(views, start, pos), false);
      if (this.#state !== State.Header) return pos;
    }
    return pos;
  }

  /** Header bytes split across chunks: copies from `pos` until `size` are held; returns where they end in `chunk`. */
  #gatherHeader(chunk: Buffer, pos: number, size: number): number {
    const take = Math.min(size - this.#headerGot, chunk.length - pos);
    chunk.copy((this.#headerBytes ??= Buffer.alloc(8)), this.#headerGot, pos, pos + take);
    this.#headerGot += take;
    return pos + take;
  }

  /**
   * Starts the payload of a frame whose header ended at `pos` of `chunk`.
   * Returns the position to go on from, or -1 when decoding stopped.
   */
  #beginPayload(length: number, chunk: Buffer, pos: number): number {
    if (this.#capCount > 0) {
      this.#capCount--;
      if (length > this.#capMax) {
        this.#fail(
          new ProtocolError(
            'ERR_MESSAGE_TOO_LONG',
            `handshake message of ${length === Infinity ? 'more than 2**53' : length} bytes is longer than the ${this.#capMax}-byte cap`,
          ),
        );
        return -1;
      }
    }
    if (length > this.#maxMessageSize) {
      this.#fail(
        new ProtocolError(
          'ERR_MESSAGE_TOO_LONG',
          `incoming message of ${length === Infinity ? 'more than 2**53' : length} bytes exceeds maxMessageSize (${this.#maxMessageSize} bytes)`,
        ),
      );
      return -1;
    }
    return this.#startPayload(length, this.#handler.header(length), chunk, pos);
  }

  /** Starts the payload of a frame whose header (checked) ended at `pos` of `chunk`, as `#beginPayload`. */
  #startPayload(length: number, target: Uint8Array | null | false, chunk: Buffer, pos: number): number {
    if (target === false) {
      this.halt();
      return -1;
    }
    this.#length = length;
    this.#got = 0;
    this.#state = State.Payload;
    if (target !== null) {
      this.#target = target;
      this.#direct = true;
    } else if (chunk.length - pos >= length) {
      // The whole payload is in this chunk: hand over a view, no copy.
      this.#state = State.Header;
      this.#handler.frame(chunk.subarray(pos, pos + length), false);
      return pos + length;
    } else if (length <= EAGER_ALLOCATION_LIMIT) {
      this.#target = Buffer.allocUnsafe(length);
    }
    if (length === 0) this.#completePayload();
    return pos;
  }

  #completePayload(): void {
    if (this.#skipping) {
      this.#release();
      this.#state = State.Header;
      return;
    }
    this.#sealBlock();
    let payload: Buffer;
    const direct = this.#direct;
    if (this.#target !== null) {
      const t = this.#target;
      payload = Buffer.from(t.buffer, t.byteOffset, t.byteLength);
    } else if (this.#pieces.length === 1) {
      payload = this.#pieces[0]!;
    } else {
      payload = Buffer.concat(this.#pieces, this.#length);
    }
    this.#release();
    this.#state = State.Header;
    this.#handler.frame(payload, direct);
  }

  #release(): void {
    this.#target = null;
    this.#direct = false;
    this.#pieces = [];
    this.#block = null;
    this.#blockUsed = 0;
    this.#skipping = false;
  }

  /** `take` bytes of a long payload from `chunk` at `pos`: kept as a view when large, else copied into a block. */
  #gather(chunk: Buffer, pos: number, take: number): void {
    if (take >= PIECE_MIN) {
      this.#sealBlock();
      this.#pieces.push(chunk.subarray(pos, pos + take));
      return;
    }
    let got = this.#got;
    while (take > 0) {
      if (this.#block === null) {
        const size = Math.min(this.#length - got, Math.max(BLOCK_MIN, Math.min(got, BLOCK_MAX)));
        this.#block = Buffer.allocUnsafe(size);
        this.#blockUsed = 0;
      }
      const n = Math.min(take, this.#block.length - this.#blockUsed);
      chunk.copy(this.#block, this.#blockUsed, pos, pos + n);
      this.#blockUsed += n;
      pos += n;
      take -= n;
      got += n;
      if (this.#blockUsed === this.#block.length) this.#sealBlock();
    }
  }

  /** The block in use becomes a piece (what of it is filled). */
  #sealBlock(): void {
    if (this.#block === null) return;
    if (this.#blockUsed > 0) this.#pieces.push(this.#block.subarray(0, this.#blockUsed));
    this.#block = null;
    this.#blockUsed = 0;
  }

  /** The payload's target was detached or shrunk: tell the handler, and drop the rest of the frame. */
  #loseTarget(): void {
    this.#target = null;
    this.#direct = false;
    this.#pieces = [];
    this.#skipping = true;
    this.#handler.targetLost?.(this.#length);
  }

  #fail(err: ProtocolError): void {
    this.halt();
    this.#handler.error(err);
  }
}
