import { constants as bufferConstants } from 'node:buffer';
import type { Duplex } from 'node:stream';
import { armCancel } from '../core/cancel.js';
import {
  AuthenticationError,
  BufferTooShort,
  ConnectionStateError,
  EOFError,
  MpconnError,
  ProtocolError,
} from '../core/errors.js';
import { Notifier, readiness, type Readiness } from '../core/readiness.js';
import { type SerializerOption } from '../serializers/index.js';
import { resolveSerializer, type ResolvedSerializer } from '../serializers/resolve.js';
import {
  abortSignal,
  byteCount,
  bytesOf,
  checkOptionNames,
  depthLimit,
  describe,
  options as optionsOf,
  sliceForSend,
  timeoutMs,
} from '../core/validate.js';
import { channels, debug, debugging, publish } from './diagnostics.js';
import { FrameDecoder } from './frame-decoder.js';
import { FrameWriter } from './frame-writer.js';
import { Queue } from '../core/queue.js';
import { spendTurn } from './turn.js';

/**
 * Options every connection takes (and `Listener.listen`, `Client`, `Pipe`, `spawn`).
 *
 * @example
 * ```ts
 * const conn = await Client(['localhost', 6000], { serializer: 'pickle', maxMessageSize: 16 * 1024 * 1024 });
 * ```
 */
export interface ConnectionOptions {
  /** How `send`/`recv` turn values into bytes. Default `'msgpack'`. */
  serializer?: SerializerOption;
  /** Longest message `recv*` accepts, in bytes. Default: the platform's Buffer limit. */
  maxMessageSize?: number;
  /**
   * Deepest nesting of containers `recv()` decodes with the built-in
   * serializers (arrays, objects and maps; lists, tuples, dicts, sets and
   * objects in a pickle). A deeper message rejects with `ProtocolError`
   * `ERR_DECODE` (`UnpicklingError` for pickle) and the connection stays
   * usable. Default 10,000, more than any CPython encoder writes; `Infinity`
   * for no limit. A custom serializer sets its own limits.
   */
  maxDepth?: number;
}

/**
 * Options of {@link Connection.close}.
 *
 * @example
 * ```ts
 * await conn.close({ timeout: 1_000 }); // flush for at most 1 s, then drop what is left
 * ```
 */
export interface CloseOptions {
  /**
   * Milliseconds to spend flushing queued frames before giving up: then the
   * connection is destroyed, frames not yet handed to the OS are dropped and
   * their sends reject. Default 30000; `Infinity` (or `null`) waits as long as it takes.
   */
  timeout?: number | null;
}

/**
 * Options of a single receive.
 *
 * @example
 * ```ts
 * const reply = await conn.recv({ timeout: 5_000 }); // rejects with a TimeoutError after 5 s, losing no message
 * ```
 */
export interface RecvOptions {
  /** Abort the receive; it rejects with the signal's reason and no message is lost. */
  signal?: AbortSignal;
  /** Milliseconds to wait; then it rejects with a `TimeoutError` and no message is lost. `null` or `Infinity`: no limit. */
  timeout?: number | null;
}

/**
 * Options of {@link Connection.recv}: those of every receive, and `parse`,
 * a validator for the decoded value.
 *
 * @example
 * ```ts
 * const isJob = (v: unknown): Job => {
 *   if (typeof v !== 'object' || v === null || typeof (v as Job).id !== 'number') throw new TypeError('not a job');
 *   return v as Job;
 * };
 * const job = await conn.recv({ parse: isJob, timeout: 5_000 }); // job: Job
 * ```
 */
export interface RecvValueOptions<T = unknown> extends RecvOptions {
  /**
   * Called with the decoded value; what it returns is what `recv()`
   * resolves with. If it throws, that one `recv()` rejects with its error:
   * the message is consumed and the connection stays usable.
   */
  parse?: (value: unknown) => T;
}

const CONNECTION_OPTION_NAMES = ['serializer', 'maxMessageSize', 'maxDepth'] as const;
const RECV_OPTION_NAMES = ['signal', 'timeout'] as const;
const RECV_VALUE_OPTION_NAMES = ['signal', 'timeout', 'parse'] as const;
const CLOSE_OPTION_NAMES = ['timeout'] as const;

