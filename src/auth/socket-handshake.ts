import type net from 'node:net';
import { armCancel } from '../core/cancel.js';
import { ConnectionStateError, EOFError, type AuthenticationError, type ProtocolError } from '../core/errors.js';
import { Connection } from '../connection/index.js';
import type { ConnectionSettings } from '../core/validate.js';
import { DEFAULT_CLOSE_TIMEOUT } from '../connection/connection.js';
import { FrameDecoder } from '../connection/frame-decoder.js';
import type { SocketReads } from '../connection/socket-reads.js';
import { checkVerdict, FAILURE, MAX_HANDSHAKE_MESSAGE, newChallenge, replyTo, verify, WELCOME } from './challenge.js';
import { clientFailure, HANDSHAKE_MESSAGES, listenerFailure } from './handshake.js';

const enum Side {
  Listener,
  Client,
}

/** Each side reads a 4-byte header, and after a `-1` the 8 bytes of its long form. */
const HEADER = 4;
const LONG_HEADER = 8;

/**
 * The authentication handshake of a Listener or a Client, run on the bare
 * socket before any `Connection` exists: the bytes of `authenticatePeer` and
 * `authenticateToListener` (and so of CPython's `deliver_challenge` and
 * `answer_challenge`), their limits and their errors, as a synchronous state
 * machine in the socket's `'data'` handler (or, on a socket a Client made,
 * its `onread` reads: {@link SocketReads}). What one side has to say in
 * answer to a chunk leaves in one write, and nothing waits on a promise: an
 * authenticated connect costs what a hand-written one on `node:net` does.
 *
 * Once authenticated, the socket is paused with whatever the peer sent after
 * the handshake put back in front of its stream (`unshift`, of the socket or
 * of its reads), and
 * {@link SocketHandshake.connection} wraps it: a first message pipelined
 * after the handshake reaches the Connection.
 */
export class SocketHandshake {
  readonly #socket: net.Socket;
  /** The socket's `onread` reads, when it has them: the chunks come from there, not from `'data'`. */
  readonly #reads: SocketReads | null;
  readonly #key: Uint8Array;
  readonly #side: Side;
  /** Client: send our challenge with our reply, not after `#WELCOME#` (see `answerThenDeliver`). */
  readonly #pipeline: boolean;
  readonly #authTimeout: number;
  readonly #reportedTimeout: number | undefined;
  readonly #signal: AbortSignal | undefined;
  readonly #onAuthenticated: () => void;
  readonly #onFailed: (err: unknown) => void;
  readonly #decoder: FrameDecoder;
  /**
   * The decoder is fed one frame at a time, so that the handshake ends at a
   * known byte: `#need` bytes of the header (or payload) under way, and
   * whether that is a header.
   */
  #need = HEADER;
  #header = true;
  /** Handshake messages read so far. */
  #received = 0;
  /** Our challenge: the message the peer's reply must be the HMAC of. */
  #challenge: { message: Buffer; frame: Buffer } | null = null;
  /** Frames to send when the chunk at hand is read: one write per chunk. */
  #out: Buffer[] = [];
  #outLength = 0;
  #finished = false;
  #settled = false;
  #disarm: (() => void) | null = null;
  #closed: Promise<void> | null = null;

