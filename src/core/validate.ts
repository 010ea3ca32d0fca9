/**
 * Argument checks shared by the whole public API, so that every entry point
 * rejects bad input the same way: `TypeError` for the wrong kind of value,
 * `RangeError` for a value out of range (Python raises `ValueError` there).
 * Option groups that several entry points take (a connection's options, a
 * call's signal and timeout) have one resolver each, called once per entry
 * point: what it returns is checked and has its defaults filled in.
 */
import { constants as bufferConstants } from 'node:buffer';
import { resolveSerializer, type ResolvedSerializer } from '../serializers/resolve.js';
import type { SerializerOption } from '../serializers/types.js';

/** A byte view over any `ArrayBufferView` or `ArrayBuffer`, sharing its memory. */
export function bytesOf(value: unknown, what: string): Uint8Array {
  if (value instanceof Uint8Array) return value;
  if (ArrayBuffer.isView(value)) return new Uint8Array(value.buffer, value.byteOffset, value.byteLength);
  if (value instanceof ArrayBuffer || value instanceof SharedArrayBuffer) return new Uint8Array(value);
  throw new TypeError(`${what} must be an ArrayBufferView or an ArrayBuffer, not ${describe(value)}`);
}

/** An optional count of bytes (a size, an offset, a length limit): a non-negative integer. */
export function byteCount(value: unknown, what: string): number | undefined {
  return nonNegativeInteger(value, what);
}

/** An optional length of a queue (a listen backlog, a bound on pending connections): a non-negative integer. */
export function queueLength(value: unknown, what: string): number | undefined {
  return nonNegativeInteger(value, what);
}

function nonNegativeInteger(value: unknown, what: string): number | undefined {
  if (value === undefined || value === null) return undefined;
  if (typeof value !== 'number') throw new TypeError(`${what} must be a number, not ${describe(value)}`);
  if (!Number.isInteger(value)) throw new RangeError(`${what} must be an integer, got ${value}`);
  if (value < 0) throw new RangeError(`${what} is negative (${value})`);
  return value;
}

/** Python's `send_bytes(buf, offset, size)` rules, in bytes of the view. */
export function sliceForSend(buf: unknown, offset: unknown, size: unknown): Uint8Array {
  // The common call, a whole Buffer or Uint8Array: nothing else to check.
  if (offset === undefined && size === undefined && buf instanceof Uint8Array) return buf;
  const bytes = bytesOf(buf, 'buf');
  const n = bytes.length; // a Uint8Array's byteLength, and cheaper to read
  const start = byteCount(offset, 'offset') ?? 0;
  if (start > n) throw new RangeError(`offset ${start} is past the end of the ${n}-byte buffer`);
  const count = byteCount(size, 'size') ?? n - start;
  if (start + count > n) {
    throw new RangeError(`offset + size (${start} + ${count}) is past the end of the ${n}-byte buffer`);
  }
  return start === 0 && count === n ? bytes : bytes.subarray(start, start + count);
}

/** An optional nesting limit: a positive integer, or `Infinity` for none. */
export function depthLimit(value: unknown, what = 'maxDepth'): number | undefined {
  if (value === undefined || value === null) return undefined;
  if (typeof value !== 'number') throw new TypeError(`${what} must be a number, not ${describe(value)}`);
  if (value === Infinity) return value;
  if (!Number.isInteger(value) || value < 1) throw new RangeError(`${what} must be a positive integer or Infinity, got ${value}`);
  return value;
}

/**
 * A timeout in milliseconds: `undefined`/`null` means none (wait forever, as
 * Python's `None`), a negative value counts as 0, `Infinity` is allowed.
 */
export function timeoutMs(value: unknown, what = 'timeout'): number | undefined {
  if (value === undefined || value === null) return undefined;
  if (typeof value !== 'number') throw new TypeError(`${what} must be a number of milliseconds, not ${describe(value)}`);
  if (Number.isNaN(value)) throw new RangeError(`${what} must not be NaN`);
  return value < 0 ? 0 : value;
}

/**
 * A timeout option whose left-out value has a default: `null` is Python's
 * None and means no limit (`Infinity`), as `Infinity` does.
 */
export function timeoutOr(value: unknown, fallback: number, what = 'timeout'): number {
  return value === null ? Infinity : (timeoutMs(value, what) ?? fallback);
}

/** A call's `signal` and `timeout` options, checked. */
export interface CancelOptions {
  signal: AbortSignal | undefined;
  /** Milliseconds; `undefined` or `Infinity`: no limit. */
  timeout: number | undefined;
}