/** Which directions a connection may use (one-way `Pipe` ends use one), and how it holds the process. */
export interface ConnectionMode {
  readable: boolean;
  writable: boolean;
  /**
   * `'while-waiting'`: the transport keeps the process alive only while a
   * receive, `poll` or `wait` is pending on it, as Node's IPC channel does, so
   * a child that has sent its results can exit. Default: always, like a socket.
   */
  keepAlive?: 'always' | 'while-waiting';
}

const enum Kind {
  Bytes,
  Into,
  Value,
}

interface Receiver {
  kind: Kind;
  maxlength: number;
  /** Into: the caller's buffer as bytes, and where to start writing. */
  view: Uint8Array | null;
  offset: number;
  /** Into: the payload is being written straight into `view`. */
  filling: boolean;
  resolve(value: unknown): void;
  reject(reason: unknown): void;
  disarm: (() => void) | null;
}

/**
 * Received messages no one has asked for yet are held up to this many bytes
 * (each message also counts a fixed overhead); above it the transport is
 * paused, so a slow reader makes a fast writer wait instead of growing memory.
 */
const INBOX_HIGH_WATER = 1 << 20;
const INBOX_LOW_WATER = 256 * 1024;
const MESSAGE_OVERHEAD = 64;

const DEFAULT_MAX_MESSAGE_SIZE = bufferConstants.MAX_LENGTH;
const CHALLENGE_PREFIX = Buffer.from('#CHALLENGE#');
/** How long `close()` (and `await using`) flushes to a peer that does not read before destroying. */
export const DEFAULT_CLOSE_TIMEOUT = 30_000;

/**
 * Internal: `conn[limitFrames](count, max)` caps the next `count` frames at
 * `max` bytes as soon as their headers arrive (the handshake's 256 bytes).
 */
export const limitFrames = Symbol('mpconn.limitFrames');
/** Internal: how many received messages are waiting to be taken (a Listener drops queued peers that left with none). */
export const bufferedMessages = Symbol('mpconn.bufferedMessages');

/**
 * A message-oriented connection: Python's `multiprocessing.connection.Connection`.
 * Every message is one frame of CPython's wire format, so the peer can be a
 * Python program using `send_bytes`/`recv_bytes` (or `send`/`recv` with the
 * `pickle` serializer).
 *
 * @example
 * ```ts
 * const conn = await Client(['localhost', 6000]);
 * await conn.send({ hello: 'world' });
 * console.log(await conn.recv());
 * await conn.close();
 * ```
 */
export class Connection implements AsyncIterable<unknown>, AsyncDisposable {
  readonly #stream: Duplex;
  readonly #serializer: ResolvedSerializer;
  readonly #decoder: FrameDecoder;
  readonly #writer: FrameWriter;
  readonly #canRead: boolean;
  readonly #canWrite: boolean;
  #closing: Promise<void> | null = null;
  /** Set when the stream broke the framing rules or a message was too long: Python's "no longer readable". */
  #unreadable = false;
  #inbox = new Queue<Buffer>();
  #inboxCost = 0;
  #paused = false;
  #receivers = new Queue<Receiver>();
  /** Why the stream can give no more messages once the inbox is empty (EOF, truncation, bad framing). */
  #readEnd: MpconnError | (() => MpconnError) | null = null;
  /** The end is reported once, then the connection is no longer readable (bad framing, too long). */
  #readEndOnce = false;
  readonly #ready = new Notifier(() => this.#holdProcess());
  readonly #keepAliveWhileWaiting: boolean;

  /**
   * Wraps any duplex byte stream (a socket, a TLS socket, a stream pair).
   * The connection owns the stream from now on.
   *
   * @example
   * ```ts
   * const socket = net.connect(path);
   * await once(socket, 'connect');
   * const conn = Connection.fromStream(socket);
   * ```
   */
  static fromStream(stream: Duplex, options?: ConnectionOptions): Connection {
    return new Connection(stream, options);
  }

