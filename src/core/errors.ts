/**
 * Every error mpconn raises itself. Each class has a stable `.code`, so callers
 * can branch on `err.code` instead of parsing messages.
 *
 * | class                  | codes                                                        |
 * |------------------------|--------------------------------------------------------------|
 * | `EOFError`             | `ERR_EOF`                                                    |
 * | `ProtocolError`        | `ERR_TRUNCATED`, `ERR_MESSAGE_TOO_LONG`, `ERR_BAD_LENGTH`, `ERR_DECODE`, `ERR_BAD_REPLY` |
 * | `AuthenticationError`  | `ERR_AUTH`                                                   |
 * | `BufferTooShort`       | `ERR_BUFFER_TOO_SHORT`                                       |
 * | `ConnectionStateError` | `ERR_CLOSED`, `ERR_NOT_READABLE`, `ERR_READ_ONLY`, `ERR_WRITE_ONLY` |
 * | `UnpicklingError`      | `ERR_UNPICKLING`                                             |
 * | `RemoteError`          | `ERR_REMOTE`                                                 |
 * | `MpconnError`          | `ERR_NO_FILENO`, `ERR_TOO_MANY_PENDING` (a Listener's `'acceptError'` over `maxPending`) |
 *
 * @module
 */

import type { PyObject } from '../serializers/pickle/types.js';

/**
 * Base class of every error mpconn raises itself.
 *
 * @example
 * ```ts
 * try {
 *   await conn.recv();
 * } catch (err) {
 *   if (err instanceof MpconnError) console.error(err.code, err.message);
 *   else throw err;
 * }
 * ```
 */
export class MpconnError extends Error {
  /** A stable, machine-readable code such as `ERR_TRUNCATED`. */
  readonly code: string;

  constructor(code: string, message: string, options?: ErrorOptions) {
    super(message, options);
    this.code = code;
    this.name = new.target.name;
  }
}

/**
 * The peer closed the connection at a message boundary: there is nothing more
 * to receive. Python raises `EOFError` in the same place.
 *
 * @example
 * ```ts
 * try { await conn.recv(); } catch (err) { if (err instanceof EOFError) console.log('peer is done'); }
 * ```
 */
export class EOFError extends MpconnError {
  constructor(message = 'the peer closed the connection (end of stream)', options?: ErrorOptions) {
    super('ERR_EOF', message, options);
  }
}

/**
 * Codes a {@link ProtocolError} can carry.
 *
 * @example
 * ```ts
 * const code: ProtocolErrorCode = 'ERR_TRUNCATED';
 * ```
 */
export type ProtocolErrorCode = 'ERR_TRUNCATED' | 'ERR_MESSAGE_TOO_LONG' | 'ERR_BAD_LENGTH' | 'ERR_DECODE' | 'ERR_BAD_REPLY';

/**
 * The byte stream broke the framing rules: it ended inside a frame
 * (`ERR_TRUNCATED`), a frame was longer than allowed (`ERR_MESSAGE_TOO_LONG`),
 * a header carried an impossible length (`ERR_BAD_LENGTH`), or a payload could
 * not be decoded by the serializer (`ERR_DECODE`, with the raw bytes in `.data`),
 * or a manager server's reply is not one the manager protocol allows (`ERR_BAD_REPLY`).
 *
 * @example
 * ```ts
 * try {
 *   await conn.recv();
 * } catch (err) {
 *   if (err instanceof ProtocolError && err.code === 'ERR_DECODE') console.log('undecodable:', err.data);
 * }
 * ```
 */
export class ProtocolError extends MpconnError {
  declare readonly code: ProtocolErrorCode;
  /** For `ERR_DECODE`: the payload that could not be decoded (it was consumed). */
  readonly data?: Buffer;

  constructor(code: ProtocolErrorCode, message: string, options?: ErrorOptions & { data?: Buffer }) {
    super(code, message, options);
    if (options?.data !== undefined) this.data = options.data;
  }
}

/**
 * The HMAC challenge failed, on either side of the handshake.
 *
 * @example
 * ```ts
 * try {
 *   await Client(['localhost', 6000], { authkey: 'maybe wrong' });
 * } catch (err) {
 *   if (err instanceof AuthenticationError) console.error('wrong authkey?', err.message);
 * }
 * listener.on('handshakeError', (err: AuthenticationError, peer) => console.warn(peer, err.message));
 * ```
 */
export class AuthenticationError extends MpconnError {
  /** Why the handshake failed, stable across releases (the message may change). */
  readonly reason: AuthenticationReason;

  constructor(message: string, options?: ErrorOptions & { reason?: AuthenticationReason }) {
    super('ERR_AUTH', message, options);
    this.reason = options?.reason ?? 'failed';
  }
}

/**
 * Why an {@link AuthenticationError} happened:
 *
 * - `'wrong-key'`: the peer's digest did not match ours (it has a different authkey);
 * - `'rejected'`: the peer rejected our digest (`#FAILURE#`: it has a different authkey);
 * - `'no-challenge'`: the peer sent something else than a challenge (is it running without an authkey?);
 * - `'bad-message'`: a challenge or reply that breaks the protocol (too short, unknown digest, wrong length);
 * - `'timeout'`: the handshake did not finish in time (`authTimeout`, `timeout`);
 * - `'closed'`: the peer closed the connection during the handshake;
 * - `'protocol'`: the peer broke the framing rules (e.g. a message over the 256-byte handshake cap);
 * - `'tls'`: the TLS handshake failed;
 * - `'key-required'`: the peer sent a challenge to a connection that has no authkey;
 * - `'failed'`: anything else.
 *
 * @example
 * ```ts
 * try {
 *   await Client(address, { authkey: 'secret' });
 * } catch (err) {
 *   if (err instanceof AuthenticationError && err.reason === 'no-challenge') console.error('the listener has no authkey');
 * }
 * ```
 */
