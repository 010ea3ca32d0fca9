/**
 * Turns messages into bytes and back. `send(obj)` is `sendBytes(encode(obj))`
 * and `recv()` is `decode(recvBytes())`.
 *
 * @example
 * ```ts
 * const utf8: Serializer = {
 *   encode: (s) => new TextEncoder().encode(String(s)),
 *   decode: (b) => new TextDecoder().decode(b),
 * };
 * const conn = await Client(address, { serializer: utf8 });
 * ```
 */
export interface Serializer {
  /** The bytes of one message. A value it cannot encode should throw a `TypeError` or `RangeError`. */
  encode(value: unknown): Uint8Array;
  /** The value of one message's bytes. */
  decode(bytes: Uint8Array): unknown;
}

/**
 * A serializer given by name, or your own.
 *
 * @example
 * ```ts
 * await Client(address, { serializer: 'json' });
 * await Client(address, { serializer: { encode: (v) => myEncode(v), decode: (b) => myDecode(b) } });
 * ```
 */
export type SerializerOption = 'msgpack' | 'json' | 'pickle' | Serializer;
