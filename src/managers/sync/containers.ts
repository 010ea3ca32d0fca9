/**
 * The containers `SyncManager` serves: `dict`, `list`, `Namespace`, `Value`,
 * `Array`, and the `Iterator` a dict's `__iter__` hands out. They hold the
 * values exactly as they were decoded (losslessly: tuples stay `Tuple`,
 * integral floats `PyFloat` …), so clients get back what they stored; keys
 * and `==` follow Python's equality.
 */
import { Kwargs } from '../protocol.js';
import { PyFloat, PyGlobal, PyObject, Tuple } from '../../serializers/index.js';
import { raise } from './errors.js';
import { PyDict, pyEquals, pyLess } from './keys.js';
import { pyRepr, reprStr } from './repr.js';
import {
  asInt,
  asReal,
  bind,
  isRecordOf,
  itemIndex,
  iterate,
  mappingEntries,
  MAX_ITEMS,
  sliceIndices,
  sliceOf,
  toIndex,
  truthy,
  typeName,
} from './values.js';

/** Positional arguments and the trailing keywords of a call. */
function splitKwargs(args: readonly unknown[]): [unknown[], Record<string, unknown>] {
  if (args.length > 0 && args[args.length - 1] instanceof Kwargs) {
    const kw = args[args.length - 1] as Kwargs;
    const out: Record<string, unknown> = {};
    // Defined, not assigned: a keyword named `__proto__` (d.update(**{'__proto__': 1})) is a key like any other.
    for (const key of Object.keys(kw)) {
      Object.defineProperty(out, key, { value: kw[key], enumerable: true, writable: true, configurable: true });
    }
    return [args.slice(0, -1), out];
  }
  return [args.slice(), {}];
}

/** The pairs `dict(x)` / `dict.update(x)` take from `x`: a mapping, or an iterable of pairs. */
function pairsOf(v: unknown, fname: string): [unknown, unknown][] {
  if (v instanceof SharedDict) return [...v.__getvalue__().entries()];
  if (v instanceof PyDict) return [...v.entries()];
  const entries = mappingEntries(v);
  if (entries !== null) return entries;
  let items: unknown[];
  try {
    items = iterate(v);
  } catch {
    throw raise.TypeError(`'${typeName(v)}' object is not iterable`);
  }
  return items.map((item, i) => {
    let pair: unknown[];
    try {
      pair = iterate(item);
    } catch {
      throw raise.TypeError(`cannot convert ${fname} sequence element #${i} to a sequence`);
    }
    if (pair.length !== 2) {
      throw raise.ValueError(`${fname} sequence element #${i} has length ${pair.length}; 2 is required`);
    }
    return [pair[0], pair[1]];
  });
}

/**
 * A dict shared with Python clients (served for `m.dict()`): keys compare by
 * Python equality (`1`, `1.0` and `True` are one key; tuples by value) and
 * keep their insertion order; `__iter__` gives a `SharedIterator`.
 *
 * @example
 * ```ts
 * const d = new SharedDict(new Map([['a', 1]]));
 * d.__setitem__(new Tuple(1, 2), 'pair');
 * d.__getitem__(new Tuple(1, 2)); // 'pair'
 * String(d);                       // "{'a': 1, (1, 2): 'pair'}"
 * ```
 */
export class SharedDict {
  /** The entries, with Python's key equality. */
  readonly #dict = new PyDict();

  /** Python's `dict(mapping_or_pairs=(), **kwds)`. */
  constructor(...args: unknown[]) {
    this.update(...args);
  }

  __getitem__(...args: unknown[]): unknown {
    const [key] = bind('__getitem__', args, [{ name: 'key' }]);
    const entry = this.#dict.lookup(key);
    if (entry === undefined) throw raise.KeyError(key);
    return entry[1];
  }

  __setitem__(...args: unknown[]): void {
    const [key, value] = bind('__setitem__', args, [{ name: 'key' }, { name: 'value' }]);
    this.#dict.set(key, value);
  }