  /**
   * The same as {@link Connection.fromStream}.
   *
   * @example
   * ```ts
   * const conn = new Connection(socket, { serializer: 'json' });
   * ```
   */
  constructor(stream: Duplex, options?: ConnectionOptions);
  /** @internal One-way `Pipe` ends, and the child's end of a `spawn()` connection. */
  constructor(stream: Duplex, options: ConnectionOptions | undefined, mode: ConnectionMode);
  constructor(stream: Duplex, options?: ConnectionOptions, mode: ConnectionMode = { readable: true, writable: true }) {
    const opts = optionsOf(options, 'options');
    checkOptionNames(opts, CONNECTION_OPTION_NAMES, 'connection options');
    if (stream === null || typeof stream !== 'object' || typeof (stream as Duplex).write !== 'function') {
      throw new TypeError('Connection needs a Duplex stream');
    }
    const maxMessageSize = byteCount(opts.maxMessageSize, 'maxMessageSize') ?? DEFAULT_MAX_MESSAGE_SIZE;
    this.#serializer = resolveSerializer(opts.serializer, depthLimit(opts.maxDepth));
    this.#stream = stream;
    this.#canRead = mode.readable;
    this.#canWrite = mode.writable;
    this.#keepAliveWhileWaiting = mode.keepAlive === 'while-waiting';
    this.#writer = new FrameWriter(stream);
    this.#decoder = new FrameDecoder(
      {
        header: (length) => this.#onHeader(length),
        frame: (payload, direct) => this.#onFrame(payload, direct),
        error: (err) => this.#onFramingError(err),
        targetLost: (length) => this.#onTargetLost(length),
      },
      maxMessageSize,
    );
    stream.on('data', (chunk: Buffer | string) => {
      if (this.#closing !== null) return;
      this.#writer.expectReply();
      this.#decoder.push(typeof chunk === 'string' ? Buffer.from(chunk) : chunk);
    });
    stream.on('end', () => this.#onEndOfStream(undefined));
    stream.on('error', (err: Error) => {
      this.#writer.fail(err);
      this.#onEndOfStream(err);
    });
    stream.on('close', () => {
      this.#writer.fail(peerGone);
      this.#onEndOfStream(undefined);
    });
    this.#holdProcess();
  }

  /** True once `close()` was called on this side. */
  get closed(): boolean {
    return this.#closing !== null;
  }

  /** False for the write-only end of a one-way `Pipe`, and after a message was too long. */
  get readable(): boolean {
    return this.#canRead && !this.#unreadable;
  }

  /** False for the read-only end of a one-way `Pipe`. */
  get writable(): boolean {
    return this.#canWrite;
  }

  /**
   * Sends one value, encoded by the connection's serializer.
   *
   * @example
   * ```ts
   * await conn.send([2.25, null, 'junk']);
   * ```
   */
  send(obj: unknown): Promise<void> {
    const state = this.#writeState();
    if (state !== null) return Promise.reject(state);
    let bytes: Uint8Array;
    try {
      const encoded: unknown = this.#serializer.encode(obj);
      // A custom serializer may return any view (DataView, Int32Array, a
      // Buffer slice of a pool) or an ArrayBuffer: send exactly its bytes.
      if (!(encoded instanceof Uint8Array)) {
        if (!ArrayBuffer.isView(encoded) && !(encoded instanceof ArrayBuffer) && !(encoded instanceof SharedArrayBuffer)) {
          throw new TypeError(
            `serializer.encode() must return a Uint8Array (or another ArrayBufferView or an ArrayBuffer), not ${describe(encoded)}`,
          );
        }
      }
      bytes = bytesOf(encoded, 'the encoded message');
      return this.#writer.write(bytes, this.#serializer.sharedOutput);
    } catch (err) {
      return Promise.reject(err);
    }
  }

  /**
   * Sends bytes as one message: `size` bytes of `buf` from byte `offset`
   * (offsets count bytes, whatever the view's element type). Resolves once the
   * frame is handed to the OS or queued below the high-water mark; `buf` may
   * be reused as soon as it resolves.
   *
   * @example
   * ```ts
   * await conn.sendBytes(new TextEncoder().encode('hello'));
   * await conn.sendBytes(new Int32Array([42, 1729]));
   * await conn.sendBytes(buffer, 16, 64); // bytes 16..80 of buffer
   * ```
   */
  sendBytes(buf: ArrayBufferView | ArrayBuffer, offset?: number, size?: number): Promise<void> {
    const state = this.#writeState();
    if (state !== null) return Promise.reject(state);
    let view: Uint8Array;
    try {
      view = sliceForSend(buf, offset, size);
    } catch (err) {
      return Promise.reject(err);
    }
    return this.#writer.write(view);
  }

  /**
   * Receives one value, decoded by the connection's serializer. Rejects with
   * `EOFError` when the peer closed at a message boundary.
   *
   * @example
   * ```ts
   * const msg = await conn.recv<{ id: number }>({ timeout: 5000 });
   * ```
   */
  recv<T = unknown>(options?: RecvValueOptions<T>): Promise<T> {
    const parse = options?.parse;
    if (parse === undefined) return this.#receive(Kind.Value, Infinity, null, 0, options) as Promise<T>;
    if (typeof parse !== 'function') return Promise.reject(new TypeError(`parse must be a function, not ${describe(parse)}`));
    // After the message is taken: a value the validator refuses costs that receive only.
    return this.#receive(Kind.Value, Infinity, null, 0, options).then((value) => parse(value));
  }

  /**
   * Receives one message as bytes. A message longer than `maxlength` rejects
   * with `ProtocolError` `ERR_MESSAGE_TOO_LONG` and leaves the connection
   * unreadable, as in Python.
   *
   * `maxlength` may be `Infinity` (no limit, the default). `options` are as for `recv`.
   *
   * @example
   * ```ts
   * const bytes = await conn.recvBytes(1024);
   * const next = await conn.recvBytes(undefined, { timeout: 5000 });
   * ```
   */
  recvBytes(maxlength?: number, options?: RecvOptions): Promise<Buffer> {
    let max: number | undefined;
    try {
      max = maxlength === Infinity ? undefined : byteCount(maxlength, 'maxlength');
    } catch (err) {
      return Promise.reject(err);
    }
    return this.#receive(Kind.Bytes, max ?? Infinity, null, 0, options) as Promise<Buffer>;
  }

  /**
   * Receives one message into `buf` from byte `offset`; resolves with its
   * length in bytes. A message that does not fit rejects with `BufferTooShort`,
   * whose `.data` holds the whole message.
   *
   * A large message is written straight into `buf` as it arrives; if the
   * receive is aborted (`options` as for `recv`) half-way, what arrived is
   * kept for the next receive and nothing is lost.
   *
   * @example
   * ```ts
   * const ints = new Int32Array(5);
   * const n = await conn.recvBytesInto(ints); // 8 for two int32s
   * ```
   */
  recvBytesInto(buf: ArrayBufferView | ArrayBuffer, offset?: number, options?: RecvOptions): Promise<number> {
    let view: Uint8Array;
    let start: number;
    try {
      view = bytesOf(buf, 'buf');
      start = byteCount(offset, 'offset') ?? 0;
      if (start > view.byteLength) {
        throw new RangeError(`offset ${start} is past the end of the ${view.byteLength}-byte buffer`);
      }
    } catch (err) {
      return Promise.reject(err);
    }
    return this.#receive(Kind.Into, Infinity, view, start, options) as Promise<number>;
  }

  /**
   * Whether a message (or the end of the stream) is ready to be received.
   * `poll()` and `poll(0)` answer at once; `poll(ms)` waits up to `ms`;
   * `poll(Infinity)` (or `null`, Python's `None`) waits until ready.
   *
   * @example
   * ```ts
   * if (await conn.poll(100)) console.log(await conn.recv());
   * ```
   */
  async poll(timeout?: number | null): Promise<boolean> {
    const state = this.#readState();
    if (state !== null) throw state;
    const ms = timeout === null ? Infinity : (timeoutMs(timeout) ?? 0);
    if (this.#isReady()) return true;
    if (ms === 0) return false;
    return new Promise<boolean>((resolve, reject) => {
      const finish = (): void => {
        unsubscribe();
        clearTimeout(timer);
      };
      const unsubscribe = this.#ready.subscribe(() => {
        if (!this.#isReady()) return;
        finish();
        const err = this.#readState();
        if (err !== null && err.code === 'ERR_CLOSED') reject(err);
        else resolve(true);
      });
      const timer = ms === Infinity ? undefined : setTimeout(() => {
        finish();
        resolve(false);
      }, ms);
    });
  }

  /**
   * The OS file descriptor under this connection, where there is one (TCP and
   * Unix sockets, socket pairs). Throws for other streams and once closed.
   */
  fileno(): number {
    if (this.#closing !== null) throw closedError();
    const s = this.#stream as unknown as { _handle?: { fd?: number }; _parent?: { _handle?: { fd?: number } } };
    const fd = s._handle?.fd ?? s._parent?._handle?.fd;
    if (typeof fd === 'number' && fd >= 0) return fd;
    throw new MpconnError('ERR_NO_FILENO', 'this connection has no OS file descriptor (it wraps a stream without one)');
  }

  /**
   * Closes this side: pending receives reject with `ERR_CLOSED`, frames already
   * queued are flushed, then the stream ends. Idempotent.
   *
   * Flushing waits for the peer to read what is queued, for at most
   * `timeout` ms (default 30 s); then the connection is destroyed as by
   * {@link destroy}. Python's `close()` never waits (it closes the socket and
   * the kernel delivers what it already has); here frames still queued in
   * this process are delivered too, unless the peer stops reading.
   *
   * @example
   * ```ts
   * await conn.close();                    // flush (at most 30 s), then end
   * await conn.close({ timeout: 0 });      // hand the OS what it takes now, drop the rest
   * await conn.close({ timeout: Infinity }); // flush however long it takes
   * ```
   */
  close(options?: CloseOptions): Promise<void> {
    if (this.#closing !== null) return this.#closing;
    let timeout: number;
    try {
      const opts = optionsOf(options, 'options');
      checkOptionNames(opts, CLOSE_OPTION_NAMES, 'close() options');
      timeout = opts.timeout === null ? Infinity : (timeoutMs(opts.timeout) ?? DEFAULT_CLOSE_TIMEOUT);
    } catch (err) {
      return Promise.reject(err);
    }
    const flushed = this.#writer.end();
    if (debugging()) debug('connection: close (flushing for at most %s ms)', timeout);
    publish(channels.connectionClose, () => ({ connection: this, reason: 'close' }));
    this.#closing = new Promise<void>((resolve) => {
      let timer: NodeJS.Timeout | undefined;
      let done = false;
      const finish = (): void => {
        if (done) return;
        done = true;
        clearTimeout(timer);
        this.#stream.destroy();
        resolve();
      };
      void flushed.then(finish);
      if (timeout !== Infinity) {
        timer = setTimeout(() => {
          this.#writer.fail(() => closeTimedOut(timeout));
          finish();
        }, timeout);
        // The stream itself keeps the process alive while it has something to write.
        timer.unref();
      }
    });
    this.#stopReceiving(closedError());
    return this.#closing;
  }

  /**
   * Ends the connection now, without flushing: pending receives and sends
   * reject with `reason` (default: a `ConnectionStateError` `ERR_CLOSED`
   * saying it was destroyed), frames not yet handed to the OS are dropped,
   * and the stream is destroyed. Idempotent; also ends a `close()` that is
   * still flushing.
   *
   * @example
   * ```ts
   * conn.destroy();                         // pending calls reject with ERR_CLOSED
   * conn.destroy(new Error('shutting down')); // ... or with this reason
   * ```
   */
  destroy(reason?: unknown): void {
    const err = reason ?? destroyedError();
    this.#writer.fail(err instanceof Error ? err : () => err as Error);
    if (this.#closing === null) {
      if (debugging()) debug('connection: destroyed%s', reason === undefined ? '' : `: ${String((reason as Error)?.message ?? reason)}`);
      publish(channels.connectionClose, () => ({ connection: this, reason: 'destroy', error: reason }));
      this.#closing = Promise.resolve();
      this.#writer.end();
      this.#stopReceiving(err);
    }
    this.#stream.destroy();
  }

  /** This side is closing: pending receives reject with `err`, buffered messages are dropped. */
  #stopReceiving(err: unknown): void {
    const waiting = this.#receivers.drain();
    for (const r of waiting) this.#settleError(r, err);
    this.#inbox.drain();
    this.#inboxCost = 0;
    // Keep reading (and dropping) while our frames flush: a peer that is
    // flushing to us in turn must not wait on a paused transport, or two ends
    // closing with unread data queued both ways would wait on each other forever.
    if (this.#paused) {
      this.#paused = false;
      this.#stream.resume();
    }
    this.#ready.notify();
  }

