import type { Duplex } from 'node:stream';
import { AuthenticationError, BufferTooShort, ConnectionStateError, EOFError, MpconnError, ProtocolError } from '../core/errors.js';
import { WaitQueue, Queue, type Waiter } from '../core/queue.js';
import { Notifier, type Readiness } from '../core/readiness.js';
import type { ResolvedSerializer } from '../serializers/resolve.js';
import { channels, debug, debugging, publish } from './diagnostics.js';
import { FrameDecoder } from './frame-decoder.js';
import { spendTurn } from './turn.js';

/** What a receive resolves with: the bytes, the byte count written into the caller's buffer, or the decoded value. */
export const enum ReceiveKind {
  Bytes,
  Into,
  Value,
}

/** Where the read side of a connection stands. */
export const enum ReadState {
  /** Messages may arrive. */
  Open,
  /** The stream ended (or broke the framing): messages already received are delivered, then the end. */
  Ending,
  /** A message broke the limits, or bad framing was reported: nothing more can be read. */
  Unreadable,
  /** This side closed: receives reject, and what still arrives is dropped. */
  Closed,
}

interface PendingReceive extends Waiter<unknown> {
  kind: ReceiveKind;
  /** 0: one message; above 0, a batch (`receiveMany`) of at most this many. */
  max: number;
  maxlength: number;
  /** A batch of values: the caller's validator, applied to each decoded value. */
  parse: ((value: unknown) => unknown) | null;
  /** Into: the caller's buffer as bytes, and where to start writing. */
  view: Uint8Array | null;
  offset: number;
  /** Into: the payload is being written straight into `view`. */
  filling: boolean;
}

export interface ReceiverOptions {
  /** The connection's serializer, asked for when a message is first decoded. */
  serializer: () => ResolvedSerializer;
  maxMessageSize: number;
  /** The connection, as diagnostics events name it. */
  owner: object;
  /** Runs whenever the number of receives or readiness subscribers waiting may have changed (keep-alive policy). */
  onWaitingChange: (() => void) | null;
}

/**
 * Received messages no one has asked for yet are held up to this many bytes
 * (each message also counts a fixed overhead); above it the transport is
 * paused, so a slow reader makes a fast writer wait instead of growing memory.
 */
const INBOX_HIGH_WATER = 1 << 20;
const INBOX_LOW_WATER = 256 * 1024;
const MESSAGE_OVERHEAD = 64;

const CHALLENGE_PREFIX = Buffer.from('#CHALLENGE#');

/**
 * The receive side of a connection, as `ws` has its receiver: it owns the
 * frame decoder, the receives waiting in call order, the inbox of messages
 * no one has asked for yet (and the transport's flow control), and the read
 * state. It is fed the stream's chunks and end; `Connection` checks the
 * arguments and its own state before asking it for a message.
 */
export class Receiver {
  readonly #stream: Duplex;
  readonly #serializerOf: () => ResolvedSerializer;
  #serializer: ResolvedSerializer | null = null;
  readonly #decoder: FrameDecoder;
  readonly #owner: object;
  readonly #onWaitingChange: (() => void) | null;
  readonly #pending: WaitQueue<PendingReceive>;
  readonly #inbox = new Queue<Buffer>();
  #inboxCost = 0;
  #paused = false;
  #state = ReadState.Open;
  /** Ending: why the stream can give no more messages once the inbox is empty (EOF, truncation, bad framing). */
  #end: MpconnError | (() => MpconnError) | null = null;
  /** Ending: the end is reported once, then the side is Unreadable (bad framing, too long). */
  #endOnce = false;
  readonly #ready: Notifier;
  /**
   * The message a batch of values stopped before (first in the inbox), as the
   * serializer decoded it or the error it threw: a custom serializer's
   * `decode` runs once per message, whoever takes it.
   */
  #decoded: { payload: Buffer; failed: boolean; outcome: unknown } | null = null;
  /** What the last `#takeMany` took, in bytes (for the turn budget). */
  #takenBytes = 0;
  /**
   * While a chunk is read and a batch of bytes is first in line, its messages
   * go straight into this array (not through the inbox); the batch resolves
   * with it when the chunk is read, or as soon as it is full or meets a
   * message over its `maxlength`.
   */
  #collected: Buffer[] | null = null;
  #collectMax = 0;
  #collectMaxlength = 0;