  __delitem__(...args: unknown[]): void {
    const [key] = bind('__delitem__', args, [{ name: 'key' }]);
    if (this.#dict.delete(key) === undefined) throw raise.KeyError(key);
  }

  __contains__(...args: unknown[]): boolean {
    const [key] = bind('__contains__', args, [{ name: 'key' }]);
    return this.#dict.has(key);
  }

  __len__(): number {
    return this.#dict.size;
  }

  /** A new iterator over the keys (served as an `Iterator` proxy). */
  __iter__(): SharedIterator {
    return SharedIterator.overDict(this.#dict);
  }

  clear(): void {
    this.#dict.clear();
  }

  /** A shallow copy, as a `Map` (pickled as a dict). */
  copy(): Map<unknown, unknown> {
    return this.#dict.toMap();
  }

  /** `get(key, default=None)`. */
  get(...args: unknown[]): unknown {
    const [key, dflt] = bind('get', args, [{ name: 'key' }, { name: 'default', default: null }]);
    const entry = this.#dict.lookup(key);
    return entry === undefined ? dflt : entry[1];
  }

  /** The `(key, value)` pairs, as a list of tuples (what CPython's manager pickles `dict.items()` as). */
  items(): Tuple[] {
    return Array.from(this.#dict.entries(), ([k, v]) => new Tuple(k, v));
  }

  keys(): unknown[] {
    return [...this.#dict.keys()];
  }

  values(): unknown[] {
    return [...this.#dict.values()];
  }

  /** `pop(key[, default])`: KeyError when missing and no default. */
  pop(...args: unknown[]): unknown {
    const [positional] = splitKwargs(args);
    if (positional.length < 1 || positional.length > 2) {
      throw raise.TypeError(`pop expected at least 1 argument, got ${positional.length}`);
    }
    const entry = this.#dict.delete(positional[0]);
    if (entry !== undefined) return entry[1];
    if (positional.length === 2) return positional[1];
    throw raise.KeyError(positional[0]);
  }

  /** Removes and returns the last inserted `(key, value)`. */
  popitem(): Tuple {
    const entry = this.#dict.popLast();
    if (entry === undefined) throw raise.KeyError('popitem(): dictionary is empty');
    return new Tuple(entry[0], entry[1]);
  }

  /** `setdefault(key, default=None)`. */
  setdefault(...args: unknown[]): unknown {
    const [key, dflt] = bind('setdefault', args, [{ name: 'key' }, { name: 'default', default: null }]);
    const entry = this.#dict.lookup(key);
    if (entry !== undefined) return entry[1];
    this.#dict.set(key, dflt);
    return dflt;
  }

  /** `update([other], **kwds)`. */
  update(...args: unknown[]): void {
    const [positional, keywords] = splitKwargs(args);
    if (positional.length > 1) throw raise.TypeError(`update expected at most 1 argument, got ${positional.length}`);
    if (positional.length === 1 && positional[0] !== undefined) {
      for (const [k, v] of pairsOf(positional[0], 'dictionary update')) this.#dict.set(k, v);
    }
    for (const key of Object.keys(keywords)) this.#dict.set(key, keywords[key]);
  }

  /** The dict as a `Map` (`#GETVALUE`). */
  __getvalue__(): Map<unknown, unknown> {
    return this.#dict.toMap();
  }

  __repr__(): string {
    return pyRepr(this.#dict.toMap());
  }

  toString(): string {
    return this.__repr__();
  }
}

/**
 * The server side of an iterator proxy (Python's `IteratorProxy`): `__next__`
 * raises `StopIteration` at the end; over a dict, `RuntimeError` when the
 * dict changed size meanwhile, as Python's dict iterators do.
 *
 * @example
 * ```ts
 * const it = new SharedIterator(['a', 'b']);
 * it.__next__(); // 'a'
 * ```
 */
export class SharedIterator {
  readonly #next: () => IteratorResult<unknown>;
  readonly #kind: string;
  readonly #check: (() => void) | undefined;
  #done = false;

  /** `kind` is the Python type name errors mention (`dict_keyiterator`); `check` runs before each step. */
  constructor(items: Iterable<unknown>, kind = 'iterator', check?: () => void) {
    const it = items[Symbol.iterator]();
    this.#next = () => it.next();
    this.#kind = kind;
    this.#check = check;
  }

  /** An iterator over the live keys of `dict`. */
  static overDict(dict: PyDict): SharedIterator {
    const size = dict.size;
    return new SharedIterator(dict.keys(), 'dict_keyiterator', () => {
      if (dict.size !== size) throw raise.RuntimeError('dictionary changed size during iteration');
    });
  }

  __next__(...args: unknown[]): unknown {
    bind('__next__', args, []);
    if (this.#done) throw raise.StopIteration();
    this.#check?.();
    const step = this.#next();
    if (step.done === true) {
      this.#done = true;
      throw raise.StopIteration();
    }
    return step.value;
  }

  /** Generators' methods, which IteratorProxy exposes; a plain iterator has none of them. */
  send(): never {
    throw raise.AttributeError(`'${this.#kind}' object has no attribute 'send'`);
  }

  throw(): never {
    throw raise.AttributeError(`'${this.#kind}' object has no attribute 'throw'`);
  }

  close(): never {
    throw raise.AttributeError(`'${this.#kind}' object has no attribute 'close'`);
  }

  __repr__(): string {
    return `<${this.#kind} object>`;
  }

  toString(): string {
    return this.__repr__();
  }
}

/** `seq[i]` / `seq[a:b]` arguments of a list. */
function listIndex(v: unknown): number {
  return toIndex(v, (t) => `list indices must be integers or slices, not ${t}`);
}

function checkSize(n: number): void {
  if (n > MAX_ITEMS) throw raise.MemoryError(`a list of ${n} items is too large for this server`);
}

function repeatCount(v: unknown): number {
  const n = asInt(v);
  if (n === null) throw raise.TypeError(`can't multiply sequence by non-int of type '${typeName(v)}'`);
  return typeof n === 'bigint' ? (n > 0n ? Number.MAX_SAFE_INTEGER : 0) : Math.max(0, n);
}

/**
 * A list shared with Python clients (served for `m.list()`), with the
 * methods `ListProxy` calls; slices arrive as `slice` records.
 *
 * @example
 * ```ts
 * const list = new SharedList([1, 2, 3]);
 * list.append(new Tuple('a', 1.5));
 * list.__getitem__(-1); // Tuple ['a', 1.5]
 * String(list);        // "[1, 2, 3, ('a', 1.5)]"
 * ```
 */
export class SharedList {
  /** The items, as they were decoded. */
  items: unknown[];

  /** Python's `list(iterable=())`. */
  constructor(...args: unknown[]) {
    const [iterable] = bind('list', args, [{ name: 'iterable', default: null }]);
    this.items = iterable === null ? [] : iterate(iterable instanceof SharedList ? iterable.items : iterable);
  }

  __len__(): number {
    return this.items.length;
  }

  __getitem__(...args: unknown[]): unknown {
    const [index] = bind('__getitem__', args, [{ name: 'index' }]);
    const slice = sliceOf(index);
    if (slice !== null) return sliceIndices(slice, this.items.length).map((i) => this.items[i]);
    const i = itemIndex(listIndex(index), this.items.length);
    if (i < 0) throw raise.IndexError('list index out of range');
    return this.items[i];
  }

  __setitem__(...args: unknown[]): void {
    const [index, value] = bind('__setitem__', args, [{ name: 'index' }, { name: 'value' }]);
    const slice = sliceOf(index);
    if (slice === null) {
      const i = itemIndex(listIndex(index), this.items.length);
      if (i < 0) throw raise.IndexError('list assignment index out of range');
      this.items[i] = value;
      return;
    }
    let values: unknown[];
    try {
      values = iterate(value instanceof SharedList ? value.items : value);
    } catch {
      throw raise.TypeError('can only assign an iterable');
    }
    const step = slice.step === null || slice.step === undefined ? 1 : listIndex(slice.step);
    const indices = sliceIndices(slice, this.items.length);
    if (step === 1) {
      const start = indices.length > 0 ? indices[0]! : Math.min(Math.max(sliceStart(slice.start, this.items.length), 0), this.items.length);
      checkSize(this.items.length - indices.length + values.length);
      // Not splice(start, n, ...values): a spread of millions of arguments overflows the stack.
      this.items = this.items.slice(0, start).concat(values, this.items.slice(start + indices.length));
      return;
    }
    if (values.length !== indices.length) {
      throw raise.ValueError(
        `attempt to assign sequence of size ${values.length} to extended slice of size ${indices.length}`,
      );
    }
    indices.forEach((i, k) => (this.items[i] = values[k]));
  }

  __delitem__(...args: unknown[]): void {
    const [index] = bind('__delitem__', args, [{ name: 'index' }]);
    const slice = sliceOf(index);
    if (slice === null) {
      const i = itemIndex(listIndex(index), this.items.length);
      if (i < 0) throw raise.IndexError('list assignment index out of range');
      this.items.splice(i, 1);
      return;
    }
    const drop = new Set(sliceIndices(slice, this.items.length));
    this.items = this.items.filter((_, i) => !drop.has(i));
  }

  __contains__(...args: unknown[]): boolean {
    const [value] = bind('__contains__', args, [{ name: 'value' }]);
    return this.items.some((item) => pyEquals(item, value));
  }

  /** `list + other`: a new list; `other` must be a list. */
  __add__(...args: unknown[]): unknown[] {
    const [other] = bind('__add__', args, [{ name: 'value' }]);
    const items = other instanceof SharedList ? other.items : other;
    if (!Array.isArray(items) || items instanceof Tuple) {
      throw raise.TypeError(`can only concatenate list (not "${typeName(other)}") to list`);
    }
    checkSize(this.items.length + items.length);
    return this.items.concat(items);
  }

  __mul__(...args: unknown[]): unknown[] {
    const [n] = bind('__mul__', args, [{ name: 'value' }]);
    return this.#repeat(repeatCount(n));
  }

  __rmul__(...args: unknown[]): unknown[] {
    const [n] = bind('__rmul__', args, [{ name: 'value' }]);
    return this.#repeat(repeatCount(n));
  }

  /** `list *= n` in place; returns the list's items (Python returns the list itself, pickled by value). */
  __imul__(...args: unknown[]): unknown[] {
    const [n] = bind('__imul__', args, [{ name: 'value' }]);
    this.items = this.#repeat(repeatCount(n));
    return this.items;
  }

  /** A reversed iterator over a copy, as Python pickles `reversed(list)`. */
  __reversed__(): PyObject {
    return new PyObject(new PyGlobal('builtins', 'reversed'), [this.items.slice()]);
  }

  append(...args: unknown[]): void {
    const [value] = bind('append', args, [{ name: 'object' }]);
    checkSize(this.items.length + 1);
    this.items.push(value);
  }

  extend(...args: unknown[]): void {
    const [iterable] = bind('extend', args, [{ name: 'iterable' }]);
    const values = iterate(iterable instanceof SharedList ? iterable.items : iterable);
    checkSize(this.items.length + values.length);
    for (const v of values) this.items.push(v);
  }

  insert(...args: unknown[]): void {
    const [index, value] = bind('insert', args, [{ name: 'index' }, { name: 'object' }]);
    const n = this.items.length;
    let i = toIndex(index, (t) => `'${t}' object cannot be interpreted as an integer`);
    if (i < 0) i = Math.max(0, i + n);
    checkSize(n + 1);
    this.items.splice(Math.min(i, n), 0, value);
  }

  /** `pop(index=-1)`. */
  pop(...args: unknown[]): unknown {
    const [index] = bind('pop', args, [{ name: 'index', default: -1 }]);
    if (this.items.length === 0) throw raise.IndexError('pop from empty list');
    const i = itemIndex(toIndex(index, (t) => `'${t}' object cannot be interpreted as an integer`), this.items.length);
    if (i < 0) throw raise.IndexError('pop index out of range');
    return this.items.splice(i, 1)[0];
  }

  remove(...args: unknown[]): void {
    const [value] = bind('remove', args, [{ name: 'value' }]);
    const i = this.items.findIndex((item) => pyEquals(item, value));
    if (i < 0) throw raise.ValueError('list.remove(x): x not in list');
    this.items.splice(i, 1);
  }

  /** `index(value, start=0, stop=sys.maxsize)`. */
  index(...args: unknown[]): number {
    const [value, start, stop] = bind('index', args, [
      { name: 'value' },
      { name: 'start', default: 0 },
      { name: 'stop', default: Number.MAX_SAFE_INTEGER },
    ]);
    const n = this.items.length;
    const bound = (v: unknown): number => {
      const i = toIndex(v, () => 'slice indices must be integers or have an __index__ method');
      return i < 0 ? Math.max(0, i + n) : Math.min(i, n);
    };
    for (let i = bound(start), end = bound(stop); i < end; i++) {
      if (pyEquals(this.items[i], value)) return i;
    }
    throw raise.ValueError(`${pyRepr(value)} is not in list`);
  }

  count(...args: unknown[]): number {
    const [value] = bind('count', args, [{ name: 'value' }]);
    return this.items.reduce<number>((n, item) => (pyEquals(item, value) ? n + 1 : n), 0);
  }

  reverse(): void {
    this.items.reverse();
  }

  /** `sort(*, key=None, reverse=False)`: stable, with Python's `<`; `key` functions cannot run here. */
  sort(...args: unknown[]): void {
    const [key, reverse] = bind('sort', args, [
      { name: 'key', default: null, keywordOnly: true },
      { name: 'reverse', default: false, keywordOnly: true },
    ]);
    if (key !== null) {
      throw raise.TypeError('sort(key=...) cannot call a Python function in this server: sort a copy on the client');
    }
    const items = this.items.slice();
    const descending = truthy(reverse);
    // Python sorts in reverse by reversing, sorting and reversing again, which keeps equal items in order.
    if (descending) items.reverse();
    items.sort((a, b) => (pyLess(a, b) ? -1 : pyLess(b, a) ? 1 : 0));
    if (descending) items.reverse();
    this.items = items;
  }

  /** The items (`#GETVALUE`). */
  __getvalue__(): unknown[] {
    return this.items.slice();
  }

  __repr__(): string {
    return pyRepr(this.items);
  }

  toString(): string {
    return this.__repr__();
  }

  #repeat(n: number): unknown[] {
    if (n === 0 || this.items.length === 0) return [];
    checkSize(this.items.length * n);
    const out: unknown[] = [];
    for (let i = 0; i < n; i++) for (const item of this.items) out.push(item);
    return out;
  }
}

/** Where an empty step-1 slice assignment inserts. */
function sliceStart(start: unknown, length: number): number {
  if (start === null || start === undefined) return 0;
  const i = toIndex(start, () => 'slice indices must be integers or None or have an __index__ method');
  return i < 0 ? i + length : i;
}

const NAMESPACE = new PyGlobal('multiprocessing.managers', 'Namespace');
const VALUE = new PyGlobal('multiprocessing.managers', 'Value');
const ARRAY = new PyGlobal('array', 'array');

/**
 * Attributes shared with Python clients (served for `m.Namespace(**attrs)`;
 * Python's `multiprocessing.managers.Namespace`).
 *
 * @example
 * ```ts
 * const ns = new SharedNamespace(new Kwargs({ name: 'Bob' }));
 * ns.__setattr__('age', 42);
 * String(ns); // "Namespace(age=42, name='Bob')"
 * ```
 */
export class SharedNamespace {
  readonly attributes = new Map<string, unknown>();

  /** `Namespace(**attrs)`: keywords only (from Node, a plain object stands for them too). */
  constructor(...args: unknown[]) {
    const [positional, keywords] = splitKwargs(args);
    let attrs = keywords;
    const [first] = positional;
    const plain = typeof first === 'object' && first !== null && Object.getPrototypeOf(first) === Object.prototype;
    if (positional.length === 1 && plain && Object.keys(keywords).length === 0) {
      attrs = { ...(first as Record<string, unknown>) };
    } else if (positional.length > 0) {
      throw raise.TypeError(`Namespace() takes no positional arguments (${positional.length} given)`);
    }
    for (const key of Object.keys(attrs)) this.attributes.set(key, attrs[key]);
  }

  __getattribute__(...args: unknown[]): unknown {
    const [name] = bind('__getattribute__', args, [{ name: 'name' }]);
    const key = attributeName(name);
    if (this.attributes.has(key)) return this.attributes.get(key);
    if (key === '__dict__') return new Map(this.attributes);
    if (key === '__class__') return NAMESPACE;
    throw raise.AttributeError(`'Namespace' object has no attribute '${key}'`);
  }

  __setattr__(...args: unknown[]): void {
    const [name, value] = bind('__setattr__', args, [{ name: 'name' }, { name: 'value' }]);
    this.attributes.set(attributeName(name), value);
  }

  __delattr__(...args: unknown[]): void {
    const [name] = bind('__delattr__', args, [{ name: 'name' }]);
    const key = attributeName(name);
    if (!this.attributes.delete(key)) throw raise.AttributeError(`'Namespace' object has no attribute '${key}'`);
  }

  /** The `multiprocessing.managers.Namespace` itself, as Python pickles it (`#GETVALUE`). */
  __getvalue__(): PyObject {
    const state = this.attributes.size === 0 ? undefined : new Map<unknown, unknown>(this.attributes);
    return new PyObject(NAMESPACE, [], { kind: 'newobj', state });
  }

  /** `Namespace(a=1, b='x')`: public names only, sorted as Python sorts the `name=value` texts. */
  __repr__(): string {
    const parts: string[] = [];
    for (const [name, value] of this.attributes) if (!name.startsWith('_')) parts.push(`${name}=${pyRepr(value)}`);
    parts.sort((a, b) => (a < b ? -1 : a > b ? 1 : 0));
    return `Namespace(${parts.join(', ')})`;
  }

  toString(): string {
    return this.__repr__();
  }
}

function attributeName(name: unknown): string {
  if (typeof name !== 'string') throw raise.TypeError(`attribute name must be string, not '${typeName(name)}'`);
  return name;
}

/**
 * One value shared with Python clients (served for `m.Value(typecode,
 * value)`; Python's `multiprocessing.managers.Value`, which keeps the
 * typecode but does not check it).
 *
 * @example
 * ```ts
 * const counter = new SharedValue('i', 0);
 * counter.set(counter.get() as number + 1);
 * String(counter); // "Value('i', 1)"
 * ```
 */
export class SharedValue {
  readonly typecode: unknown;
  #value: unknown;

  /** `Value(typecode, value, lock=True)`. */
  constructor(...args: unknown[]) {
    const [typecode, value] = bind('Value', args, [{ name: 'typecode' }, { name: 'value' }, { name: 'lock', default: true }]);
    this.typecode = typecode;
    this.#value = value;
  }

  get(): unknown {
    return this.#value;
  }

  set(...args: unknown[]): void {
    const [value] = bind('set', args, [{ name: 'value' }]);
    this.#value = value;
  }

  get value(): unknown {
    return this.#value;
  }

  set value(value: unknown) {
    this.#value = value;
  }

  /** The `multiprocessing.managers.Value` itself, as Python pickles it (`#GETVALUE`). */
  __getvalue__(): PyObject {
    const state = new Map<unknown, unknown>([
      ['_typecode', this.typecode],
      ['_value', this.#value],
    ]);
    return new PyObject(VALUE, [], { kind: 'newobj', state });
  }

  __repr__(): string {
    return `Value(${pyRepr(this.typecode)}, ${pyRepr(this.#value)})`;
  }

  toString(): string {
    return this.__repr__();
  }
}

/** The integer ranges of `array.array` typecodes (64-bit Linux sizes), with the names CPython's OverflowErrors use. */
const INT_TYPES: Readonly<Record<string, [bigint, bigint, string]>> = {
  b: [-128n, 127n, 'signed char'],
  B: [0n, 255n, 'unsigned byte integer'],
  h: [-32768n, 32767n, 'signed short integer'],
  H: [0n, 65535n, 'unsigned short'],
  i: [-(2n ** 31n), 2n ** 31n - 1n, 'signed integer'],
  I: [0n, 2n ** 32n - 1n, 'unsigned int'],
  l: [-(2n ** 63n), 2n ** 63n - 1n, 'C long'],
  L: [0n, 2n ** 64n - 1n, 'C unsigned long'],
  q: [-(2n ** 63n), 2n ** 63n - 1n, 'C long long'],
  Q: [0n, 2n ** 64n - 1n, 'C unsigned long long'],
};

function arrayItem(typecode: string, v: unknown): unknown {
  const range = INT_TYPES[typecode];
  if (range !== undefined) {
    const n = asInt(v);
    if (n === null) throw raise.TypeError(`'${typeName(v)}' object cannot be interpreted as an integer`);
    const big = BigInt(n);
    if (big < range[0]) {
      throw raise.OverflowError(range[0] === 0n ? `can't convert negative value to ${range[2]}` : `${range[2]} is less than minimum`);
    }
    if (big > range[1]) throw raise.OverflowError(`${range[2]} is greater than maximum`);
    return typeof n === 'boolean' ? Number(n) : n;
  }
  if (typecode === 'f' || typecode === 'd') {
    const x = asReal(v);
    if (x === null) throw raise.TypeError(`must be real number, not ${typeName(v)}`);
    return typecode === 'f' ? Math.fround(x) : x;
  }
  // 'u' and 'w': one character
  if (typeof v !== 'string' || [...v].length !== 1) throw raise.TypeError('array item must be unicode character');
  return v;
}

/** A stored float as Python returns it: a float even when integral. */
function arrayOut(typecode: string, v: unknown): unknown {
  return (typecode === 'f' || typecode === 'd') && typeof v === 'number' && Number.isInteger(v) && !Object.is(v, -0)
    ? new PyFloat(v)
    : v;
}

const TYPECODES = new Set([...Object.keys(INT_TYPES), 'f', 'd', 'u', 'w']);

/**
 * A typed array shared with Python clients (served for `m.Array(typecode,
 * sequence)`; Python's `array.array`), checking and converting items as
 * `array.array` does.
 *
 * @example
 * ```ts
 * const a = new SharedArray('d', [1, 2.5]);
 * a.__getitem__(0); // PyFloat { value: 1 }: a float, as Python returns it
 * String(a);        // "array('d', [1.0, 2.5])"
 * ```
 */
export class SharedArray {
  readonly typecode: string;
  #items: unknown[];

  /** `Array(typecode, sequence, lock=True)`. */
  constructor(...args: unknown[]) {
    const [typecode, sequence] = bind('Array', args, [{ name: 'typecode' }, { name: 'sequence' }, { name: 'lock', default: true }]);
    if (typeof typecode !== 'string' || !TYPECODES.has(typecode)) {
      throw raise.ValueError('bad typecode (must be b, B, u, h, H, i, I, l, L, q, Q, f or d)');
    }
    this.typecode = typecode;
    if (typeof sequence === 'string' && typecode !== 'u' && typecode !== 'w') {
      throw raise.TypeError(`cannot use a str to initialize an array with typecode '${typecode}'`);
    }
    const items = iterate(sequence);
    checkSize(items.length);
    this.#items = items.map((v) => arrayItem(typecode, v));
  }

  __len__(): number {
    return this.#items.length;
  }

  __getitem__(...args: unknown[]): unknown {
    const [index] = bind('__getitem__', args, [{ name: 'index' }]);
    const slice = sliceOf(index);
    if (slice !== null) return this.#record(sliceIndices(slice, this.#items.length).map((i) => this.#items[i]));
    const i = itemIndex(toIndex(index, () => 'array indices must be integers'), this.#items.length);
    if (i < 0) throw raise.IndexError('array index out of range');
    return arrayOut(this.typecode, this.#items[i]);
  }

  __setitem__(...args: unknown[]): void {
    const [index, value] = bind('__setitem__', args, [{ name: 'index' }, { name: 'value' }]);
    const slice = sliceOf(index);
    if (slice === null) {
      const i = itemIndex(toIndex(index, () => 'array indices must be integers'), this.#items.length);
      if (i < 0) throw raise.IndexError('array assignment index out of range');
      this.#items[i] = arrayItem(this.typecode, value);
      return;
    }
    if (!isRecordOf(value, 'array', 'array')) {
      throw raise.TypeError(`can only assign array (not "${typeName(value)}") to array slice`);
    }
    if (value.args[0] !== this.typecode) throw raise.TypeError('bad argument type for built-in operation');
    const values = iterate(value).map((v) => arrayItem(this.typecode, v));
    const indices = sliceIndices(slice, this.#items.length);
    const step = slice.step === null || slice.step === undefined ? 1 : toIndex(slice.step, () => 'slice indices must be integers');
    if (step === 1) {
      const start = indices.length > 0 ? indices[0]! : Math.min(Math.max(sliceStart(slice.start, this.#items.length), 0), this.#items.length);
      checkSize(this.#items.length - indices.length + values.length);
      this.#items = this.#items.slice(0, start).concat(values, this.#items.slice(start + indices.length));
      return;
    }
    if (values.length !== indices.length) {
      throw raise.ValueError(`attempt to assign array of size ${values.length} to extended slice of size ${indices.length}`);
    }
    indices.forEach((i, k) => (this.#items[i] = values[k]));
  }

  /** The items as Python returns them (floats as floats). */
  tolist(): unknown[] {
    return this.#items.map((v) => arrayOut(this.typecode, v));
  }

  /** The `array.array` itself, as CPython's managers pickle it: `array.array(typecode, list)` (`#GETVALUE`). */
  __getvalue__(): PyObject {
    return this.#record(this.#items);
  }

  __repr__(): string {
    if (this.#items.length === 0) return `array('${this.typecode}')`;
    if (this.typecode === 'u' || this.typecode === 'w') return `array('${this.typecode}', ${reprStr(this.#items.join(''))})`;
    return `array('${this.typecode}', ${pyRepr(this.tolist())})`;
  }

  toString(): string {
    return this.__repr__();
  }

  #record(items: unknown[]): PyObject {
    return new PyObject(ARRAY, [this.typecode, items.map((v) => arrayOut(this.typecode, v))]);
  }
}
