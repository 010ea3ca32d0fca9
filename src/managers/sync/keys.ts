/**
 * Python equality for the values served objects hold: dict keys that compare
 * as Python compares them (`1 == 1.0 == True`, `(1, 2)` tuples, `b'a'`,
 * frozensets in any order), `==` for `list.index` and friends, and `<` for
 * `list.sort`. Bounded in depth: a pickle can nest far deeper than any
 * recursion should go.
 */
import { PyComplex, PyFloat, PyGlobal, PyObject, Tuple } from '../../serializers/index.js';
import { raise } from './errors.js';
import { isRecordOf, typeName } from './values.js';

/** Deeper than CPython's own recursion limit lets `hash()` or `==` go. */
const MAX_DEPTH = 1000;

function tooDeep(): never {
  throw raise.RecursionError('maximum recursion depth exceeded in comparison');
}

/** A number-like value's real part and imaginary part, or `null` for anything else. */
function numeric(v: unknown): [number | bigint, number] | null {
  switch (typeof v) {
    case 'number':
      return [v, 0];
    case 'bigint':
      return [v, 0];
    case 'boolean':
      return [v ? 1 : 0, 0];
    default:
      if (v instanceof PyFloat) return [v.value, 0];
      if (v instanceof PyComplex) return [v.real, v.imag];
      return null;
  }
}

let nanCount = 0;
/** Identity-hashed objects (Node-side values that are not plain data), by object. */
const identities = new WeakMap<object, number>();
let identityCount = 0;

function realKey(x: number | bigint): string {
  if (typeof x === 'bigint') return `i${x}`;
  // A NaN equals nothing, not even another NaN: each gets a key of its own.
  if (Number.isNaN(x)) return `nan${++nanCount}`;
  if (Number.isInteger(x)) return `i${BigInt(x)}`;
  return `f${x}`;
}

function join(tag: string, keys: string[]): string {
  let out = `${tag}${keys.length}|`;
  for (const k of keys) out += `${k.length}:${k}`;
  return out;
}

/** The bytes of a bytes value or a `bytearray` record, else `null`. */
function bytesOf(v: unknown): Uint8Array | null {
  if (v instanceof Uint8Array) return v;
  if (isRecordOf(v, 'builtins', 'bytearray') && v.args.length === 1 && v.args[0] instanceof Uint8Array) return v.args[0];
  return null;
}

/** The items of a set or a `frozenset` record, else `null`. */
function setItems(v: unknown): unknown[] | null {
  if (v instanceof Set) return [...v];
  if (isRecordOf(v, 'builtins', 'frozenset') && v.args.length <= 1) {
    return v.args.length === 0 ? [] : Array.isArray(v.args[0]) ? v.args[0] : null;
  }
  return null;
}

/**
 * A string that two values share exactly when Python's dict would take them
 * for the same key. Throws `TypeError: unhashable type` as Python does for
 * lists, dicts, sets and bytearrays.
 */
export function hashKey(v: unknown): string {
  return keyOf(v, 0, true);
}

/** `strict`: Python's hashability rules; off inside arbitrary records, which are compared by their contents. */
function keyOf(v: unknown, depth: number, strict: boolean): string {
  if (depth > MAX_DEPTH) tooDeep();
  if (v === null || v === undefined) return 'N';
  if (typeof v === 'string') return `s${v}`;
  // The common int key, without the pair and the BigInt below (-0 gives 'i0' either way).
  if (typeof v === 'number' && Number.isSafeInteger(v)) return `i${v}`;
  const num = numeric(v);
  if (num !== null) {
    const [re, im] = num;
    return im === 0 ? realKey(re) : `c${realKey(re)},${realKey(im)}`;
  }
  if (typeof v !== 'object') return `?${String(v)}`;
  if (v instanceof Uint8Array) return `b${Buffer.from(v.buffer, v.byteOffset, v.byteLength).toString('latin1')}`;
  if (v instanceof Tuple || (!strict && Array.isArray(v))) {
    return join(v instanceof Tuple ? 't' : 'l', (v as unknown[]).map((item) => keyOf(item, depth + 1, strict)));
  }
  const items = setItems(v);
  if (items !== null && (!strict || !(v instanceof Set))) {
    return join('F', items.map((item) => keyOf(item, depth + 1, strict)).sort());
  }
  if (v instanceof PyGlobal) return `g${v.module}\0${v.name}`;
  const bytes = bytesOf(v);
  if (strict && (Array.isArray(v) || v instanceof Map || v instanceof Set || bytes !== null || isPlainObject(v))) {
    throw raise.TypeError(`unhashable type: '${typeName(v)}'`);
  }
  if (bytes !== null) return `B${Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength).toString('latin1')}`;
  if (v instanceof Map || isPlainObject(v)) {
    const entries = v instanceof Map ? [...v.entries()] : Object.entries(v);
    return join('d', entries.map(([k, value]) => join('', [keyOf(k, depth + 1, false), keyOf(value, depth + 1, false)])).sort());
  }
  if (v instanceof PyObject) {
    // Records of other classes (dates, decimals, proxies' tokens …) are equal when built from equal parts.
    const parts = [keyOf(v.callable, depth + 1, false), v.kind, keyOf(v.args, depth + 1, false)];
    if (v.state !== undefined) parts.push(keyOf(v.state, depth + 1, false));
    if (v.kwargs !== undefined) parts.push(keyOf(v.kwargs, depth + 1, false));
    if (v.listItems !== undefined) parts.push(keyOf(v.listItems, depth + 1, false));
    if (v.dictItems !== undefined) parts.push(keyOf(v.dictItems, depth + 1, false));
    return join('o', parts);
  }
  let id = identities.get(v);
  if (id === undefined) identities.set(v, (id = ++identityCount));
  return `x${id}`;
}

