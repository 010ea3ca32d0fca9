import { Decoder, Encoder } from '@msgpack/msgpack';
import { DEFAULT_MAX_DEPTH, DepthLimitError } from './depth.js';
import type { Serializer } from './types.js';

const MAX_SAFE = BigInt(Number.MAX_SAFE_INTEGER);
const MIN_SAFE = BigInt(Number.MIN_SAFE_INTEGER);
const UINT64_MAX = (1n << 64n) - 1n;
const INT64_MIN = -(1n << 63n);
/** Arrays up to this many elements get their room ahead at any depth. */
const SMALL_ARRAY = 16;

// The parts of @msgpack/msgpack 3.x we extend (TypeScript-private, so the
// extension is made on each instance); test/connection.test.ts (serializers) and
// test/stress/hostile.test.ts (decode bombs) cover them. Verified against 3.1.x, the
// range package.json pins (~3.1.3);
// `internalsMissing` checks them once, on first use, so a release that renames one
// fails with a clear error instead of a `.bind` TypeError or silently lossy integers.
interface EncoderInternals {
  encodeObject(object: unknown, depth: number): void;
  encodeNumber(n: number): void;
  encodeBigInt64(n: bigint): void;
  doEncode(value: unknown, depth: number): void;
  writeU8(n: number): void;
  writeU16(n: number): void;
  writeU32(n: number): void;
}
interface DecoderInternals {
  view: DataView;
  pos: number;
  readU64(): number | bigint;
  readI64(): number | bigint;
  stack: {
    readonly length: number;
    pushArrayState(size: number): void;
    pushMapState(size: number): void;
    top(): { size: number } | undefined;
  };
}

/** Which of the internals we extend this @msgpack/msgpack lacks (empty when all are there). */
function internalsMissing(): string[] {
  const encoder = new Encoder() as unknown as Record<string, unknown>;
  const decoder = new Decoder() as unknown as Record<string, unknown>;
  const stack = decoder.stack as Record<string, unknown> | undefined;
  const missing: string[] = [];
  for (const name of ['encodeObject', 'encodeNumber', 'encodeBigInt64', 'doEncode', 'writeU8', 'writeU16', 'writeU32']) {
    if (typeof encoder[name] !== 'function') missing.push(`Encoder.${name}`);
  }
  for (const name of ['readU64', 'readI64']) {
    if (typeof decoder[name] !== 'function') missing.push(`Decoder.${name}`);
  }
  if (typeof stack !== 'object' || stack === null) missing.push('Decoder.stack');
  else {
    for (const name of ['pushArrayState', 'pushMapState', 'top']) {
      if (typeof stack[name] !== 'function') missing.push(`Decoder.stack.${name}`);
    }
  }
  return missing;
}

/** Worked out on the first encoder or decoder made, not when the module loads (a program using only json or pickle pays nothing). */
let missing: string[] | null = null;

function checkInternals(): void {
  missing ??= internalsMissing();
  if (missing.length === 0) return;
  throw new Error(
    `mpconn's msgpack serializer needs @msgpack/msgpack 3.1.x; the installed version lacks ${missing.join(', ')}. ` +
      'Install @msgpack/msgpack@~3.1.3 (or use the json or pickle serializer).',
  );
}

/**
 * msgpack with the integers and containers a Python peer sends: integers that
 * need 64 bits round-trip exactly (a number when safe, else a bigint, never a
 * lossy float), a `bigint` is encoded as an integer, a `Map` as a map with its
 * own keys, a `Set` as an array. Left alone, the library turns a `Map` or a
 * `Set` into `{}` and integers above 2**53 into approximations.
 */
function createEncoder(): Encoder {
  checkInternals();
  const encoder = new Encoder();
  const self = encoder as unknown as EncoderInternals;
  const encodeObject = self.encodeObject.bind(encoder);
  self.encodeObject = (object, depth) => {
    if (typeof object === 'bigint') {
      if (object >= MIN_SAFE && object <= MAX_SAFE) self.encodeNumber(Number(object));
      else if (object >= INT64_MIN && object <= UINT64_MAX) self.encodeBigInt64(object);
      else throw new RangeError(`msgpack integers are 64-bit; ${object} does not fit`);
    } else if (object instanceof Map) {
      const size = object.size;
      if (size < 16) self.writeU8(0x80 + size);
      else if (size < 0x10000) {
        self.writeU8(0xde);
        self.writeU16(size);
      } else {
        self.writeU8(0xdf);
        self.writeU32(size);
      }
      for (const [key, value] of object) {
        self.doEncode(key, depth + 1);
        self.doEncode(value, depth + 1);
      }
    } else if (object instanceof Set) {
      encodeObject([...object], depth);
    } else {
      encodeObject(object, depth);
    }
  };
  return encoder;
}

function createDecoder(maxDepth: number): Decoder {
  checkInternals();
  const decoder = new Decoder();
  const self = decoder as unknown as DecoderInternals;
  self.readU64 = () => {
    const value = self.view.getBigUint64(self.pos);
    self.pos += 8;
    return value <= MAX_SAFE ? Number(value) : value;
  };
  self.readI64 = () => {
    const value = self.view.getBigInt64(self.pos);
    self.pos += 8;
    return value >= MIN_SAFE && value <= MAX_SAFE ? Number(value) : value;
  };
  // @msgpack/msgpack allocates `new Array(size)` from an array header, before
  // any element has arrived: a 5-byte message claiming 2**25 elements costs
  // 256 MB, and a message of nested headers exhausts the heap and aborts the
  // process. Every element takes at least a byte, so a claim above the bytes
  // left is a lie; and only the two outer levels (and small arrays) get their
  // room ahead, so room reserved and not yet filled stays within a small
  // multiple of the message. Other arrays start empty and grow as elements
  // arrive (the outer levels keep the speed of preallocation).
  //
  // The decoder keeps one stack entry per open container, so counting them
  // bounds the depth (and with it the stack, which the library never shrinks).
  const stack = self.stack;
  const pushArrayState = stack.pushArrayState.bind(stack);
  const pushMapState = stack.pushMapState.bind(stack);
  stack.pushMapState = (size) => {
    if (stack.length >= maxDepth) throw new DepthLimitError(maxDepth);
    pushMapState(size);
  };
  stack.pushArrayState = (size) => {
    if (stack.length >= maxDepth) throw new DepthLimitError(maxDepth);
    const left = self.view.byteLength - self.pos;
    if (size <= left && (size <= SMALL_ARRAY || stack.length < 2)) {
      pushArrayState(size);
    } else {
      pushArrayState(0);
      stack.top()!.size = size;
    }
  };
  return decoder;
}

/** The default serializer. Encoder and decoder are created once and reused. */
export function msgpackSerializer(maxDepth = DEFAULT_MAX_DEPTH): Serializer {
  // Made on first use: a connection that only moves bytes (or only authenticates) never pays for them.
  let encoder: Encoder | undefined;
  let decoder: Decoder | undefined;
  return {
    // A view of the encoder's reused buffer, valid until the next call (resolveSerializer says so).
    encode: (value) => (encoder ??= createEncoder()).encodeSharedRef(value),
    decode: (bytes) => (decoder ??= createDecoder(maxDepth)).decode(bytes),
  };
}