  constructor(stream: Duplex, options: ReceiverOptions) {
    this.#stream = stream;
    this.#serializerOf = options.serializer;
    this.#owner = options.owner;
    this.#onWaitingChange = options.onWaitingChange;
    this.#ready = new Notifier(options.onWaitingChange ?? undefined);
    this.#pending = new WaitQueue<PendingReceive>('recv', (r) => this.#onCancel(r));
    this.#decoder = new FrameDecoder(
      {
        header: (length) => this.#onHeader(length),
        frame: (payload, direct) => this.#onFrame(payload, direct),
        error: (err) => this.#onFramingError(err),
        targetLost: (length) => this.#onTargetLost(length),
      },
      options.maxMessageSize,
    );
  }

  get state(): ReadState {
    return this.#state;
  }

  /** How many received messages are waiting to be taken. */
  get buffered(): number {
    return this.#inbox.length;
  }

  /** Whether anyone waits on this side: a receive, or a readiness subscriber (`poll`, `wait`). */
  get waiting(): boolean {
    return this.#pending.length > 0 || this.#ready.size > 0;
  }

  /** Whether a receive would settle at once: a message is waiting, or the side is no longer open. */
  ready(): boolean {
    return this.#inbox.length > 0 || this.#state !== ReadState.Open;
  }

  readiness(): Readiness {
    return this.#ready.readiness(() => this.ready());
  }

  /** See `FrameDecoder.limitNext`. */
  limitNext(count: number, max: number): void {
    this.#decoder.limitNext(count, max);
  }

  /** A chunk from the stream. */
  push(chunk: Buffer): void {
    if (this.#state === ReadState.Closed) return;
    this.#decoder.push(chunk);
    // A batch receive first in line gathers the messages of the whole chunk: it takes them now.
    if (this.#collected !== null) this.#resolveCollected();
    if (this.#inbox.length > 0 && this.#pending.length > 0) this.#servePending();
  }

  /** The batch first in line resolves with the messages collected for it. */
  #resolveCollected(): void {
    const batch = this.#collected!;
    this.#collected = null;
    this.#pending.shift()!.resolve(batch);
    if (this.#pending.length > 0) this.#checkFront();
  }

  /** The stream ended (`cause`: the error that ended it). */
  end(cause: Error | undefined): void {
    if (this.#state !== ReadState.Open) return;
    const truncated = this.#decoder.finish();
    if (truncated !== null) {
      if (cause !== undefined) truncated.cause = cause;
      this.#beginEnding(truncated, false);
    } else {
      // Made when a receive asks for it: most connections end without anyone waiting.
      this.#beginEnding(() => new EOFError(undefined, cause === undefined ? undefined : { cause }), false);
    }
  }

  /**
   * This side is closing: pending receives reject with the error `errorOf`
   * makes (called once, and only if a receive is waiting), buffered
   * messages are dropped, and what still arrives is read and dropped. An
   * Unreadable side stays Unreadable: that is what `readable` reports.
   */
  close(errorOf: () => unknown): void {
    // Made only when a receive is waiting: most connections close with none.
    let err: unknown;
    this.#collected = null;
    for (const r of this.#pending.drain()) this.#settleError(r, (err ??= errorOf()));
    this.#inbox.drain();
    this.#inboxCost = 0;
    if (this.#state !== ReadState.Unreadable) this.#state = ReadState.Closed;
    this.#decoder.halt();
    // Keep reading (and dropping) while our frames flush: a peer that is
    // flushing to us in turn must not wait on a paused transport, or two ends
    // closing with unread data queued both ways would wait on each other forever.
    if (this.#paused) {
      this.#paused = false;
      this.#stream.resume();
    }
    this.#ready.notify();
  }

  /**
   * One receive of `kind`, served in call order. The caller has checked that
   * the side is readable (Open or Ending) and its arguments; `signal` and
   * `timeout` take it out of line, losing no message.
   */
  receive(
    kind: ReceiveKind,
    maxlength: number,
    view: Uint8Array | null,
    offset: number,
    signal: AbortSignal | undefined,
    timeout: number | undefined,
  ): Promise<unknown> {
    if (this.#inbox.length > 0) {
      // Messages wait in the inbox while receives are pending only inside a chunk: then this one queues behind them.
      if (this.#pending.length === 0) {
        // A message is waiting: no queue entry, no executor (the hot path of a busy reader).
        const message = this.#inbox.shift()!;
        this.#takeFromInbox(message);
        const later = spendTurn(message.length);
        if (later !== undefined) return later.then(() => this.#take(kind, maxlength, view, offset, message));
        try {
          return Promise.resolve(this.#take(kind, maxlength, view, offset, message));
        } catch (err) {
          return Promise.reject(err);
        }
      }
    } else if (this.#state === ReadState.Ending) {
      return Promise.reject(this.#takeEnd());
    }
    return new Promise((resolve, reject) =>
      this.#wait({ kind, max: 0, maxlength, parse: null, view, offset, filling: false, resolve, reject, disarm: null }, signal, timeout),
    );
  }

  /**
   * A batch: waits as `receive` does for the first message, then takes every
   * message already received, up to `max`, in call order with the other
   * receives. A batch stops before a message it cannot take (longer than
   * `maxlength`, or one the serializer or `parse` refuses), which is then the
   * next receive's first; only when that message is the first does the batch
   * reject, as `receive` would. Bytes or decoded values (`kind`).
   */
  receiveMany(
    kind: ReceiveKind.Bytes | ReceiveKind.Value,
    max: number,
    maxlength: number,
    parse: ((value: unknown) => unknown) | null,
    signal: AbortSignal | undefined,
    timeout: number | undefined,
  ): Promise<unknown[]> {
    if (this.#inbox.length > 0) {
      if (this.#pending.length === 0) {
        let batch: unknown[];
        try {
          batch = this.#takeMany(kind, max, maxlength, parse);
        } catch (err) {
          return Promise.reject(err);
        }
        // One turn for the batch: a loop of batches that resolve at once still yields to the event loop.
        const later = spendTurn(this.#takenBytes);
        return later === undefined ? Promise.resolve(batch) : later.then(() => batch);
      }
    } else if (this.#state === ReadState.Ending) {
      return Promise.reject(this.#takeEnd());
    }
    return new Promise((resolve, reject) =>
      this.#wait(
        { kind, max, maxlength, parse, view: null, offset: 0, filling: false, resolve: resolve as (value: unknown) => void, reject, disarm: null },
        signal,
        timeout,
      ),
    );
  }

  /** Puts `r` last in line. */
  #wait(r: PendingReceive, signal: AbortSignal | undefined, timeout: number | undefined): void {
    const onWaitingChange = this.#onWaitingChange;
    if (onWaitingChange !== null) {
      // Settling always follows removal from the queue, so this sees the new count.
      const { resolve, reject } = r;
      r.resolve = (value) => {
        resolve(value);
        onWaitingChange();
      };
      r.reject = (reason) => {
        reject(reason);
        onWaitingChange();
      };
    }
    this.#pending.add(r, signal, timeout);
    onWaitingChange?.();
    if (this.#pending.length === 1) this.#checkFront();
  }

  /**
   * Takes up to `max` messages from the inbox (which holds at least one) as
   * bytes or values. Stops before a message it cannot take, leaving it first
   * in the inbox; throws that message's error (consumed, as a single receive
   * would) only when it is the first.
   */
  #takeMany(kind: ReceiveKind, max: number, maxlength: number, parse: ((value: unknown) => unknown) | null): unknown[] {
    const batch: unknown[] = [];
    let bytes = 0;
    while (batch.length < max) {
      const payload = this.#inbox.shift();
      if (payload === undefined) break;
      let value: unknown;
      if (payload.length > maxlength) {
        if (batch.length > 0) {
          this.#inbox.unshift(payload);
          break;
        }
        this.#takeFromInbox(payload);
        throw this.#tooLong(maxlength, payload.length);
      }
      if (kind === ReceiveKind.Bytes) {
        value = payload;
      } else {
        let decoded = false;
        try {
          value = this.#take(kind, maxlength, null, 0, payload);
          decoded = true;
          if (parse !== null) value = parse(value);
        } catch (err) {
          if (batch.length > 0) {
            // The next receive's first: it gets this decoding (or its error) rather than decoding again; its own parse runs.
            this.#decoded = { payload, failed: !decoded, outcome: decoded ? value : err };
            this.#inbox.unshift(payload);
            break;
          }
          this.#takeFromInbox(payload);
          throw err;
        }
      }
      this.#takeFromInbox(payload);
      batch.push(value);
      bytes += payload.length;
    }
    this.#takenBytes = bytes;
    return batch;
  }

  /**
   * Serves the receives in line from the inbox, oldest first, while there
   * are both: a batch first in line lets a chunk's messages gather in the
   * inbox, and whatever the batch leaves (over its `max`, or a message it
   * stopped before) goes to the receives behind it.
   */
  #servePending(): void {
    while (this.#inbox.length > 0) {
      const r = this.#pending.shift();
      if (r === undefined) break;
      if (r.max === 0) {
        const message = this.#inbox.shift()!;
        this.#takeFromInbox(message);
        this.#deliver(r, message, false);
        continue;
      }
      let batch: unknown[];
      try {
        batch = this.#takeMany(r.kind, r.max, r.maxlength, r.parse);
      } catch (err) {
        r.reject(err);
        if (this.#state === ReadState.Unreadable) this.#failPending();
        continue;
      }
      r.resolve(batch);
    }
    if (this.#pending.length > 0) this.#checkFront();
    // Not said when the first of them arrived (a receive was there to take it).
    else if (this.#inbox.length > 0) this.#ready.notify();
  }

  #takeFromInbox(message: Buffer): void {
    this.#inboxCost -= message.length + MESSAGE_OVERHEAD;
    if (this.#paused && this.#inboxCost <= INBOX_LOW_WATER) {
      this.#paused = false;
      this.#stream.resume();
    }
  }

  /** A receive gave up (abort or timeout) and left the line: it takes no message with it. */
  #onCancel(r: PendingReceive): void {
    if (r.filling) {
      this.#decoder.detachTarget();
      r.filling = false;
    }
    this.#checkFront();
  }

  /** The receive now first in line may be too small for the frame already under way, or have room to take it directly. */
  #checkFront(): void {
    const r = this.#pending.peek();
    const length = this.#decoder.currentFrameLength;
    if (r === undefined || length < 0) return;
    if (length > r.maxlength) {
      // A batch takes the messages before this one; the next receive meets it first.
      if (r.max > 0 && this.#inbox.length > 0) return;
      this.#pending.shift();
      this.#rejectTooLong(r, length);
    } else if (!r.filling && r.kind === ReceiveKind.Into && length > 0 && length <= r.view!.byteLength - r.offset) {
      // Streaming: the header was read before this receive was made; the payload still goes straight into its buffer.
      r.filling = this.#decoder.attachTarget(r.view!.subarray(r.offset, r.offset + length));
    }
  }

  #onHeader(length: number): Uint8Array | null | false {
    if (this.#collected !== null) {
      if (length <= this.#collectMaxlength) return null;
      // The batch stops before this message: the next receive meets it first.
      this.#resolveCollected();
    }
    const r = this.#pending.peek();
    if (r === undefined) return null;
    if (length > r.maxlength) {
      if (r.max > 0 && this.#inbox.length > 0) return null; // as in #checkFront
      this.#pending.shift();
      this.#rejectTooLong(r, length);
      return false;
    }
    if (r.kind === ReceiveKind.Into && length > 0 && length <= r.view!.byteLength - r.offset) {
      r.filling = true;
      return r.view!.subarray(r.offset, r.offset + length);
    }
    return null;
  }

  #onFrame(payload: Buffer, direct: boolean): void {
    const collected = this.#collected;
    if (collected !== null && !direct) {
      collected.push(payload);
      if (collected.length === this.#collectMax) this.#resolveCollected();
      return;
    }
    const r = this.#pending.peek();
    if (direct && r?.filling !== true) {
      // Written into a buffer whose receive is gone (it detaches first, so this
      // should not happen): never hand one caller's memory to anyone else.
      payload = Buffer.from(payload);
      direct = false;
    }
    if (r !== undefined && r.max === 0) {
      this.#pending.shift();
      this.#deliver(r, payload, direct);
      if (this.#pending.length > 0) this.#checkFront();
      return;
    }
    if (r !== undefined && r.kind === ReceiveKind.Bytes && this.#inbox.length === 0 && !direct) {
      // A batch of bytes: it takes what the chunk holds once the chunk is read (`push`), or once it is full.
      this.#collected = [payload];
      this.#collectMax = r.max;
      this.#collectMaxlength = r.maxlength;
      if (r.max === 1) this.#resolveCollected();
      return;
    }
    // No one waits, or a batch of values does: it takes what the chunk holds once the chunk is read (`push`).
    this.#inbox.push(payload);
    this.#inboxCost += payload.length + MESSAGE_OVERHEAD;
    if (!this.#paused && this.#inboxCost > INBOX_HIGH_WATER) {
      this.#paused = true;
      this.#stream.pause();
    }
    if (this.#inbox.length === 1 && r === undefined) this.#ready.notify();
  }

  #deliver(r: PendingReceive, payload: Buffer, direct: boolean): void {
    if (direct) {
      r.resolve(payload.length); // already in the caller's buffer
      return;
    }
    let value: unknown;
    try {
      value = this.#take(r.kind, r.maxlength, r.view, r.offset, payload);
    } catch (err) {
      r.reject(err);
      if (this.#state === ReadState.Unreadable) this.#failPending();
      return;
    }
    r.resolve(value);
  }

  /** What a receive of `kind` makes of `payload`: the value it resolves with, or the error it rejects with (thrown). */
  #take(kind: ReceiveKind, maxlength: number, view: Uint8Array | null, offset: number, payload: Buffer): unknown {
    if (payload.length > maxlength) throw this.#tooLong(maxlength, payload.length);
    switch (kind) {
      case ReceiveKind.Bytes:
        return payload;
      case ReceiveKind.Value: {
        const held = this.#decoded;
        if (held !== null) {
          this.#decoded = null;
          if (held.payload === payload) {
            if (held.failed) throw held.outcome;
            return held.outcome;
          }
        }
        try {
          return (this.#serializer ??= this.#serializerOf()).decode(payload);
        } catch (err) {
          throw challengeHint(payload) ?? err;
        }
      }
      case ReceiveKind.Into: {
        const room = Math.max(0, view!.byteLength - offset);
        if (payload.length > room) throw new BufferTooShort(payload, room);
        view!.set(payload, offset);
        return payload.length;
      }
    }
  }

  /**
   * Python: a message over `maxlength` makes the connection unreadable.
   * Returns the error for the receive that asked with `maxlength`; the caller
   * rejects it, then the receives still pending (`#failPending`).
   */
  #tooLong(maxlength: number, length: number): ProtocolError {
    this.#becomeUnreadable();
    return new ProtocolError(
      'ERR_MESSAGE_TOO_LONG',
      `incoming message of ${length} bytes is longer than maxlength ${maxlength}; ` +
        'the connection can no longer be read (it can still send)',
    );
  }

  /** The receive first in line asked for at most `r.maxlength` bytes and the frame under way is longer. */
  #rejectTooLong(r: PendingReceive, length: number): void {
    r.reject(this.#tooLong(r.maxlength, length));
    this.#failPending();
  }

  /** Once unreadable, receives still pending can get nothing. */
  #failPending(): void {
    this.#collected = null;
    const err = notReadableError();
    for (const other of this.#pending.drain()) this.#settleError(other, err);
  }

  #becomeUnreadable(): void {
    this.#state = ReadState.Unreadable;
    this.#end = null;
    this.#collected = null;
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
    const r = this.#pending.peek();
    if (r === undefined || !r.filling) return;
    this.#pending.shift();
    r.filling = false;
    r.reject(
      new TypeError(
        `recvBytesInto: the buffer was detached or resized while a ${length}-byte message was being written into it; ` +
          'that message is lost (the connection goes on with the next one)',
      ),
    );
  }

  /** Bad framing (or a frame over maxMessageSize): reported once, after the messages before it. */
  #onFramingError(err: ProtocolError): void {
    if (this.#collected !== null) this.#resolveCollected();
    if (debugging()) debug('connection: framing error %s: %s', err.code, err.message);
    publish(channels.connectionError, () => ({ connection: this.#owner, error: err }));
    this.#beginEnding(err, true);
  }

  #beginEnding(end: MpconnError | (() => MpconnError), once: boolean): void {
    this.#state = ReadState.Ending;
    this.#end = end;
    this.#endOnce = once;
    // A batch first in line takes the messages before the end.
    if (this.#inbox.length > 0 && this.#pending.length > 0) this.#servePending();
    // Receives wait only while the inbox is empty, so the end is theirs now.
    for (const r of this.#pending.drain()) this.#settleError(r, this.#takeEnd());
    this.#ready.notify();
  }

  /** The end, for a receive that finds the inbox empty; an end reported once leaves the side Unreadable. */
  #takeEnd(): MpconnError {
    if (this.#state === ReadState.Unreadable) return notReadableError();
    const end = this.#end!;
    const err = typeof end === 'function' ? end() : end;
    if (this.#endOnce) this.#becomeUnreadable();
    return err;
  }

  #settleError(r: PendingReceive, err: unknown): void {
    if (r.filling) this.#decoder.detachTarget();
    r.reject(err);
  }
}

export function notReadableError(): ConnectionStateError {
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