/**
 * The `signal` and `timeout` of a call that can be aborted or time out
 * (a receive, `accept()`, `Client()`): `fallback` is the timeout when it is
 * left out (none, without one).
 */
export function cancelOptions(opts: { signal?: unknown; timeout?: unknown }): CancelOptions;
export function cancelOptions(opts: { signal?: unknown; timeout?: unknown }, fallback: number): CancelOptions & { timeout: number };
export function cancelOptions(opts: { signal?: unknown; timeout?: unknown }, fallback?: number): CancelOptions {
  const signal = abortSignal(opts.signal);
  const timeout = fallback === undefined ? timeoutMs(opts.timeout) : timeoutOr(opts.timeout, fallback);
  return { signal, timeout };
}

/** A receive that takes many messages (`recvMany`, `recvBytesMany`, `batches`), its limits checked. */
export interface ManyOptions {
  /** Most messages one call takes; `Infinity`: every message buffered. */
  max: number;
  /** Longest message, in bytes; `Infinity`: no limit beyond the connection's `maxMessageSize`. */
  maxlength: number;
}

/** `max` (a positive integer, or `Infinity`) and `maxlength` (a byte count, or `Infinity`) of a receive of many messages. */
export function manyOptions(opts: { max?: unknown; maxlength?: unknown }): ManyOptions {
  const max = opts.max;
  let most = Infinity;
  if (max !== undefined && max !== null && max !== Infinity) {
    if (typeof max !== 'number') throw new TypeError(`max must be a number of messages, not ${describe(max)}`);
    if (!Number.isInteger(max) || max < 1) throw new RangeError(`max must be a positive integer (or Infinity), got ${max}`);
    most = max;
  }
  const maxlength = opts.maxlength === Infinity ? Infinity : (byteCount(opts.maxlength, 'maxlength') ?? Infinity);
  return { max: most, maxlength };
}

/** What `batches()` was asked for, checked: each batch's limits, bytes or values, the validator and the signal. */
export interface BatchesSettings extends ManyOptions {
  bytes: boolean;
  parse: ((value: unknown) => unknown) | null;
  signal: AbortSignal | undefined;
}

export function batchesOptions(opts: { max?: unknown; maxlength?: unknown; bytes?: unknown; parse?: unknown; signal?: unknown }): BatchesSettings {
  const { max, maxlength } = manyOptions(opts);
  const bytes = opts.bytes;
  if (bytes !== undefined && typeof bytes !== 'boolean') throw new TypeError(`bytes must be a boolean, not ${describe(bytes)}`);
  const parse = validator(opts.parse);
  if (bytes === true && parse !== null) throw new TypeError('batches({ bytes: true }) gives Buffers: it takes no parse');
  return { max, maxlength, bytes: bytes === true, parse, signal: abortSignal(opts.signal) };
}

/** A `parse` option (a validator of decoded values): a function, or left out. */
export function validator<T>(value: unknown): ((value: unknown) => T) | null {
  if (value === undefined) return null;
  if (typeof value !== 'function') throw new TypeError(`parse must be a function, not ${describe(value)}`);
  return value as (value: unknown) => T;
}

export function abortSignal(value: unknown): AbortSignal | undefined {
  if (value === undefined || value === null) return undefined;
  if (!(value instanceof AbortSignal)) throw new TypeError(`signal must be an AbortSignal, not ${describe(value)}`);
  return value;
}

/** An HMAC key: bytes, or a string taken as its UTF-8 bytes. An empty key is a key. */
export function authkeyBytes(value: unknown): Uint8Array | null {
  if (value === undefined || value === null) return null;
  if (typeof value === 'string') return Buffer.from(value, 'utf8');
  if (value instanceof Uint8Array) return value;
  throw new TypeError(`authkey must be a Uint8Array or a string, not ${describe(value)}`);
}

/** Longest message a connection takes when `maxMessageSize` is left out: the platform's Buffer limit. */
const DEFAULT_MAX_MESSAGE_SIZE = bufferConstants.MAX_LENGTH;

/**
 * A connection's options (`serializer`, `maxMessageSize`, `maxDepth`), checked
 * once by the entry point that makes connections with them (`Connection`,
 * `Listener.listen`, `Client`, `Pipe`, `spawn`), and handed to every
 * `Connection` it makes, which then checks nothing again.
 */
export class ConnectionSettings {
  readonly maxMessageSize: number;
  readonly #serializer: SerializerOption | undefined;
  readonly #maxDepth: number | undefined;
  /** The serializer made when a custom one was checked: the first connection uses it. */
  #checked: ResolvedSerializer | null;

