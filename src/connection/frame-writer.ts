import net from 'node:net';
import type { Duplex } from 'node:stream';
import { MAX_SHORT_FRAME } from './frame-decoder.js';
import { spendTurn } from './turn.js';

/**
 * Frames whose payload is at most this long are copied, header and payload
 * together, into a batch buffer that is written once per tick: small frames
 * then cost one syscall per batch, and a header never travels apart from its
 * payload (over TCP, Nagle and delayed ACK would hold the payload ~40-200 ms).
 */
const COALESCE_LIMIT = 16 * 1024;
const BATCH_SIZE = 64 * 1024;
const NO_BATCH = Buffer.alloc(0);
/** Bytes the transport may hold before `send` waits for `drain`. */
const MIN_HIGH_WATER_MARK = 256 * 1024;
const resolved = Promise.resolve();

/** `wait`, then `turn` (a spent turn budget's promise). */
function thenTurn(wait: Promise<void>, turn: Promise<void>): Promise<void> {
  return wait.then(() => turn);
}

/** Writes the frame header for a payload of `length` bytes into `into` at `pos`; returns its size. */
export function writeHeader(into: Buffer, pos: number, length: number): number {
  if (length <= MAX_SHORT_FRAME) {
    into.writeInt32BE(length, pos);
    return 4;
  }
  into.writeInt32BE(-1, pos);
  into.writeBigUInt64BE(BigInt(length), pos + 4);
  return 12;
}

/**
 * The sending half of a connection: frames payloads, keeps them whole and in
 * call order, batches small ones, and applies backpressure.
 */
export class FrameWriter {
  readonly #stream: Duplex;
  readonly #highWaterMark: number;
  /**
   * Small frames are copied here; `[#batchStart, #batchEnd)` is not yet
   * written. A flush hands the transport a view of that range (it keeps the
   * reference) and later frames go after it, so each byte is copied once and a
   * new batch buffer is needed only when this one is full. It starts empty: a
   * connection that only authenticates, or only sends replies (written at
   * once), never allocates one, and 64 KiB per connection showed in the cost
   * of a connect.
   */
  #batch: Buffer = NO_BATCH;
  #batchStart = 0;
  #batchEnd = 0;
  #flushScheduled = false;
  readonly #onFlushTick = (): void => this.#scheduledFlush();
  #replyPending = false;
  /** Settles with the transport's error at the time it drained (null: the bytes reached the OS). */
  #drain: Promise<Error | null> | null = null;
  #resolveDrain: ((err: Error | null) => void) | null = null;
  #error: Error | null = null;
  #lazyError: (() => Error) | null = null;
  #ended = false;

