/**
 * mpconn: Python's `multiprocessing.connection` for Node.js.
 *
 * @example
 * ```ts
 * import { Listener, Client } from 'mpconn';
 * const listener = await Listener.listen(['localhost', 0], { authkey: 'secret' });
 * const client = await Client(listener.address, { authkey: 'secret' });
 * const server = await listener.accept();
 * await client.send({ hello: 'world' });
 * console.log(await server.recv());
 * ```
 *
 * @module
 */
export { Connection } from './connection/index.js';
export type { BatchesOptions, ByteBatchesOptions, CloseOptions, ConnectionOptions, RecvManyOptions, RecvOptions, RecvValueManyOptions, RecvValueOptions } from './connection/index.js';
export { Client, connect, Listener, Pipe, addressType, arbitraryAddress } from './listener/index.js';
export type { AcceptOptions, Address, ClientOptions, Family, InetAddress, ListenerEvents, ListenerOptions } from './listener/index.js';
export { answerChallenge, deliverChallenge } from './auth/index.js';
export {
  AuthenticationError,
  BufferTooShort,
  ConnectionStateError,
  EOFError,
  MpconnError,
  ProtocolError,
  UnpicklingError,
} from './core/errors.js';
export type { AuthenticationReason, ConnectionStateCode, ProtocolErrorCode } from './core/errors.js';
export { PyComplex, PyGlobal, PyObject, Tuple } from './serializers/index.js';
export { PyFloat } from './serializers/index.js';
export type { PyObjectKind, PyObjectOptions } from './serializers/index.js';
export type { Serializer, SerializerOption } from './serializers/index.js';

/**
 * An HMAC key: bytes, or a string taken as its UTF-8 bytes.
 *
 * @example
 * ```ts
 * const authkey: Authkey = Buffer.from(process.env.APP_KEY ?? '', 'utf8'); // same as the string itself
 * ```
 */
export type Authkey = Uint8Array | string;

import { answerChallenge, deliverChallenge } from './auth/index.js';
import { addressType, arbitraryAddress } from './listener/index.js';

/**
 * Python-compatible name of {@link deliverChallenge}.
 *
 * @example
 * ```ts
 * await deliver_challenge(conn, 'secret');
 * ```
 */
export const deliver_challenge = deliverChallenge;
/**
 * Python-compatible name of {@link answerChallenge}.
 *
 * @example
 * ```ts
 * await answer_challenge(conn, 'secret');
 * ```
 */
export const answer_challenge = answerChallenge;
/**
 * Python-compatible name of {@link addressType}.
 *
 * @example
 * ```ts
 * address_type(['localhost', 6000]); // 'AF_INET'
 * ```
 */
export const address_type = addressType;
/**
 * Python-compatible name of {@link arbitraryAddress}.
 *
 * @example
 * ```ts
 * const address = arbitrary_address('AF_UNIX'); // '/tmp/mpconn-XXXX/listener-XXXX'
 * ```
 */
export const arbitrary_address = arbitraryAddress;

export { wait } from './wait/index.js';
export type { Waitable } from './wait/index.js';
export { parentConnection, spawn } from './process/index.js';
export type { SpawnCommand, SpawnOptions, Spawned } from './process/index.js';
export { RemoteError } from './core/errors.js';
export type { RemoteErrorKind } from './core/errors.js';
// Managers, both roles, and the SyncManager classes a Node program can hold itself (see src/managers/index.ts).
export * from './managers/index.js';