  /** Receives messages until the peer closes (or this side does). */
  async *[Symbol.asyncIterator](): AsyncIterator<unknown> {
    for (;;) {
      let msg: unknown;
      try {
        msg = await this.recv();
      } catch (err) {
        if (err instanceof EOFError || (err instanceof ConnectionStateError && err.code === 'ERR_CLOSED')) return;
        throw err;
      }
      yield msg;
    }
  }

  /**
   * `await using conn = await Client(...)` closes it at the end of the block,
   * as `close()` does: flushing for at most 30 s, so leaving the block never
   * waits forever on a peer that stopped reading.
   */
  [Symbol.asyncDispose](): Promise<void> {
    return this.close();
  }

  /** @internal See {@link limitFrames}. */
  [limitFrames](count: number, max: number): void {
    this.#decoder.limitNext(count, max);
  }

  /** @internal See {@link bufferedMessages}. */
  [bufferedMessages](): number {
    return this.#inbox.length;
  }

  /** @internal For `wait()`: ready when a message or the end of the stream is waiting. */
  [readiness](): Readiness {
    return {
      ready: () => this.#isReady(),
      subscribe: (listener) => this.#ready.subscribe(listener),
      subscribers: () => this.#ready.size,
    };
  }

  // Python-compatible names.

  /** Python-compatible name of {@link sendBytes}. */
  send_bytes(buf: ArrayBufferView | ArrayBuffer, offset?: number, size?: number): Promise<void> {
    return this.sendBytes(buf, offset, size);
  }

