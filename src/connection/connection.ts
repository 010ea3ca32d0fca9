import type { Duplex } from 'node:stream';
import { ConnectionStateError, EOFError, MpconnError } from '../core/errors.js';
import { untilEnd } from '../core/queue.js';
import { readiness, type Readiness } from '../core/readiness.js';
import { type SerializerOption } from '../serializers/index.js';
import type { ResolvedSerializer } from '../serializers/resolve.js';
import {
  byteCount,
  bytesOf,
  cancelOptions,
  type CancelOptions,
  checkOptionNames,
  batchesOptions,
  ConnectionSettings,
  describe,
  type ManyOptions,
  manyOptions,
  options as optionsOf,
  sliceForSend,
  timeoutOr,
  validator,
} from '../core/validate.js';
import { channels, debug, debugging, publish } from './diagnostics.js';
import { FrameWriter } from './frame-writer.js';
import { notReadableError, ReadState, ReceiveKind, Receiver } from './receiver.js';
import type { SocketReads } from './socket-reads.js';

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

/**
 * Options of {@link Connection.recvBytesMany}: those of every receive, and
 * the limits of one batch.
 *
 * @example
 * ```ts
 * const batch = await conn.recvBytesMany({ max: 100, maxlength: 64 * 1024, timeout: 5_000 });
 * ```
 */
export interface RecvManyOptions extends RecvOptions {
  /** Most messages one call takes (a positive integer). Default: every message already received. */
  max?: number;
  /**
   * Longest message in bytes, as `recvBytes(maxlength)`: the batch stops
   * before a longer one, and a call that meets it first rejects with
   * `ProtocolError` `ERR_MESSAGE_TOO_LONG` and leaves the connection
   * unreadable. Default `Infinity` (the connection's `maxMessageSize`).
   */
  maxlength?: number;
}

/**
 * Options of {@link Connection.recvMany}: those of {@link RecvManyOptions},
 * and `parse`, a validator for each decoded value.
 *
 * @example
 * ```ts
 * const jobs = await conn.recvMany({ parse: isJob, max: 64 }); // jobs: Job[]
 * ```
 */
export interface RecvValueManyOptions<T = unknown> extends RecvManyOptions {
  /**
   * Called with each decoded value; what it returns goes into the batch. If
   * it throws, the batch ends before that message, which is the next
   * receive's first (a call that meets it first rejects with the error, and
   * the message is consumed, as `recv({ parse })` does). It runs while the
   * batch is being taken: it must not receive on, or close, the same connection.
   */
  parse?: (value: unknown) => T;
}

/**
 * Options of {@link Connection.batches} for batches of decoded values.
 *
 * @example
 * ```ts
 * for await (const jobs of conn.batches({ max: 256, parse: isJob, signal })) handle(jobs); // jobs: Job[]
 * ```
 */
export interface BatchesOptions<T = unknown> {
  /** Most messages per batch. Default: every message already received. */
  max?: number;
  /** As in {@link RecvManyOptions.maxlength}. */
  maxlength?: number;
  /** Ends the iteration: the waiting receive rejects with the signal's reason, which the loop throws; no message is lost. */
  signal?: AbortSignal;
  /** As in {@link RecvValueManyOptions.parse}. */
  parse?: (value: unknown) => T;
  /** `true` for batches of bytes: see {@link ByteBatchesOptions}. */
  bytes?: false;
}

/**
 * Options of {@link Connection.batches} for batches of the messages' bytes (`Buffer[]`).
 *
 * @example
 * ```ts
 * for await (const buffers of conn.batches({ bytes: true, max: 1024 })) total += buffers.length;
 * ```
 */
export interface ByteBatchesOptions {
  bytes: true;
  /** Most messages per batch. Default: every message already received. */
  max?: number;
  /** As in {@link RecvManyOptions.maxlength}. */
  maxlength?: number;
  /** As in {@link BatchesOptions.signal}. */
  signal?: AbortSignal;
}

