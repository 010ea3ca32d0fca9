/**
 * Which serializer a connection uses, and its decoding failures as mpconn errors.
 */
import { ProtocolError, UnpicklingError } from '../core/errors.js';
import { DEFAULT_MAX_DEPTH, DepthLimitError } from './depth.js';
import { jsonSerializer } from './json.js';
import { msgpackSerializer } from './msgpack.js';
import { pickleSerializer } from './pickle/index.js';
import type { Serializer, SerializerOption } from './types.js';

/** A serializer as a connection holds it. */
export interface ResolvedSerializer extends Serializer {
  /** `encode()` returns bytes that stay valid only until its next call. */
  readonly sharedOutput: boolean;
}

/**
 * The serializer a connection uses. Built-in ones get a fresh instance per
 * connection (their encoder and decoder buffers are reused across messages);
 * their decoding failures become `ProtocolError` `ERR_DECODE` (or
 * `UnpicklingError`) carrying the raw payload, so nothing is lost. They
 * reject values nested deeper than `maxDepth` the same way. A custom
 * serializer decides its own limits.
 */
export function resolveSerializer(option: SerializerOption | undefined, maxDepth = DEFAULT_MAX_DEPTH): ResolvedSerializer {
  switch (option ?? 'msgpack') {
    case 'msgpack':
      // Its encoder's reused buffer is handed out as is (no copy per message): the connection copies it when it must.
      return { ...guardDecode(msgpackSerializer(maxDepth), 'msgpack'), sharedOutput: true };
    case 'json':
      return { ...guardDecode(jsonSerializer(maxDepth), 'JSON'), sharedOutput: false };
    case 'pickle':
      return { ...guardPickle(pickleSerializer({ maxDepth })), sharedOutput: false };
    default:
      if (
        typeof option === 'object' && option !== null &&
        typeof option.encode === 'function' && typeof option.decode === 'function'
      ) {
        return { encode: (value) => option.encode(value), decode: (bytes) => option.decode(bytes), sharedOutput: false };
      }
      throw new TypeError(
        `serializer must be 'msgpack', 'json', 'pickle' or an object with encode() and decode(); got ${describe(option)}`,
      );
  }
}

/** `serializer` with its decoding failures turned into `toError(cause, bytes)`. */
function withDecodeErrors(serializer: Serializer, toError: (cause: unknown, bytes: Uint8Array) => Error): Serializer {
  return {
    encode: serializer.encode,
    decode(bytes) {
      try {
        return serializer.decode(bytes);
      } catch (cause) {
        throw toError(cause, bytes);
      }
    },
  };
}

function guardDecode(serializer: Serializer, name: string): Serializer {
  return withDecodeErrors(
    serializer,
    (cause, bytes) =>
      new ProtocolError(
        'ERR_DECODE',
        cause instanceof DepthLimitError
          ? `${name} message rejected: ${cause.message}; raise the connection's maxDepth option if this is legitimate`
          : `message is not valid ${name}: ${(cause as Error).message}`,
        { cause, data: Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength) },
      ),
  );
}

function guardPickle(serializer: Serializer): Serializer {
  return withDecodeErrors(serializer, (cause, bytes) => {
    const data = Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength);
    return cause instanceof UnpicklingError
      ? new UnpicklingError(cause.message, { cause, data, ...(cause.offset !== undefined ? { offset: cause.offset } : {}) })
      : new UnpicklingError(`message is not a valid pickle: ${(cause as Error).message}`, { cause, data });
  });
}

function describe(value: unknown): string {
  if (typeof value === 'string') return JSON.stringify(value);
  return value === null ? 'null' : typeof value;
}
