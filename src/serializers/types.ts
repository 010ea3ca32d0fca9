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
  encode(value: unknown): Uint8Array;
  decode(bytes: Uint8Array): unknown;
}

/** A serializer given by name, or your own. */
export type SerializerOption = 'msgpack' | 'json' | 'pickle' | Serializer;