export type AuthenticationReason =
  | 'wrong-key'
  | 'rejected'
  | 'no-challenge'
  | 'bad-message'
  | 'timeout'
  | 'closed'
  | 'protocol'
  | 'tls'
  | 'key-required'
  | 'failed';

/**
 * `recvBytesInto` received a message larger than the space left in the
 * destination. The message was consumed; `.data` holds all of it.
 *
 * @example
 * ```ts
 * const buf = new Uint8Array(16);
 * try {
 *   const n = await conn.recvBytesInto(buf);
 * } catch (err) {
 *   if (err instanceof BufferTooShort) handle(err.data); // the whole message
 * }
 * ```
 */
export class BufferTooShort extends MpconnError {
  /** The whole message that did not fit. */
  readonly data: Buffer;

  constructor(data: Buffer, available: number) {
    super(
      'ERR_BUFFER_TOO_SHORT',
      `message of ${data.length} bytes does not fit in the ${available} bytes left in the buffer; ` +
        'the message is in err.data',
    );
    this.data = data;
  }
}

/**
 * Codes a {@link ConnectionStateError} can carry.
 *
 * @example
 * ```ts
 * const code: ConnectionStateCode = 'ERR_CLOSED';
 * ```
 */
export type ConnectionStateCode = 'ERR_CLOSED' | 'ERR_NOT_READABLE' | 'ERR_READ_ONLY' | 'ERR_WRITE_ONLY';

/**
 * The call is not possible in the object's current state: it was closed by
 * this side (`ERR_CLOSED`), it can no longer be read after an oversized
 * message (`ERR_NOT_READABLE`), or it is one end of a one-way `Pipe`
 * (`ERR_READ_ONLY`, `ERR_WRITE_ONLY`).
 *
 * @example
 * ```ts
 * await conn.close();
 * await conn.send('late').catch((err) => console.log(err.code)); // 'ERR_CLOSED'
 * ```
 */
export class ConnectionStateError extends MpconnError {
  declare readonly code: ConnectionStateCode;

  constructor(code: ConnectionStateCode, message: string, options?: ErrorOptions) {
    super(code, message, options);
  }
}

/**
 * A pickle could not be decoded. The connection stays usable.
 *
 * @example
 * ```ts
 * const conn = await Client(address, { serializer: 'pickle' });
 * try {
 *   console.log(await conn.recv());
 * } catch (err) {
 *   if (err instanceof UnpicklingError) console.warn('bad pickle at byte', err.offset);
 * }
 * ```
 */
export class UnpicklingError extends MpconnError {
  /** Byte offset in the pickle where decoding stopped, when known. */
  readonly offset?: number;
  /** On a connection: the payload that could not be decoded (it was consumed), as `ProtocolError` `ERR_DECODE` has it. */
  readonly data?: Buffer;

  constructor(message: string, options?: ErrorOptions & { offset?: number; data?: Buffer }) {
    super('ERR_UNPICKLING', message, options);
    if (options?.offset !== undefined) this.offset = options.offset;
    if (options?.data !== undefined) this.data = options.data;
  }
}

/**
 * How a manager server reported a failed call (`'#ERROR'`: the method raised
 * `exception`; `'#TRACEBACK'`: anything else failed, with the server's text;
 * `'#UNSERIALIZABLE'`: the result could not be pickled).
 *
 * @example
 * ```ts
 * const kind: RemoteErrorKind = '#ERROR';
 * ```
 */
export type RemoteErrorKind = '#ERROR' | '#TRACEBACK' | '#UNSERIALIZABLE';

/**
 * A manager call failed on the server: Python's `RemoteError`, or the
 * exception the method raised (`kind` `'#ERROR'`), kept inert in `.exception`
 * with its class name in `.pyType` (`'_queue.Empty'`, `'builtins.KeyError'`).
 *
 * @example
 * ```ts
 * try {
 *   await q.get(kwargs({ timeout: 0.1 }));
 * } catch (err) {
 *   if (err instanceof RemoteError && err.pyType?.endsWith('.Empty')) console.log('queue is empty');
 * }
 * ```
 */
export class RemoteError extends MpconnError {
  declare readonly code: 'ERR_REMOTE';
  /** Which reply the server sent. */
  readonly kind: RemoteErrorKind;
  /** For `'#ERROR'`: the exception as pickled (an inert `PyObject`), else `null`. */
  readonly exception: PyObject | null;
  /** The exception's class as pickled, `'module.name'` (`'builtins.KeyError'`), or `null`. */
  readonly pyType: string | null;
  /** For `'#TRACEBACK'` and `'#UNSERIALIZABLE'`: the server's text, else `null`. */
  readonly traceback: string | null;

  constructor(
    kind: RemoteErrorKind,
    message: string,
    details: { exception?: PyObject | null; pyType?: string | null; traceback?: string | null } = {},
  ) {
    super('ERR_REMOTE', message);
    this.kind = kind;
    this.exception = details.exception ?? null;
    this.pyType = details.pyType ?? null;
    this.traceback = details.traceback ?? null;
  }
}

/** The error a timeout rejects with: what `AbortSignal.timeout()` gives. */
export function timeoutError(what: string, ms: number): DOMException {
  return new DOMException(`${what} timed out after ${ms} ms`, 'TimeoutError');
}