  private constructor(
    socket: net.Socket,
    key: Uint8Array,
    side: Side,
    options: HandshakeOptions,
    onAuthenticated: () => void,
    onFailed: (err: unknown) => void,
  ) {
    this.#socket = socket;
    this.#reads = options.reads ?? null;
    this.#key = key;
    this.#side = side;
    this.#pipeline = options.pipeline ?? false;
    this.#authTimeout = options.timeout ?? Infinity;
    this.#reportedTimeout = options.reportedTimeout;
    this.#signal = options.signal;
    this.#onAuthenticated = onAuthenticated;
    this.#onFailed = onFailed;
    this.#decoder = new FrameDecoder(
      {
        header: (length) => {
          this.#header = false;
          this.#need = length;
          return null;
        },
        frame: (payload) => {
          this.#header = true;
          this.#need = HEADER;
          this.#onMessage(payload);
        },
        error: (err) => this.#fail(err),
      },
      options.maxMessageSize ?? Infinity,
    );
    this.#decoder.limitNext(HANDSHAKE_MESSAGES, MAX_HANDSHAKE_MESSAGE);
    if (this.#reads !== null) this.#reads.attach(this.#onData);
    else socket.on('data', this.#onData);
    socket.on('end', this.#onEnd);
    socket.on('error', this.#onError);
    socket.on('close', this.#onClose);
  }

  /**
   * The Listener's side, on a socket it just accepted: deliver a challenge,
   * then answer the peer's. `onFailed` gets what `authenticatePeer` rejects
   * with, once the socket is closed.
   */
  static listener(
    socket: net.Socket,
    key: Uint8Array,
    options: { timeout: number; maxMessageSize?: number },
    onAuthenticated: () => void,
    onFailed: (err: AuthenticationError | ProtocolError) => void,
  ): SocketHandshake {
    const handshake = new SocketHandshake(socket, key, Side.Listener, options, onAuthenticated, onFailed as (err: unknown) => void);
    if (options.timeout !== Infinity) {
      handshake.#disarm = armCancel(undefined, options.timeout, 'authentication handshake', (reason) => handshake.#fail(reason));
    }
    handshake.#challenge = newChallenge('sha256');
    handshake.#send(handshake.#challenge.frame);
    handshake.#flush();
    return handshake;
  }

  /**
   * The Client's side, on a socket that just connected: answer the
   * listener's challenge, then deliver ours. Bounded by the caller, which
   * calls {@link cancel} on its timeout or abort; `onFailed` gets what
   * `authenticateToListener` rejects with, once the socket is closed.
   */
  static client(
    socket: net.Socket,
    key: Uint8Array,
    options: {
      pipeline: boolean;
      maxMessageSize?: number;
      reportedTimeout: number | undefined;
      signal: AbortSignal | undefined;
      reads: SocketReads | null;
    },
    onAuthenticated: () => void,
    onFailed: (err: unknown) => void,
  ): SocketHandshake {
    return new SocketHandshake(socket, key, Side.Client, options, onAuthenticated, onFailed);
  }

  /** Gives up on the handshake (a timeout, or the signal's reason): the socket is closed, then `onFailed` runs. */
  cancel(reason: unknown): void {
    this.#fail(reason);
  }

  /** Closes the socket of a handshake still under way, flushing what was sent; `onFailed` runs as for a peer that left. */
  close(): Promise<void> {
    this.#fail(new ConnectionStateError('ERR_CLOSED', 'the connection is closed'));
    return this.#closed ?? Promise.resolve();
  }

  /** Drops the socket of a handshake still under way, now. */
  destroy(): void {
    this.#socket.destroy();
  }

  /**
   * Once authenticated: the Connection over the socket, which from now on
   * owns it and reads first what the peer sent after the handshake.
   */
  connection(settings: ConnectionSettings): Connection {
    const conn = new Connection(this.#socket, settings, { readable: true, writable: true, reads: this.#reads ?? undefined });
    this.#socket.off('error', this.#onError);
    this.#socket.resume();
    return conn;
  }

  readonly #onData = (chunk: Buffer): void => {
    let pos = 0;
    while (pos < chunk.length && !this.#settled) {
      if (this.#finished) {
        this.#authenticated(chunk.subarray(pos));
        return;
      }
      const n = Math.min(this.#need, chunk.length - pos);
      this.#need -= n;
      this.#decoder.push(n === chunk.length ? chunk : chunk.subarray(pos, pos + n));
      pos += n;
      if (this.#header && this.#need === 0 && !this.#settled) {
        // A whole header and no length from it: the `-1` of the long form, whose 8 bytes follow.
        this.#need = LONG_HEADER;
      }
    }
    if (this.#settled) return;
    if (this.#finished) this.#authenticated(null);
    else this.#flush();
  };

  readonly #onEnd = (): void => {
    this.#fail(this.#decoder.finish() ?? new EOFError());
  };

  readonly #onError = (err: Error): void => {
    if (this.#settled) return;
    const truncated = this.#decoder.finish();
    if (truncated !== null) truncated.cause = err;
    this.#fail(truncated ?? new EOFError(undefined, { cause: err }));
  };

  readonly #onClose = (): void => {
    this.#fail(this.#decoder.finish() ?? new EOFError());
  };

  /** One handshake message, in the order each side reads them. */
  #onMessage(payload: Buffer): void {
    const n = ++this.#received;
    try {
      if (this.#side === Side.Listener) {
        if (n === 1) this.#judge(payload);
        else if (n === 2) this.#send(replyTo(this.#key, payload));
        else {
          checkVerdict(payload);
          this.#finished = true;
        }
      } else if (n === 1) {
        this.#send(replyTo(this.#key, payload));
        if (this.#pipeline) this.#sendChallenge();
      } else if (n === 2) {
        checkVerdict(payload);
        if (!this.#pipeline) this.#sendChallenge();
      } else {
        this.#judge(payload);
        this.#finished = true;
      }
    } catch (err) {
      this.#fail(err);
    }
  }

  #sendChallenge(): void {
    this.#challenge = newChallenge('sha256');
    this.#send(this.#challenge.frame);
  }

  /** The peer's reply to our challenge: `#WELCOME#`, or `#FAILURE#` and the error. */
  #judge(reply: Buffer): void {
    try {
      verify(this.#key, this.#challenge!.message, reply);
    } catch (err) {
      this.#send(FAILURE);
      throw err;
    }
    this.#send(WELCOME);
  }

  #send(payload: Buffer): void {
    this.#out.push(payload);
    this.#outLength += 4 + payload.length;
  }

  #flush(): void {
    if (this.#outLength === 0) return;
    const bytes = Buffer.allocUnsafe(this.#outLength);
    let at = 0;
    for (const payload of this.#out) {
      bytes.writeInt32BE(payload.length, at);
      payload.copy(bytes, at + 4);
      at += 4 + payload.length;
    }
    this.#out = [];
    this.#outLength = 0;
    this.#socket.write(bytes);
  }

  /** Ends the handshake either way: its timer, what it still had to say, its listeners. */
  #settle(): net.Socket {
    this.#settled = true;
    this.#disarm?.();
    this.#flush();
    const socket = this.#socket;
    if (this.#reads !== null) this.#reads.detach();
    else socket.off('data', this.#onData);
    socket.off('end', this.#onEnd);
    socket.off('close', this.#onClose);
    return socket;
  }

  /** The peer is authenticated and `rest` (if any) is what it sent after: keep it for the Connection. */
  #authenticated(rest: Buffer | null): void {
    const socket = this.#settle();
    // Paused until the Connection is listening, so that nothing is emitted to no one meanwhile.
    socket.pause();
    if (rest !== null && rest.length > 0) {
      if (this.#reads !== null) this.#reads.unshift(rest);
      else socket.unshift(rest);
    }
    this.#onAuthenticated();
  }

  /** Says what was queued (a `#FAILURE#`), closes the socket as `Connection.close()` does, then reports `err`. */
  #fail(err: unknown): void {
    if (this.#settled) return;
    const socket = this.#settle();
    const failure =
      this.#side === Side.Listener
        ? listenerFailure(err, this.#authTimeout)
        : clientFailure(err, this.#received > 0, this.#reportedTimeout, this.#signal);
    this.#closed = new Promise<void>((resolve) => {
      let timer: NodeJS.Timeout | undefined;
      const closed = (): void => {
        clearTimeout(timer);
        socket.off('finish', closed);
        socket.off('close', closed);
        socket.off('error', closed);
        socket.destroy();
        resolve();
        this.#onFailed(failure);
      };
      if (socket.destroyed || socket.writableFinished) {
        closed();
        return;
      }
      socket.on('finish', closed);
      socket.on('close', closed);
      socket.on('error', closed);
      socket.end();
      timer = setTimeout(closed, DEFAULT_CLOSE_TIMEOUT);
      timer.unref();
    });
  }
}

interface HandshakeOptions {
  reads?: SocketReads | null;
  pipeline?: boolean;
  timeout?: number;
  maxMessageSize?: number;
  reportedTimeout?: number | undefined;
  signal?: AbortSignal | undefined;
}
