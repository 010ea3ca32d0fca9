/**
 * Python's view of the values a served call receives (decoded losslessly:
 * `Tuple` for tuples, `PyFloat` for integral floats, `Map` for dicts,
 * records for bytearray, frozenset, slice and range): argument binding,
 * type names, truthiness, integers, timeouts, slices and iteration.
 */
import { Kwargs } from '../protocol.js';
import { PyComplex, PyFloat, PyGlobal, PyObject, Tuple } from '../../serializers/index.js';
import { raise } from './errors.js';

/** One parameter of a Python signature; `undefined` as a default makes it required. */
export interface Param {
  readonly name: string;
  readonly default?: unknown;
  /** Only by keyword (after `*` in the signature). */
  readonly keywordOnly?: boolean;
}

/** What `bind` returns for a parameter that was not given and has no default. */
const REQUIRED = Symbol('required');

/**
 * Python's argument binding: `args` may end with one `Kwargs` (the call's
 * keywords). Returns the values in parameter order. JS `undefined` counts as
 * not given, so a Node caller can skip a parameter.
 */
export function bind(fname: string, args: readonly unknown[], params: readonly Param[]): unknown[] {
  const simple = bindPositional(args, params);
  if (simple !== null) return simple;
  let positional = args;
  let keywords: Kwargs | undefined;
  if (args.length > 0 && args[args.length - 1] instanceof Kwargs) {
    keywords = args[args.length - 1] as Kwargs;
    positional = args.slice(0, -1);
  }
  const byPosition = params.filter((p) => p.keywordOnly !== true);
  if (positional.length > byPosition.length) {
    throw raise.TypeError(
      byPosition.length === 0
        ? `${fname}() takes no positional arguments`
        : `${fname}() takes at most ${byPosition.length} argument${byPosition.length === 1 ? '' : 's'} (${positional.length} given)`,
    );
  }
  const values: unknown[] = params.map((p) => ('default' in p ? p.default : REQUIRED));
  const given = new Set<string>();
  for (let i = 0; i < positional.length; i++) {
    if (positional[i] === undefined) continue;
    const index = params.indexOf(byPosition[i]!);
    values[index] = positional[i];
    given.add(byPosition[i]!.name);
  }
  if (keywords !== undefined) {
    for (const key of Object.keys(keywords)) {
      const index = params.findIndex((p) => p.name === key);
      if (index < 0) throw raise.TypeError(`${fname}() got an unexpected keyword argument '${key}'`);
      if (given.has(key)) throw raise.TypeError(`${fname}() got multiple values for argument '${key}'`);
      if (keywords[key] !== undefined) values[index] = keywords[key];
    }
  }
  const missing = params.filter((_, i) => values[i] === REQUIRED);
  if (missing.length > 0) {
    throw raise.TypeError(`${fname}() missing required argument '${missing[0]!.name}'`);
  }
  return values;
}

/**
 * The common case of `bind`, without its allocations (a served call's hot
 * path): no keywords, every argument given by position to a positional
 * parameter, every parameter left out has a default. `null` otherwise, and
 * `bind` binds (and reports) the general way.
 */
function bindPositional(args: readonly unknown[], params: readonly Param[]): unknown[] | null {
  const n = args.length;
  if (n > params.length || (n > 0 && args[n - 1] instanceof Kwargs)) return null;
  const values = new Array<unknown>(params.length);
  for (let i = 0; i < params.length; i++) {
    const p = params[i]!;
    if (i < n) {
      if (p.keywordOnly === true || args[i] === undefined) return null;
      values[i] = args[i];
    } else if ('default' in p) {
      values[i] = p.default;
    } else {
      return null;
    }
  }
  return values;
}