  /** Python-compatible name of {@link recvBytes}. */
  recv_bytes(maxlength?: number, options?: RecvOptions): Promise<Buffer> {
    return this.recvBytes(maxlength, options);
  }

  /** Python-compatible name of {@link recvBytesInto}. */
  recv_bytes_into(buf: ArrayBufferView | ArrayBuffer, offset?: number, options?: RecvOptions): Promise<number> {
    return this.recvBytesInto(buf, offset, options);
  }

  // Receiving.

  /** With keepAlive 'while-waiting': ref the transport only while someone waits on it. */
  #holdProcess(): void {
    if (!this.#keepAliveWhileWaiting) return;
    const s = this.#stream as Duplex & { ref?: () => void; unref?: () => void };
    if (this.#receivers.length > 0 || this.#ready.size > 0) s.ref?.();
    else s.unref?.();
  }

  #isReady(): boolean {
    return this.#inbox.length > 0 || this.#readEnd !== null || this.#unreadable || this.#closing !== null;
  }

  #readState(): ConnectionStateError | null {
    if (this.#closing !== null) return closedError();
    if (!this.#canRead) return new ConnectionStateError('ERR_WRITE_ONLY', 'this end of the pipe is write-only');
    if (this.#unreadable) return notReadableError();
    return null;
  }

  #writeState(): Error | null {
    if (this.#closing !== null) return closedError();
    if (!this.#canWrite) return new ConnectionStateError('ERR_READ_ONLY', 'this end of the pipe is read-only');
    return null;
  }

  #receive(
    kind: Kind,
    maxlength: number,
    view: Uint8Array | null,
    offset: number,
    options: RecvOptions | undefined,
  ): Promise<unknown> {
    const state = this.#readState();
    if (state !== null) return Promise.reject(state);
    let signal: AbortSignal | undefined;
    let timeout: number | undefined;
    if (options !== undefined) {
      try {
        const opts = optionsOf(options, 'options');
        checkOptionNames(opts, kind === Kind.Value ? RECV_VALUE_OPTION_NAMES : RECV_OPTION_NAMES, 'receive options');
        signal = abortSignal(opts.signal);
        timeout = timeoutMs(opts.timeout);
      } catch (err) {
        return Promise.reject(err);
      }
      if (signal?.aborted) return Promise.reject(signal.reason);
    }
    const message = this.#inbox.shift();
    if (message !== undefined) {
      // A message is waiting: no queue entry, no executor (the hot path of a busy reader).
      this.#takeFromInbox(message);
      const later = spendTurn(message.length);
      if (later !== undefined) return later.then(() => this.#take(kind, maxlength, view, offset, message));
      try {
        return Promise.resolve(this.#take(kind, maxlength, view, offset, message));
      } catch (err) {
        return Promise.reject(err);
      }
    }
    if (this.#readEnd !== null) return Promise.reject(this.#endError());
    return new Promise((resolve, reject) => {
      const r: Receiver = { kind, maxlength, view, offset, filling: false, resolve, reject, disarm: null };
      if (this.#keepAliveWhileWaiting) {
        // Settling always follows removal from the queue, so this sees the new count.
        r.resolve = (value) => {
          resolve(value);
          this.#holdProcess();
        };
        r.reject = (reason) => {
          reject(reason);
          this.#holdProcess();
        };
      }
      this.#receivers.push(r);
      this.#holdProcess();
      if (signal !== undefined || timeout !== undefined) {
        r.disarm = armCancel(signal, timeout, 'recv', (reason) => this.#cancel(r, reason));
      }
      if (this.#receivers.length === 1) this.#checkFront();
    });
  }

  #takeFromInbox(message: Buffer): void {
    this.#inboxCost -= message.length + MESSAGE_OVERHEAD;
    if (this.#paused && this.#inboxCost <= INBOX_LOW_WATER) {
      this.#paused = false;
      this.#stream.resume();
    }
  }

  /** A receive gave up (abort or timeout): it leaves the queue and takes no message with it. */
  #cancel(r: Receiver, reason: unknown): void {
    if (!this.#receivers.remove(r)) return;
    if (r.filling) {
      this.#decoder.detachTarget();
      r.filling = false;
    }
    r.reject(reason);
    this.#checkFront();
  }

  /** The receive now first in line may be too small for the frame already under way, or have room to take it directly. */
  #checkFront(): void {
    const r = this.#receivers.peek();
    const length = this.#decoder.currentFrameLength;
    if (r === undefined || length < 0) return;
    if (length > r.maxlength) {
      this.#receivers.shift();
      this.#rejectTooLong(r, length);
    } else if (!r.filling && r.kind === Kind.Into && length > 0 && length <= r.view!.byteLength - r.offset) {
      // Streaming: the header was read before this receive was made; the payload still goes straight into its buffer.
      r.filling = this.#decoder.attachTarget(r.view!.subarray(r.offset, r.offset + length));
    }
  }

  #onHeader(length: number): Uint8Array | null | false {
    const r = this.#receivers.peek();
    if (r === undefined) return null;
    if (length > r.maxlength) {
      this.#receivers.shift();
      this.#rejectTooLong(r, length);
      return false;
    }
    if (r.kind === Kind.Into && length > 0 && length <= r.view!.byteLength - r.offset) {
      r.filling = true;
      return r.view!.subarray(r.offset, r.offset + length);
    }
    return null;
  }

  #onFrame(payload: Buffer, direct: boolean): void {
    const r = this.#receivers.shift();
    if (direct && r?.filling !== true) {
      // Written into a buffer whose receive is gone (it detaches first, so this
      // should not happen): never hand one caller's memory to anyone else.
      payload = Buffer.from(payload);
      direct = false;
    }
    if (r !== undefined) {
      this.#deliver(r, payload, direct);
      if (this.#receivers.length > 0) this.#checkFront();
      return;
    }
    this.#inbox.push(payload);
    this.#inboxCost += payload.length + MESSAGE_OVERHEAD;
    if (!this.#paused && this.#inboxCost > INBOX_HIGH_WATER) {
      this.#paused = true;
      this.#stream.pause();
    }
    if (this.#inbox.length === 1) this.#ready.notify();
  }

  #deliver(r: Receiver, payload: Buffer, direct: boolean): void {
    r.disarm?.();
    if (direct) {
      r.resolve(payload.length); // already in the caller's buffer
      return;
    }
    let value: unknown;
    try {
      value = this.#take(r.kind, r.maxlength, r.view, r.offset, payload);
    } catch (err) {
      r.reject(err);
      if (this.#unreadable) this.#failQueued();
      return;
    }
    r.resolve(value);
  }

  /** What a receive of `kind` makes of `payload`: the value it resolves with, or the error it rejects with (thrown). */
  #take(kind: Kind, maxlength: number, view: Uint8Array | null, offset: number, payload: Buffer): unknown {
    if (payload.length > maxlength) throw this.#tooLong(maxlength, payload.length);
    switch (kind) {
      case Kind.Bytes:
        return payload;
      case Kind.Value:
        try {
          return this.#serializer.decode(payload);
        } catch (err) {
          throw challengeHint(payload) ?? err;
        }
      case Kind.Into: {
        const room = Math.max(0, view!.byteLength - offset);
        if (payload.length > room) throw new BufferTooShort(payload, room);
        view!.set(payload, offset);
        return payload.length;
      }
    }
  }

  /** Python: a message over `maxlength` makes the connection unreadable. */
  /**
   * Python: a message over `maxlength` makes the connection unreadable.
   * Returns the error for the receive that asked with `maxlength`; the caller
   * rejects it, then the receives still queued (`#failQueued`).
   */
  #tooLong(maxlength: number, length: number): ProtocolError {
    this.#setUnreadable();
    return new ProtocolError(
      'ERR_MESSAGE_TOO_LONG',
      `incoming message of ${length} bytes is longer than maxlength ${maxlength}; ` +
        'the connection can no longer be read (it can still send)',
    );
  }

  /** The receive first in line asked for at most `r.maxlength` bytes and the frame under way is longer. */
  #rejectTooLong(r: Receiver, length: number): void {
    r.disarm?.();
    r.reject(this.#tooLong(r.maxlength, length));
    this.#failQueued();
  }

  /** Once unreadable, receives still queued can get nothing. */
  #failQueued(): void {
    const err = notReadableError();
    for (const other of this.#receivers.drain()) this.#settleError(other, err);
  }

  #setUnreadable(): void {
    this.#unreadable = true;
    this.#decoder.halt();
    this.#inbox.drain();
    this.#inboxCost = 0;
    if (!this.#paused) {
      this.#paused = true;
      this.#stream.pause();
    }
    this.#ready.notify();
  }

  /** The buffer a `recvBytesInto` was filling went away (detached, shrunk): that receive fails, the frame is skipped. */
  #onTargetLost(length: number): void {
    const r = this.#receivers.peek();
    if (r === undefined || !r.filling) return;
    this.#receivers.shift();
    r.filling = false;
    r.disarm?.();
    r.reject(
      new TypeError(
        `recvBytesInto: the buffer was detached or resized while a ${length}-byte message was being written into it; ` +
          'that message is lost (the connection goes on with the next one)',
      ),
    );
  }

  /** Bad framing (or a frame over maxMessageSize): reported once, after the messages before it. */
  #onFramingError(err: ProtocolError): void {
    if (debugging()) debug('connection: framing error %s: %s', err.code, err.message);
    publish(channels.connectionError, () => ({ connection: this, error: err }));
    this.#readEndOnce = true;
    this.#endReading(err);
  }

