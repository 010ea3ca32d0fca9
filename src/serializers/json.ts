import { DEFAULT_MAX_DEPTH, DepthLimitError } from './depth.js';
import type { Serializer } from './types.js';

const OPEN_BRACKET = 0x5b; // [
const OPEN_BRACE = 0x7b; // {
const CLOSE_BRACKET = 0x5d; // ]
const CLOSE_BRACE = 0x7d; // }
const QUOTE = 0x22;
const BACKSLASH = 0x5c;

/**
 * Throws `DepthLimitError` when the JSON text nests brackets deeper than
 * `maxDepth`. `JSON.parse` has no depth limit and builds the whole value
 * before anyone could look at it, so a 10 MB `[[[[…` would cost about a
 * gigabyte first: one linear pass over the bytes, counting brackets outside
 * strings, answers before parsing. Malformed text is left to `JSON.parse`.
 * Works on the UTF-8 bytes: every byte of a multi-byte sequence is >= 0x80,
 * so none is mistaken for a bracket, quote or backslash.
 */
export function checkJsonDepth(bytes: Uint8Array, maxDepth: number): void {
  if (bytes.length <= maxDepth || !moreOpenersThan(bytes, maxDepth)) return; // each level needs an opener
  let depth = 0;
  const n = bytes.length;
  for (let i = 0; i < n; i++) {
    const c = bytes[i]!;
    if (c === OPEN_BRACKET || c === OPEN_BRACE) {
      if (++depth > maxDepth) throw new DepthLimitError(maxDepth);
    } else if (c === CLOSE_BRACKET || c === CLOSE_BRACE) {
      depth--;
    } else if (c === QUOTE) {
      for (i++; i < n; i++) {
        const s = bytes[i]!;
        if (s === BACKSLASH) i++;
        else if (s === QUOTE) break;
      }
    }
  }
}

/** Whether `bytes` holds more than `max` brackets and braces (native searches; most messages have few). */
function moreOpenersThan(bytes: Uint8Array, max: number): boolean {
  let count = 0;
  for (const opener of [OPEN_BRACKET, OPEN_BRACE]) {
    for (let i = bytes.indexOf(opener); i >= 0; i = bytes.indexOf(opener, i + 1)) {
      if (++count > max) return true;
    }
  }
  return false;
}

/**
 * What JSON cannot carry faithfully, and `JSON.stringify` would silently turn
 * into `{}`, `null` or nothing: Python's `json.dumps` raises `TypeError` for
 * values it has no JSON form for, and so do we. Objects with a `toJSON`
 * (`Date`) are sent as what it returns; `undefined` object properties are
 * left out, as `JSON.stringify` does.
 */
function faithful(this: unknown, key: string, value: unknown): unknown {
  switch (typeof value) {
    case 'string':
    case 'boolean':
      return value;
    case 'number':
      if (!Number.isFinite(value)) throw new TypeError(`${value} cannot be sent as JSON${where(key)}`);
      return value;
    case 'undefined':
      if (Array.isArray(this)) throw new TypeError(`undefined cannot be sent as JSON${where(key)} (an array element)`);
      return value;
    case 'object': {
      if (value === null || Array.isArray(value)) return value;
      const proto = Object.getPrototypeOf(value);
      if (proto === Object.prototype || proto === null) return value;
      const name = (value as object).constructor?.name ?? 'object';
      throw new TypeError(
        `a ${name} cannot be sent as JSON${where(key)}: JSON has only plain objects, arrays, strings, finite numbers, ` +
          "booleans and null (use the 'msgpack' or 'pickle' serializer, or convert it first)",
      );
    }
    default:
      throw new TypeError(`a ${typeof value} cannot be sent as JSON${where(key)}`);
  }
}

function where(key: string): string {
  return key === '' ? '' : ` (at key ${JSON.stringify(key)})`;
}

/** UTF-8 JSON. */
export function jsonSerializer(maxDepth = DEFAULT_MAX_DEPTH): Serializer {
  const decoder = new TextDecoder('utf-8', { fatal: true });
  return {
    encode(value) {
      const text = JSON.stringify(value, faithful);
      if (text === undefined) throw new TypeError(`${typeof value} cannot be sent as JSON`);
      return Buffer.from(text, 'utf8');
    },
    decode(bytes) {
      checkJsonDepth(bytes, maxDepth);
      return JSON.parse(decoder.decode(bytes));
    },
  };
}
