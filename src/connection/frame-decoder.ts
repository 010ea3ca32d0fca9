import { ProtocolError } from '../errors.js';

/**
 * A frame at most this long that spans chunks gets its whole payload buffer as
 * soon as the header is read. Longer frames are kept as the chunks that arrived
 * and joined once at the end, so a header that lies about its length costs what
 * was actually sent plus at most this much.
 */
export const EAGER_ALLOCATION_LIMIT = 1 << 20;

/** Largest length a 4-byte header carries; CPython switches to `-1` + 8 bytes above it. */
export const MAX_SHORT_FRAME = 0x7fffffff;

export interface FrameHandler {
  /**
   * A header was read. Return a view of exactly `length` bytes to receive the
   * payload straight into, `null` to let the decoder own the payload, or
   * `false` to stop decoding (the caller has given up on this stream).
   */
  header(length: number): Uint8Array | null | false;
  /** A whole payload. `direct` when it was written into the view `header` returned. */
  frame(payload: Buffer, direct: boolean): void;
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
  /** Header bytes that arrived split across chunks. */
  readonly #headerBytes = Buffer.alloc(8);
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

  constructor(handler: FrameHandler, maxMessageSize: number) {
    this.#handler = handler;
    this.#maxMessageSize = maxMessageSize;
  }

  /** Payload length of the frame being read, or -1 between frames. */
  get currentFrameLength(): number {
    return this.#state === State.Payload ? this.#length : -1;
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
   * The view returned by `header()` can no longer be written (its receive was
   * aborted): keep what arrived in it in memory of our own and go on.
   */
  /**
   * A receiver with room for the frame under way arrived after its header:
   * what has arrived is copied into `view` (exactly the frame's length) and the
   * rest is written straight there, instead of being gathered and copied again
   * at the end. Returns false when no frame is under way or it has a view already.
   */
  attachTarget(view: Uint8Array): boolean {
    if (this.#state !== State.Payload || this.#direct || view.byteLength !== this.#length) return false;
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

  detachTarget(): void {
    if (!this.#direct || this.#target === null) return;
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
          let length: number;
          if (this.#headerGot === 0 && end - pos >= 4) {
            length = chunk.readInt32BE(pos);
            pos += 4;
          } else {
            const take = Math.min(4 - this.#headerGot, end - pos);
            chunk.copy(this.#headerBytes, this.#headerGot, pos, pos + take);
            this.#headerGot += take;
            pos += take;
            if (this.#headerGot < 4) return;
            this.#headerGot = 0;
            length = this.#headerBytes.readInt32BE(0);
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
          const take = Math.min(8 - this.#headerGot, end - pos);
          chunk.copy(this.#headerBytes, this.#headerGot, pos, pos + take);
          this.#headerGot += take;
          pos += take;
          if (this.#headerGot < 8) return;
          this.#headerGot = 0;
          const long = this.#headerBytes.readBigUInt64BE(0);
          const length = long > BigInt(Number.MAX_SAFE_INTEGER) ? Infinity : Number(long);
          pos = this.#beginPayload(length, chunk, pos);
          if (pos < 0) return;
          break;
        }
        case State.Payload: {
          const take = Math.min(this.#length - this.#got, end - pos);
          if (this.#target !== null) {
            this.#target.set(chunk.subarray(pos, pos + take), this.#got);
          } else {
            this.#pieces.push(chunk.subarray(pos, pos + take));
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
   * Starts the payload of a frame whose header ended at `pos` of `chunk`.
   * Returns the position to go on from, or -1 when decoding stopped.
   */
  #beginPayload(length: number, chunk: Buffer, pos: number): number {
    if (length > this.#maxMessageSize) {
      this.#fail(
        new ProtocolError(
          'ERR_MESSAGE_TOO_LONG',
          `incoming message of ${length === Infinity ? 'more than 2**53' : length} bytes exceeds maxMessageSize (${this.#maxMessageSize} bytes)`,
        ),
      );
      return -1;
    }
    const target = this.#handler.header(length);
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
  }

  #fail(err: ProtocolError): void {
    this.halt();
    this.#handler.error(err);
  }
}