function isPlainObject(v: unknown): v is Record<string, unknown> {
  if (typeof v !== 'object' || v === null) return false;
  const proto = Object.getPrototypeOf(v) as unknown;
  return proto === Object.prototype || proto === null;
}

function dictEntries(v: unknown): [unknown, unknown][] | null {
  if (v instanceof Map) return [...v.entries()];
  if (isPlainObject(v)) return Object.entries(v);
  return null;
}

/** Python's `a == b` for plain data (and records, by their parts). */
export function pyEquals(a: unknown, b: unknown): boolean {
  return equals(a, b, 0);
}

function equals(a: unknown, b: unknown, depth: number): boolean {
  if (depth > MAX_DEPTH) tooDeep();
  if (typeof a === 'object' && a !== null && a === b) return true; // Python compares identical containers equal first
  const na = numeric(a);
  const nb = numeric(b);
  if (na !== null || nb !== null) {
    if (na === null || nb === null) return false;
    // Loose equality compares a bigint and a number exactly, as Python compares int and float.
    return na[0] == nb[0] && na[1] === nb[1];
  }
  if (a === null || a === undefined || b === null || b === undefined) return (a ?? null) === (b ?? null);
  if (typeof a === 'string' || typeof b === 'string') return a === b;
  const ba = bytesOf(a);
  const bb = bytesOf(b);
  if (ba !== null || bb !== null) return ba !== null && bb !== null && Buffer.compare(ba, bb) === 0;
  if (Array.isArray(a) || Array.isArray(b)) {
    if (!Array.isArray(a) || !Array.isArray(b) || a instanceof Tuple !== b instanceof Tuple || a.length !== b.length) {
      return false;
    }
    for (let i = 0; i < a.length; i++) if (!equals(a[i], b[i], depth + 1)) return false;
    return true;
  }
  const sa = setItems(a);
  const sb = setItems(b);
  if (sa !== null || sb !== null) {
    if (sa === null || sb === null || sa.length !== sb.length) return false;
    const keys = new Set(sb.map((item) => keyOf(item, depth + 1, true)));
    return sa.every((item) => keys.has(keyOf(item, depth + 1, true)));
  }
  const da = dictEntries(a);
  const db = dictEntries(b);
  if (da !== null || db !== null) {
    if (da === null || db === null || da.length !== db.length) return false;
    const index = new Map(db.map(([k, v]) => [keyOf(k, depth + 1, true), v]));
    return da.every(([k, v]) => {
      const key = keyOf(k, depth + 1, true);
      return index.has(key) && equals(v, index.get(key), depth + 1);
    });
  }
  if (a instanceof PyGlobal || b instanceof PyGlobal) {
    return a instanceof PyGlobal && b instanceof PyGlobal && a.module === b.module && a.name === b.name;
  }
  if (a instanceof PyObject && b instanceof PyObject) {
    return keyOf(a, depth, false) === keyOf(b, depth, false);
  }
  return a === b;
}

/** A str compared by code points (JS `<` compares UTF-16 units, which orders astral characters differently). */
function compareStrings(a: string, b: string): number {
  const n = Math.min(a.length, b.length);
  for (let i = 0; i < n; i++) {
    const x = a.codePointAt(i)!;
    const y = b.codePointAt(i)!;
    if (x !== y) return x < y ? -1 : 1;
    if (x > 0xffff) i++;
  }
  return a.length === b.length ? 0 : a.length < b.length ? -1 : 1;
}

/** Python's `a < b` for the types that order; a TypeError as Python's for the rest. */
export function pyLess(a: unknown, b: unknown): boolean {
  return less(a, b, 0);
}