/** Python's `type(v).__name__`. */
export function typeName(v: unknown): string {
  if (v === null || v === undefined) return 'NoneType';
  switch (typeof v) {
    case 'boolean':
      return 'bool';
    case 'number':
      return Number.isInteger(v) && !Object.is(v, -0) ? 'int' : 'float';
    case 'bigint':
      return 'int';
    case 'string':
      return 'str';
    default:
      break;
  }
  if (v instanceof PyFloat) return 'float';
  if (v instanceof Tuple) return 'tuple';
  if (Array.isArray(v)) return 'list';
  if (v instanceof Uint8Array) return 'bytes';
  if (v instanceof Map) return 'dict';
  if (v instanceof Set) return 'set';
  if (v instanceof PyComplex) return 'complex';
  if (v instanceof PyGlobal) return 'type';
  if (v instanceof PyObject) {
    const cls = recordClass(v);
    return cls === null ? 'object' : cls.name.slice(cls.name.lastIndexOf('.') + 1);
  }
  if (typeof v === 'object' && Object.getPrototypeOf(v) === Object.prototype) return 'dict';
  return 'object';
}

/** The class a record instantiates (`builtins.slice` for a slice). */
export function recordClass(v: PyObject): PyGlobal | null {
  let callable: PyGlobal | PyObject = v.callable;
  if (v.kind === 'build') return callable instanceof PyObject ? recordClass(callable) : callable;
  while (callable instanceof PyObject) callable = callable.callable;
  return callable;
}

declare const recordBrand: unique symbol;
/** A record known to be of one class; branded so that a failed test does not rule out other records. */
export type RecordOf = PyObject & { readonly [recordBrand]: true };

/** Whether `v` is the record of `module.name(...)`. */
export function isRecordOf(v: unknown, module: string, name: string): v is RecordOf {
  if (!(v instanceof PyObject)) return false;
  const cls = v.callable;
  return cls instanceof PyGlobal && cls.module === module && cls.name === name && v.kind !== 'build';
}

/** Python's `bool(v)`. */
export function truthy(v: unknown): boolean {
  if (v === null || v === undefined) return false;
  switch (typeof v) {
    case 'boolean':
      return v;
    case 'number':
      return v !== 0; // NaN is true, as in Python
    case 'bigint':
      return v !== 0n;
    case 'string':
      return v.length > 0;
    default:
      break;
  }
  if (v instanceof PyFloat) return v.value !== 0;
  if (Array.isArray(v) || v instanceof Uint8Array) return v.length > 0;
  if (v instanceof Map || v instanceof Set) return v.size > 0;
  if (v instanceof PyComplex) return v.real !== 0 || v.imag !== 0;
  if (typeof v === 'object' && Object.getPrototypeOf(v) === Object.prototype) return Object.keys(v).length > 0;
  return true;
}

/** An int-like value (int, bool; Python's `__index__`) as a number or bigint, or `null`. */
export function asInt(v: unknown): number | bigint | null {
  if (typeof v === 'boolean') return v ? 1 : 0;
  if (typeof v === 'number') return Number.isInteger(v) && !Object.is(v, -0) ? v : null;
  if (typeof v === 'bigint') return v;
  return null;
}

/** An index as a safe JS number, clamping huge ints (past any list's length either way); `what` names the TypeError. */
export function toIndex(v: unknown, what: (type: string) => string): number {
  const n = asInt(v);
  if (n === null) throw raise.TypeError(what(typeName(v)));
  if (typeof n === 'bigint') return n > 0n ? Number.MAX_SAFE_INTEGER : Number.MIN_SAFE_INTEGER;
  return n;
}

/** A real number (int, bool, float) as a JS number, or `null`. */
export function asReal(v: unknown): number | null {
  if (typeof v === 'number') return v;
  if (typeof v === 'boolean') return v ? 1 : 0;
  if (typeof v === 'bigint') return Number(v);
  if (v instanceof PyFloat) return v.value;
  return null;
}

/** A timeout in seconds as Python passes it: `None` is `null` (forever), else a real number. */
export function toSeconds(v: unknown, fname: string): number | null {
  if (v === null || v === undefined) return null;
  const s = asReal(v);
  if (s === null) throw raise.TypeError(`${fname}(): timeout must be a number or None, not '${typeName(v)}'`);
  // What CPython's time conversion raises for a NaN timeout (a lock's acquire).
  if (Number.isNaN(s)) throw raise.ValueError('Invalid value NaN (not a number)');
  return s;
}