  #onEndOfStream(cause: Error | undefined): void {
    if (this.#readEnd !== null || this.#unreadable) return;
    const truncated = this.#decoder.finish();
    if (truncated !== null) {
      if (cause !== undefined) truncated.cause = cause;
      this.#endReading(truncated);
    } else {
      // Made when a receive asks for it: most connections end without anyone waiting.
      this.#endReading(() => new EOFError(undefined, cause === undefined ? undefined : { cause }));
    }
  }

  #endReading(err: MpconnError | (() => MpconnError)): void {
    this.#readEnd = err;
    // Receivers wait only while the inbox is empty, so the end is theirs now.
    for (const r of this.#receivers.drain()) this.#settleError(r, this.#endError());
    this.#ready.notify();
  }

  #endError(): MpconnError {
    const end = this.#readEnd!;
    const err = typeof end === 'function' ? end() : end;
    if (this.#readEndOnce) {
      if (this.#unreadable) return notReadableError();
      this.#setUnreadable();
    }
    return err;
  }

  #settleError(r: Receiver, err: unknown): void {
    r.disarm?.();
    if (r.filling) this.#decoder.detachTarget();
    r.reject(err);
  }
}

function closedError(): ConnectionStateError {
  return new ConnectionStateError('ERR_CLOSED', 'the connection is closed');
}

function destroyedError(): ConnectionStateError {
  return new ConnectionStateError('ERR_CLOSED', 'the connection was destroyed (conn.destroy()) before this call could finish');
}

function closeTimedOut(ms: number): ConnectionStateError {
  return new ConnectionStateError(
    'ERR_CLOSED',
    `close() stopped flushing after ${ms} ms (the peer was not reading) and dropped the frames still queued; this one was not sent`,
  );
}

function notReadableError(): ConnectionStateError {
  return new ConnectionStateError(
    'ERR_NOT_READABLE',
    'the connection can no longer be read: an earlier message broke the limits or the framing',
  );
}

/** A peer that wants an authkey we were not given sends a challenge first: say so. */
function challengeHint(payload: Buffer): AuthenticationError | null {
  if (!payload.subarray(0, CHALLENGE_PREFIX.length).equals(CHALLENGE_PREFIX)) return null;
  return new AuthenticationError(
    'the peer sent an authentication challenge: it requires an authkey (pass { authkey } to Client or Listener.listen)',
    { reason: 'key-required' },
  );
}

function peerGone(): Error {
  return Object.assign(new Error('write EPIPE: the connection to the peer is closed'), {
    code: 'EPIPE',
    syscall: 'write',
  });
}