function less(a: unknown, b: unknown, depth: number): boolean {
  if (depth > MAX_DEPTH) tooDeep();
  const na = numeric(a);
  const nb = numeric(b);
  if (na !== null && nb !== null && na[1] === 0 && nb[1] === 0 && !(a instanceof PyComplex) && !(b instanceof PyComplex)) {
    return na[0] < nb[0];
  }
  if (typeof a === 'string' && typeof b === 'string') return compareStrings(a, b) < 0;
  const ba = bytesOf(a);
  const bb = bytesOf(b);
  if (ba !== null && bb !== null) return Buffer.compare(ba, bb) < 0;
  if (Array.isArray(a) && Array.isArray(b) && a instanceof Tuple === b instanceof Tuple) {
    const n = Math.min(a.length, b.length);
    for (let i = 0; i < n; i++) {
      if (!equals(a[i], b[i], depth + 1)) return less(a[i], b[i], depth + 1);
    }
    return a.length < b.length;
  }
  const sa = setItems(a);
  const sb = setItems(b);
  if (sa !== null && sb !== null) {
    // Proper subset, as Python orders sets.
    const keys = new Set(sb.map((item) => keyOf(item, depth + 1, true)));
    return sa.length < sb.length && sa.every((item) => keys.has(keyOf(item, depth + 1, true)));
  }
  throw raise.TypeError(`'<' not supported between instances of '${typeName(a)}' and '${typeName(b)}'`);
}

/**
 * A dict with Python's key equality: insertion-ordered, `1`, `1.0` and
 * `true` one key, tuples by value. Like Python, a key that is set again keeps
 * the key object it was first stored with.
 */
export class PyDict {
  readonly #entries = new Map<string, [unknown, unknown]>();
  /** Keys in insertion order with the generation they were inserted in, for an O(1) `popLast` (stale ones are skipped). */
  #order: [string, number][] = [];
  readonly #generation = new Map<string, number>();
  #next = 0;

  constructor(entries: Iterable<readonly [unknown, unknown]> = []) {
    for (const [key, value] of entries) this.set(key, value);
  }

  get size(): number {
    return this.#entries.size;
  }

  /** The stored `[key, value]`, or `undefined`. Throws TypeError for an unhashable key. */
  lookup(key: unknown): [unknown, unknown] | undefined {
    return this.#entries.get(hashKey(key));
  }

  has(key: unknown): boolean {
    return this.#entries.has(hashKey(key));
  }

  get(key: unknown): unknown {
    return this.#entries.get(hashKey(key))?.[1];
  }

  set(key: unknown, value: unknown): this {
    const k = hashKey(key);
    const entry = this.#entries.get(k);
    if (entry !== undefined) {
      entry[1] = value;
    } else {
      this.#entries.set(k, [key, value]);
      const generation = this.#next++;
      this.#generation.set(k, generation);
      this.#order.push([k, generation]);
      if (this.#order.length > 2 * this.#entries.size + 64) this.#compact();
    }
    return this;
  }

  /** Removes `key`; returns the entry it had, or `undefined`. */
  delete(key: unknown): [unknown, unknown] | undefined {
    const k = hashKey(key);
    const entry = this.#entries.get(k);
    if (entry !== undefined) {
      this.#entries.delete(k);
      this.#generation.delete(k);
    }
    return entry;
  }

  /** Removes and returns the last inserted entry (`dict.popitem`). */
  popLast(): [unknown, unknown] | undefined {
    while (this.#order.length > 0) {
      const [k, generation] = this.#order.pop()!;
      if (this.#generation.get(k) !== generation) continue;
      const entry = this.#entries.get(k)!;
      this.#entries.delete(k);
      this.#generation.delete(k);
      return entry;
    }
    return undefined;
  }

  clear(): void {
    this.#entries.clear();
    this.#generation.clear();
    this.#order = [];
  }

  #compact(): void {
    this.#order = this.#order.filter(([k, generation]) => this.#generation.get(k) === generation);
  }

  /** Live, as a Map's: entries added while iterating are visited, deleted ones skipped. */
  *entries(): IterableIterator<[unknown, unknown]> {
    for (const [key, value] of this.#entries.values()) yield [key, value];
  }

  *keys(): IterableIterator<unknown> {
    for (const entry of this.#entries.values()) yield entry[0];
  }

  *values(): IterableIterator<unknown> {
    for (const entry of this.#entries.values()) yield entry[1];
  }

  [Symbol.iterator](): IterableIterator<[unknown, unknown]> {
    return this.entries();
  }

  /** A `Map` of the same entries in the same order, which pickles as the dict. */
  toMap(): Map<unknown, unknown> {
    const map = new Map<unknown, unknown>();
    // A Map key of -0 becomes +0 (SameValueZero), which pickles as the int 0:
    // Python's float key -0.0 stays a float as a PyFloat.
    for (const [key, value] of this.#entries.values()) map.set(Object.is(key, -0) ? new PyFloat(-0) : key, value);
    return map;
  }
}