/** A `slice` argument (pickled as the record `builtins.slice(start, stop, step)`), or `null`. */
export function sliceOf(v: unknown): { start: unknown; stop: unknown; step: unknown } | null {
  if (!isRecordOf(v, 'builtins', 'slice') || v.args.length < 1 || v.args.length > 3) return null;
  const a = v.args;
  if (a.length === 1) return { start: null, stop: a[0], step: null };
  return { start: a[0], stop: a[1], step: a.length === 3 ? a[2] : null };
}

/** The indices a slice selects from a sequence of `length` items (Python's `slice.indices`). */
export function sliceIndices(slice: { start: unknown; stop: unknown; step: unknown }, length: number): number[] {
  const part = (v: unknown): number | null => {
    if (v === null || v === undefined) return null;
    return toIndex(v, () => 'slice indices must be integers or None or have an __index__ method');
  };
  const step = part(slice.step) ?? 1;
  if (step === 0) throw raise.ValueError('slice step cannot be zero');
  const clamp = (v: number | null, dflt: number, lo: number, hi: number): number => {
    if (v === null) return dflt;
    const x = v < 0 ? v + length : v;
    return Math.min(Math.max(x, lo), hi);
  };
  const start = step > 0 ? clamp(part(slice.start), 0, 0, length) : clamp(part(slice.start), length - 1, -1, length - 1);
  const stop = step > 0 ? clamp(part(slice.stop), length, 0, length) : clamp(part(slice.stop), -1, -1, length - 1);
  const out: number[] = [];
  if (step > 0) for (let i = start; i < stop; i += step) out.push(i);
  else for (let i = start; i > stop; i += step) out.push(i);
  return out;
}

/** A resolved non-negative index for `seq[i]`, or -1 when out of range. */
export function itemIndex(i: number, length: number): number {
  const j = i < 0 ? i + length : i;
  return j >= 0 && j < length ? j : -1;
}

/** More items than any argument may expand to: a `range(10**12)` must not take the server down. */
export const MAX_ITEMS = 50_000_000;

/** The items of a `range` record, or `null`. */
function rangeItems(v: PyObject): number[] | null {
  const ints = v.args.map(asInt);
  if (ints.length < 1 || ints.length > 3 || ints.some((n) => n === null)) return null;
  const [a, b, c] = ints.map(Number) as [number, number?, number?];
  const [start, stop, step] = ints.length === 1 ? [0, a, 1] : [a, b!, c ?? 1];
  if (step === 0) throw raise.ValueError('range() arg 3 must not be zero');
  const count = Math.max(0, Math.ceil((stop - start) / step));
  if (count > MAX_ITEMS) throw raise.MemoryError(`range of ${count} items is too large for this server`);
  const out: number[] = [];
  for (let i = 0; i < count; i++) out.push(start + i * step);
  return out;
}

/** Python's `list(v)` for the iterables a call can carry; a TypeError for the rest. */
export function iterate(v: unknown): unknown[] {
  if (Array.isArray(v)) return v.slice();
  if (typeof v === 'string') return Array.from(v);
  if (v instanceof Uint8Array) return Array.from(v);
  if (v instanceof Set) return [...v];
  if (v instanceof Map) return [...v.keys()];
  if (v instanceof PyObject) {
    if (isRecordOf(v, 'builtins', 'range')) {
      const items = rangeItems(v);
      if (items !== null) return items;
    }
    if (isRecordOf(v, 'builtins', 'frozenset') && Array.isArray(v.args[0])) return (v.args[0] as unknown[]).slice();
    if (isRecordOf(v, 'builtins', 'bytearray') && v.args[0] instanceof Uint8Array) return Array.from(v.args[0]);
    if (isRecordOf(v, 'array', 'array')) {
      const items = arrayRecordItems(v);
      if (items !== null) return items;
    }
    if (v.dictItems instanceof Map) return [...v.dictItems.keys()]; // OrderedDict and other dict subclasses
    if ((isRecordOf(v, 'builtins', 'reversed') || isRecordOf(v, 'builtins', 'iter')) && Array.isArray(v.args[0])) {
      const items = (v.args[0] as unknown[]).slice();
      return isRecordOf(v, 'builtins', 'reversed') ? items.reverse() : items;
    }
  }
  if (typeof v === 'object' && v !== null && Object.getPrototypeOf(v) === Object.prototype) return Object.keys(v);
  if (typeof v === 'object' && v !== null && typeof (v as Iterable<unknown>)[Symbol.iterator] === 'function') {
    return Array.from(v as Iterable<unknown>);
  }
  throw raise.TypeError(`'${typeName(v)}' object is not iterable`);
}