  constructor(opts: { serializer?: unknown; maxMessageSize?: unknown; maxDepth?: unknown }) {
    this.maxMessageSize = byteCount(opts.maxMessageSize, 'maxMessageSize') ?? DEFAULT_MAX_MESSAGE_SIZE;
    this.#maxDepth = depthLimit(opts.maxDepth);
    const serializer = opts.serializer;
    this.#serializer = serializer as SerializerOption | undefined;
    // A built-in one's name is all there is to check; it is made when a connection first needs it.
    const builtIn = serializer === undefined || serializer === 'msgpack' || serializer === 'json' || serializer === 'pickle';
    this.#checked = builtIn ? null : resolveSerializer(this.#serializer, this.#maxDepth);
  }

  /** A serializer of its own for one connection (a built-in one reuses its buffers across that connection's messages). */
  newSerializer(): ResolvedSerializer {
    const checked = this.#checked;
    if (checked === null) return resolveSerializer(this.#serializer, this.#maxDepth);
    this.#checked = null;
    return checked;
  }
}

export function options<T extends object>(value: T | undefined | null, what: string): Partial<T> {
  if (value === undefined || value === null) return {};
  if (typeof value !== 'object') throw new TypeError(`${what} must be an object, not ${describe(value)}`);
  return value;
}

export function describe(value: unknown): string {
  if (value === null) return 'null';
  if (typeof value === 'string') return `the string ${JSON.stringify(value.length > 40 ? value.slice(0, 40) + '…' : value)}`;
  if (typeof value === 'object' || typeof value === 'function') {
    const name = (value as object).constructor?.name;
    return name ? `a ${name}` : typeof value;
  }
  return `${typeof value} ${String(value)}`;
}

/**
 * Rejects option names the entry point does not know, naming the closest
 * known one: a misspelled `authKey` silently ignored would mean a connection
 * that proceeds unauthenticated. Inherited properties are not looked at (an
 * options object may be a class instance with methods on its prototype).
 */
export function checkOptionNames(opts: object, known: readonly string[], what: string): void {
  for (const name of Object.keys(opts)) {
    if (known.includes(name)) continue;
    const near = nearest(name, known);
    throw new TypeError(`unknown option '${name}'${near === null ? '' : ` (did you mean '${near}'?)`} in ${what}`);
  }
}

/**
 * `{ authkey: undefined }` means no authentication, as a left-out option and
 * `null` (Python's `None`) do, but it is also what `authkey: process.env.KEY`
 * gives when the variable is unset, so it is said once per process as a
 * warning (`MPCONN_UNDEFINED_AUTHKEY`): turning authentication off should be
 * visible. Refusing it would surprise code that passes `undefined` for "none",
 * as TypeScript's optional properties invite.
 */
export function noteUndefinedAuthkey(opts: object, what: string): void {
  if (undefinedAuthkeyNoted || !Object.prototype.hasOwnProperty.call(opts, 'authkey')) return;
  if ((opts as { authkey?: unknown }).authkey !== undefined) return;
  undefinedAuthkeyNoted = true;
  process.emitWarning(
    `authkey is undefined in ${what} (an unset environment variable?), so the connection is not authenticated; ` +
      'pass a key, or null to say there is none',
    { code: 'MPCONN_UNDEFINED_AUTHKEY' },
  );
}
let undefinedAuthkeyNoted = false;

/** The known name closest to `name` (case-insensitive edit distance), if any is close enough to be a likely typo. */
function nearest(name: string, known: readonly string[]): string | null {
  const lower = name.toLowerCase();
  let best: string | null = null;
  let bestDistance = Infinity;
  for (const candidate of known) {
    const d = editDistance(lower, candidate.toLowerCase());
    if (d < bestDistance) {
      best = candidate;
      bestDistance = d;
    }
  }
  return bestDistance <= Math.max(2, Math.floor(name.length / 3)) ? best : null;
}

function editDistance(a: string, b: string): number {
  let prev = Array.from({ length: b.length + 1 }, (_, j) => j);
  for (let i = 1; i <= a.length; i++) {
    const row = [i];
    for (let j = 1; j <= b.length; j++) {
      row[j] = Math.min(prev[j]! + 1, row[j - 1]! + 1, prev[j - 1]! + (a[i - 1] === b[j - 1] ? 0 : 1));
    }
    prev = row;
  }
  return prev[b.length]!;
}