const CONNECTION_OPTION_NAMES = ['serializer', 'maxMessageSize', 'maxDepth'] as const;
const RECV_OPTION_NAMES = ['signal', 'timeout'] as const;
const RECV_VALUE_OPTION_NAMES = ['signal', 'timeout', 'parse'] as const;
const RECV_MANY_OPTION_NAMES = ['signal', 'timeout', 'max', 'maxlength'] as const;
const RECV_VALUE_MANY_OPTION_NAMES = ['signal', 'timeout', 'max', 'maxlength', 'parse'] as const;
const BATCHES_OPTION_NAMES = ['max', 'maxlength', 'bytes', 'parse', 'signal'] as const;
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
  /** Where the chunks come from when not from `'data'` events: the `onread` reads of a socket a Client made. */
  reads?: SocketReads;
}

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
  /** Made on first use (`#codec`): a connection that only authenticates or moves bytes never makes one. */
  #serializer: ResolvedSerializer | null = null;
  readonly #settings: ConnectionSettings;
  readonly #receiver: Receiver;
  readonly #writer: FrameWriter;
  readonly #canRead: boolean;
  readonly #canWrite: boolean;
  #closing: Promise<void> | null = null;

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
  /**
   * @internal The connections `Listener`, `Client`, `Pipe` and `spawn` make,
   * with the options they checked (`mode`: one-way `Pipe` ends).
   */
  constructor(stream: Duplex, settings: ConnectionSettings, mode?: ConnectionMode);
  /** @internal The child's end of a `spawn()` connection. */
  constructor(stream: Duplex, options: ConnectionOptions | undefined, mode: ConnectionMode);
  constructor(
    stream: Duplex,
    options?: ConnectionOptions | ConnectionSettings,
    mode: ConnectionMode = { readable: true, writable: true },
  ) {
    let settings: ConnectionSettings;
    if (options instanceof ConnectionSettings) {
      settings = options;
    } else {
      const opts = optionsOf(options, 'options');
      checkOptionNames(opts, CONNECTION_OPTION_NAMES, 'connection options');
      if (stream === null || typeof stream !== 'object' || typeof (stream as Duplex).write !== 'function') {
        throw new TypeError('Connection needs a Duplex stream');
      }
      settings = new ConnectionSettings(opts);
    }
    const maxMessageSize = settings.maxMessageSize;
    this.#settings = settings;
    this.#stream = stream;
    this.#canRead = mode.readable;
    this.#canWrite = mode.writable;
    const keepAliveWhileWaiting = mode.keepAlive === 'while-waiting';
    this.#writer = new FrameWriter(stream);
    this.#receiver = new Receiver(stream, {
      serializer: () => this.#codec(),
      maxMessageSize,
      owner: this,
      onWaitingChange: keepAliveWhileWaiting ? () => this.#holdProcess() : null,
    });
    if (mode.reads === undefined) {
      stream.on('data', (chunk: Buffer | string) => {
        if (this.#closing !== null) return;
        this.#writer.expectReply();
        this.#receiver.push(typeof chunk === 'string' ? Buffer.from(chunk) : chunk);
      });
    }
    stream.on('end', () => this.#receiver.end(undefined));
    stream.on('error', (err: Error) => {
      this.#writer.fail(err);
      this.#receiver.end(err);
    });
    stream.on('close', () => {
      this.#writer.fail(peerGone);
      this.#receiver.end(undefined);
    });
    // Last: what arrived before the Connection (after the handshake) is read now, with everything wired.
    mode.reads?.attach((chunk) => {
      if (this.#closing !== null) return;
      this.#writer.expectReply();
      this.#receiver.push(chunk);
    });
    if (keepAliveWhileWaiting) this.#holdProcess();
  }

  /** True once `close()` was called on this side. */
  get closed(): boolean {
    return this.#closing !== null;
  }

  /** False for the write-only end of a one-way `Pipe`, and after a message was too long. */
  get readable(): boolean {
    return this.#canRead && this.#receiver.state !== ReadState.Unreadable;
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
      const serializer = this.#codec();
      const encoded: unknown = serializer.encode(obj);
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
      return this.#writer.write(bytes, serializer.sharedOutput);
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
    const given = options?.parse;
    if (given === undefined) return this.#receive(ReceiveKind.Value, Infinity, null, 0, options) as Promise<T>;
    let parse: (value: unknown) => T;
    try {
      parse = validator<T>(given)!;
    } catch (err) {
      return Promise.reject(err);
    }
    // After the message is taken: a value the validator refuses costs that receive only.
    return this.#receive(ReceiveKind.Value, Infinity, null, 0, options).then((value) => parse(value));
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
    return this.#receive(ReceiveKind.Bytes, max ?? Infinity, null, 0, options) as Promise<Buffer>;
  }

  /**
   * Receives a batch of messages as bytes: waits as {@link recvBytes} does
   * for the first, then resolves with every message already received, up to
   * `max`, so a busy reader pays one promise per batch instead of one per
   * message. Concurrent receives of any kind are served in call order; an
   * aborted or timed-out batch takes no message with it.
   *
   * Messages received before the end of the stream (or an error) come first;
   * the next call rejects with the end (`EOFError`, `ERR_TRUNCATED`). A batch
   * stops before a message longer than `maxlength`; a call that meets it
   * first rejects with `ERR_MESSAGE_TOO_LONG` and the connection can no
   * longer be read, as with `recvBytes(maxlength)`.
   *
   * @example
   * ```ts
   * for (;;) {
   *   const batch = await conn.recvBytesMany({ max: 1024 });
   *   for (const bytes of batch) handle(bytes);
   * }
   * ```
   */
  recvBytesMany(options?: RecvManyOptions): Promise<Buffer[]> {
    return this.#receiveMany(ReceiveKind.Bytes, options) as Promise<Buffer[]>;
  }

  /**
   * Receives a batch of values, decoded by the connection's serializer: as
   * {@link recvBytesMany}, with `parse` to validate each value. A message
   * the serializer (or `parse`) refuses ends the batch before it; the next
   * call rejects with its error, the message consumed and the connection
   * still usable, as `recv()` does.
   *
   * @example
   * ```ts
   * const values = await conn.recvMany<{ id: number }>({ timeout: 5000 });
   * ```
   */
  recvMany<T = unknown>(options?: RecvValueManyOptions<T>): Promise<T[]> {
    return this.#receiveMany(ReceiveKind.Value, options) as Promise<T[]>;
  }

  /**
   * Batches of received messages until the peer closes (or this side does),
   * as `for await (const msg of conn)` gives them one by one: each batch is
   * a {@link recvMany} (or, with `bytes: true`, a {@link recvBytesMany}).
   * The options are checked here, at the call.
   *
   * @example
   * ```ts
   * for await (const batch of conn.batches({ max: 256 })) {
   *   for (const msg of batch) handle(msg);
   * }
   * for await (const buffers of conn.batches({ bytes: true })) total += buffers.length;
   * ```
   */
  batches(options: ByteBatchesOptions): AsyncGenerator<Buffer[], void>;
  batches<T = unknown>(options?: BatchesOptions<T>): AsyncGenerator<T[], void>;
  batches(options?: BatchesOptions | ByteBatchesOptions): AsyncGenerator<unknown[], void> {
    const opts = optionsOf<{ bytes?: unknown; parse?: unknown; max?: unknown; maxlength?: unknown; signal?: unknown }>(options, 'options');
    checkOptionNames(opts, BATCHES_OPTION_NAMES, 'batches() options');
    const batch = batchesOptions(opts);
    const kind = batch.bytes ? ReceiveKind.Bytes : ReceiveKind.Value;
    return untilEnd(() => this.#takeBatch(kind, batch, batch.parse, batch.signal, undefined), isIterationEnd);
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
    return this.#receive(ReceiveKind.Into, Infinity, view, start, options) as Promise<number>;
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
    const ms = timeoutOr(timeout, 0);
    if (this.#receiver.ready()) return true;
    if (ms === 0) return false;
    return new Promise<boolean>((resolve, reject) => {
      const finish = (): void => {
        unsubscribe();
        clearTimeout(timer);
      };
      const unsubscribe = this.#receiver.readiness().subscribe(() => {
        if (!this.#receiver.ready()) return;
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
      timeout = timeoutOr(opts.timeout, DEFAULT_CLOSE_TIMEOUT);
    } catch (err) {
      return Promise.reject(err);
    }
    publish(channels.connectionClose, () => ({ connection: this, reason: 'close' }));
    if (this.#writer.endsAtOnce()) {
      // Nothing left to flush on a plain socket: closing it sends what the OS holds, then the FIN.
      if (debugging()) debug('connection: close (nothing to flush)');
      this.#closing = Promise.resolve();
      this.#receiver.close(closedError);
      this.#stream.destroy();
      return this.#closing;
    }
    const flushed = this.#writer.end();
    if (debugging()) debug('connection: close (flushing for at most %s ms)', timeout);
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
    this.#receiver.close(closedError);
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
    // The default error is made only if a send or receive is waiting for it.
    let made: ConnectionStateError | undefined;
    const errorOf = reason === undefined || reason === null ? () => (made ??= destroyedError()) : () => reason;
    this.#writer.fail(reason instanceof Error ? reason : (errorOf as () => Error));
    if (this.#closing === null) {
      if (debugging()) debug('connection: destroyed%s', reason === undefined ? '' : `: ${String((reason as Error)?.message ?? reason)}`);
      publish(channels.connectionClose, () => ({ connection: this, reason: 'destroy', error: reason }));
      this.#closing = Promise.resolve();
      this.#writer.end();
      this.#receiver.close(errorOf);
    }
    this.#stream.destroy();
  }

  /** Receives messages until the peer closes (or this side does). */
  [Symbol.asyncIterator](): AsyncIterator<unknown> {
    return untilEnd(() => this.recv(), isIterationEnd);
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
    this.#receiver.limitNext(count, max);
  }

  /** @internal See {@link bufferedMessages}. */
  [bufferedMessages](): number {
    return this.#receiver.buffered;
  }

  /** @internal For `wait()`: ready when a message or the end of the stream is waiting. */
  [readiness](): Readiness {
    return this.#receiver.readiness();
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

  #codec(): ResolvedSerializer {
    return (this.#serializer ??= this.#settings.newSerializer());
  }

  /** With keepAlive 'while-waiting': ref the transport only while someone waits on it. */
  #holdProcess(): void {
    const s = this.#stream as Duplex & { ref?: () => void; unref?: () => void };
    if (this.#receiver.waiting) s.ref?.();
    else s.unref?.();
  }

  #readState(): ConnectionStateError | null {
    if (this.#closing !== null) return closedError();
    if (!this.#canRead) return new ConnectionStateError('ERR_WRITE_ONLY', 'this end of the pipe is write-only');
    if (this.#receiver.state === ReadState.Unreadable) return notReadableError();
    return null;
  }

  #writeState(): Error | null {
    if (this.#closing !== null) return closedError();
    if (!this.#canWrite) return new ConnectionStateError('ERR_READ_ONLY', 'this end of the pipe is read-only');
    return null;
  }

  #receive(
    kind: ReceiveKind,
    maxlength: number,
    view: Uint8Array | null,
    offset: number,
    options: RecvOptions | undefined,
  ): Promise<unknown> {
    const state = this.#readState();
    if (state !== null) return Promise.reject(state);
    if (options === undefined) return this.#receiver.receive(kind, maxlength, view, offset, undefined, undefined);
    let cancel: CancelOptions;
    try {
      const opts = optionsOf(options, 'options');
      checkOptionNames(opts, kind === ReceiveKind.Value ? RECV_VALUE_OPTION_NAMES : RECV_OPTION_NAMES, 'receive options');
      cancel = cancelOptions(opts);
    } catch (err) {
      return Promise.reject(err);
    }
    if (cancel.signal?.aborted) return Promise.reject(cancel.signal.reason);
    return this.#receiver.receive(kind, maxlength, view, offset, cancel.signal, cancel.timeout);
  }

  #receiveMany(kind: ReceiveKind.Bytes | ReceiveKind.Value, options: RecvValueManyOptions | undefined): Promise<unknown[]> {
    if (options === undefined) return this.#takeBatch(kind, ALL, null, undefined, undefined);
    let limits: ManyOptions;
    let parse: ((value: unknown) => unknown) | null;
    let cancel: CancelOptions;
    try {
      const opts = optionsOf(options, 'options');
      const values = kind === ReceiveKind.Value;
      checkOptionNames(
        opts,
        values ? RECV_VALUE_MANY_OPTION_NAMES : RECV_MANY_OPTION_NAMES,
        values ? 'recvMany() options' : 'recvBytesMany() options',
      );
      limits = manyOptions(opts);
      parse = validator(opts.parse);
      cancel = cancelOptions(opts);
    } catch (err) {
      return Promise.reject(err);
    }
    return this.#takeBatch(kind, limits, parse, cancel.signal, cancel.timeout);
  }

  /** One batch, the options already checked. */
  #takeBatch(
    kind: ReceiveKind.Bytes | ReceiveKind.Value,
    limits: ManyOptions,
    parse: ((value: unknown) => unknown) | null,
    signal: AbortSignal | undefined,
    timeout: number | undefined,
  ): Promise<unknown[]> {
    const state = this.#readState();
    if (state !== null) return Promise.reject(state);
    if (signal?.aborted) return Promise.reject(signal.reason);
    return this.#receiver.receiveMany(kind, limits.max, limits.maxlength, parse, signal, timeout);
  }
}

/** A batch without limits. */
const ALL: ManyOptions = { max: Infinity, maxlength: Infinity };

/** What ends `for await` over a connection: the end of the stream, or this side closed. */
function isIterationEnd(err: unknown): boolean {
  return err instanceof EOFError || (err instanceof ConnectionStateError && err.code === 'ERR_CLOSED');
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

function peerGone(): Error {
  return Object.assign(new Error('write EPIPE: the connection to the peer is closed'), {
    code: 'EPIPE',
    syscall: 'write',
  });
}