/** The entries of a mapping argument (dict, OrderedDict record, plain object), or `null` when it is not one. */
export function mappingEntries(v: unknown): [unknown, unknown][] | null {
  if (v instanceof Map) return [...v.entries()];
  if (v instanceof PyObject && v.dictItems instanceof Map && v.args.length === 0) return [...v.dictItems.entries()];
  if (v instanceof PyObject && v.dictItems !== undefined && !(v.dictItems instanceof Map) && v.args.length === 0) {
    return Object.entries(v.dictItems);
  }
  if (typeof v === 'object' && v !== null && Object.getPrototypeOf(v) === Object.prototype) return Object.entries(v);
  return null;
}

/** Item sizes of `array.array` typecodes on the 64-bit Unix machines CPython clients run on (wchar_t is 4 bytes). */
const ARRAY_ITEM_SIZES: Readonly<Record<string, number>> = {
  b: 1, B: 1, h: 2, H: 2, i: 4, I: 4, l: 8, L: 8, q: 8, Q: 8, f: 4, d: 8, u: 4, w: 4,
};

/**
 * The items of an `array.array` record. CPython's managers pickle an array as
 * `array.array(typecode, a.tobytes())`: machine bytes, read here as
 * little-endian; a record built from a list (`array.array(typecode, [...])`) is read as is.
 */
export function arrayRecordItems(v: PyObject): unknown[] | null {
  const [typecode, data] = v.args;
  if (typeof typecode !== 'string') return null;
  if (Array.isArray(data)) return data.slice();
  if (typeof data === 'string') return Array.from(data);
  if (!(data instanceof Uint8Array)) return data === undefined ? [] : null;
  const size = ARRAY_ITEM_SIZES[typecode];
  if (size === undefined) return null;
  if (data.length % size !== 0) throw raise.ValueError('bytes length not a multiple of item size');
  const view = new DataView(data.buffer, data.byteOffset, data.byteLength);
  const out: unknown[] = [];
  for (let at = 0; at < data.length; at += size) {
    switch (typecode) {
      case 'b': out.push(view.getInt8(at)); break;
      case 'B': out.push(view.getUint8(at)); break;
      case 'h': out.push(view.getInt16(at, true)); break;
      case 'H': out.push(view.getUint16(at, true)); break;
      case 'i': out.push(view.getInt32(at, true)); break;
      case 'I': out.push(view.getUint32(at, true)); break;
      case 'l': case 'q': out.push(normalize(view.getBigInt64(at, true))); break;
      case 'L': case 'Q': out.push(normalize(view.getBigUint64(at, true))); break;
      case 'f': out.push(view.getFloat32(at, true)); break;
      case 'd': out.push(view.getFloat64(at, true)); break;
      default: {
        const cp = view.getUint32(at, true);
        if (cp > 0x10ffff) throw raise.ValueError(`character U+${cp.toString(16)} is not in range [U+0000; U+10ffff]`);
        out.push(String.fromCodePoint(cp));
      }
    }
  }
  return out;
}

function normalize(n: bigint): number | bigint {
  return n >= BigInt(Number.MIN_SAFE_INTEGER) && n <= BigInt(Number.MAX_SAFE_INTEGER) ? Number(n) : n;
}