  constructor(stream: Duplex) {
    this.#stream = stream;
    this.#highWaterMark = Math.max(stream.writableHighWaterMark ?? 0, MIN_HIGH_WATER_MARK);
    stream.on('drain', () => this.#drained(this.error));
  }

  /** The error that broke the transport, if any; later writes reject with it. */
  get error(): Error | null {
    if (this.#error === null && this.#lazyError !== null) this.#error = this.#lazyError();
    return this.#error;
  }

  get #failed(): boolean {
    return this.#error !== null || this.#lazyError !== null;
  }

  /**
   * Records a transport failure: pending and later writes reject with it. A
   * function is called only if some write needs the error (most connections
   * end without one, and an Error's stack trace is not free).
   */
  fail(err: Error | (() => Error)): void {
    if (this.#failed) return;
    if (typeof err === 'function') this.#lazyError = err;
    else this.#error = err;
    this.#batchStart = this.#batchEnd;
    if (this.#resolveDrain !== null) this.#drained(this.error);
  }

  /**
   * Queues one frame. Resolves once it is handed to the OS or queued below the
   * high-water mark; a payload written by reference (not copied) resolves only
   * when the OS has it, so the caller may reuse its buffer as soon as this resolves.
   * `transient`: the payload is valid only until the caller's next move, so it
   * is copied if it is not written (or batched) at once.
   */
  write(payload: Uint8Array, transient = false): Promise<void> {
    // No closure in here captures a local or `this`: one that did made V8
    // allocate a context per call (~100 bytes of garbage per frame).
    if (this.#failed) return Promise.reject(this.error);
    // `length`, not `byteLength` (the same for a Uint8Array): V8 11 inlines the one and not the other, ~20 ns a call.
    const length = payload.length;
    const yieldTurn = spendTurn(length + 4);
    if (length <= COALESCE_LIMIT) {
      if (this.#replyPending && this.#batchEnd === this.#batchStart && this.#stream.writableLength === 0) {
        // A reply to what just arrived, with nothing queued: write it now rather than at the end of the tick.
        this.#replyPending = false;
        const frame = Buffer.allocUnsafe(4 + length);
        frame.writeInt32BE(length, 0);
        frame.set(payload, 4);
        this.#stream.write(frame);
        return yieldTurn ?? resolved;
      }
      if (this.#batchEnd + 4 + length > this.#batch.length) {
        this.flush();
        this.#batch = Buffer.allocUnsafe(BATCH_SIZE); // the transport may still hold views of the old one
        this.#batchStart = this.#batchEnd = 0;
      }
      const batch = this.#batch;
      const at = this.#batchEnd;
      // By hand: writeInt32BE's argument checks cost more than the four stores (length <= COALESCE_LIMIT).
      batch[at] = length >>> 24;
      batch[at + 1] = length >>> 16;
      batch[at + 2] = length >>> 8;
      batch[at + 3] = length;
      batch.set(payload, at + 4);
      this.#batchEnd = at + 4 + length;
      if (this.#batchEnd - this.#batchStart >= BATCH_SIZE - 4) this.flush();
      else if (!this.#flushScheduled) {
        this.#flushScheduled = true;
        process.nextTick(this.#onFlushTick);
      }
      const waitDrain = this.#needsDrain() ? this.#waitDrain() : undefined;
      if (waitDrain !== undefined) return yieldTurn === undefined ? waitDrain : thenTurn(waitDrain, yieldTurn);
      return yieldTurn ?? resolved;
    }
    return this.#writeLarge(payload, transient, yieldTurn);
  }

  /** A frame above COALESCE_LIMIT: written by reference, after the batch. */
  #writeLarge(payload: Uint8Array, transient: boolean, yieldTurn: Promise<void> | undefined): Promise<void> {
    const length = payload.length;
    this.flush();
    // Written by reference below: bytes that are only lent to us (a serializer's reused buffer) are copied first.
    if (transient) payload = new Uint8Array(payload); // a copy (a Buffer's slice() would be a view)
    const header = Buffer.allocUnsafe(12);
    const headerLength = writeHeader(header, 0, length);
    return new Promise<void>((resolve, reject) => {
      const stream = this.#stream;
      // Corked, the header and the payload leave in one writev: never apart.
      // Uncorked whatever happens: a stream left corked holds every later frame.
      stream.cork();
      try {
        stream.write(header.subarray(0, headerLength));
        stream.write(payload, (err) => {
          if (err) reject(this.error ?? err);
          else if (yieldTurn !== undefined) yieldTurn.then(resolve);
          else resolve();
        });
      } catch (err) {
        // The header may be out without its payload: the stream can carry no more frames.
        this.fail(err instanceof Error ? err : new Error(String(err)));
        reject(err);
      } finally {
        stream.uncork();
      }
    });
  }

  /**
   * Data arrived: the first small frame written before the next batch flush is
   * probably a reply, and goes out at once instead of waiting for the end of
   * the tick (later frames of the same tick are batched as usual).
   */
  expectReply(): void {
    this.#replyPending = true;
  }

  /** Hands the batch of small frames to the transport now. */
  flush(): void {
    if (this.#batchEnd === this.#batchStart || this.#failed) return;
    const out = this.#batch.subarray(this.#batchStart, this.#batchEnd);
    this.#batchStart = this.#batchEnd;
    this.#stream.write(out);
  }

  /** Flushes, ends the transport's writing side and resolves when that is done (or failed). */
  /**
   * Ends writing at once when closing the socket is all that is left: a plain
   * (not TLS) socket with every frame already handed to the OS. Closing it
   * then delivers the same bytes and the same FIN as `end()` would (the kernel
   * sends what it holds before the FIN), without a shutdown round through the
   * event loop. Returns false, and ends nothing, otherwise.
   */
  endsAtOnce(): boolean {
    if (this.#ended) return false;
    this.flush();
    const stream = this.#stream;
    if (!(stream instanceof net.Socket) || (stream as { encrypted?: boolean }).encrypted === true) return false;
    if (stream.connecting || stream.writableLength !== 0 || this.#resolveDrain !== null || this.#failed) return false;
    this.#ended = true;
    return true;
  }

  end(): Promise<void> {
    if (this.#ended) return resolved;
    this.#ended = true;
    this.flush();
    const stream = this.#stream;
    if (stream.writableFinished || stream.destroyed || this.#failed) return resolved;
    return new Promise<void>((resolve) => {
      const done = (): void => {
        // A stream that is ending never emits 'drain': 'finish' means every
        // queued byte reached the OS, so sends waiting for drain are done.
        this.#drained(this.error);
        stream.off('finish', done);
        stream.off('close', done);
        stream.off('error', done);
        resolve();
      };
      stream.on('finish', done);
      stream.on('close', done);
      stream.on('error', done);
      stream.end();
    });
  }

  #scheduledFlush(): void {
    this.#flushScheduled = false;
    this.flush();
  }

  #needsDrain(): boolean {
    // Our mark is at least the stream's own, so above it the stream owes us a 'drain'.
    return this.#stream.writableLength > this.#highWaterMark;
  }

  #waitDrain(): Promise<void> {
    this.#drain ??= new Promise<Error | null>((resolve) => {
      this.#resolveDrain = resolve;
    });
    return this.#drain.then((err) => (err !== null ? Promise.reject(err) : undefined));
  }

  #drained(err: Error | null): void {
    const resolve = this.#resolveDrain;
    this.#drain = null;
    this.#resolveDrain = null;
    resolve?.(err);
  }
}
