import { UnpicklingError } from '../../core/errors.js';
import { python3Name } from './compat.js';
import { HIGHEST_PROTOCOL, OP, OPCODE_NAMES } from './opcodes.js';
import { readEscaped, readLatin1, readRawUnicodeEscape, readUtf8, TextDecodeError } from './text.js';
import { PyComplex, PyFloat, PyGlobal, PyObject, Tuple } from './types.js';
import type { PyObjectOptions } from './types.js';

/**
 * Decodes pickles of protocols 0 to 5 into JS values, as a stack machine like
 * CPython's `Unpickler`, except that it never imports or calls anything:
 * globals become `PyGlobal`s and calls become `PyObject` records, apart from
 * the few builtins plain data needs (set, frozenset, bytes, bytearray,
 * complex, OrderedDict, list), which are rebuilt from their arguments.
 *
 * Bounded for any input: nothing is allocated from a length field before the
 * bytes it announces are known to be there, the decoder never recurses, and
 * rebuilding builtins (the only step that can produce more than it reads, by
 * reusing memoized arguments) draws on a budget proportional to the input.
 */

/** What the decoder reads when it is not decoding: holding no one's input. */
const EMPTY = new Uint8Array(0);
/** BINFLOAT's 8 bytes are copied here to be read as a double, rather than making a DataView per pickle. */
const FLOAT_BYTES = new Uint8Array(8);
const FLOAT_VIEW = new DataView(FLOAT_BYTES.buffer);

/** Longest decimal integer text accepted (protocol 0); BigInt parsing is superlinear beyond that. */
const MAX_DECIMAL_DIGITS = 100_000;

/** The rebuilt builtins, by `module.name`. */
type Rebuild = (args: unknown[], decoder: PickleDecoder) => unknown;
const NOT_REBUILT = Symbol('not rebuilt');

const isBytes = (v: unknown): v is Uint8Array => v instanceof Uint8Array;

function bytesFromList(list: unknown[]): Uint8Array | typeof NOT_REBUILT {
  const out = new Uint8Array(list.length);
  for (let i = 0; i < list.length; i++) {
    const b = list[i];
    if (typeof b !== 'number' || !Number.isInteger(b) || b < 0 || b > 255) return NOT_REBUILT;
    out[i] = b;
  }
  return out;
}

/** `str.encode(encoding)` for the encodings Python uses to carry bytes in protocols 0-2. */
function encodeString(s: string, encoding: unknown): Uint8Array | typeof NOT_REBUILT {
  if (typeof encoding !== 'string') return NOT_REBUILT;
  const name = encoding.toLowerCase().replace(/_/g, '-');
  if (name === 'latin1' || name === 'latin-1' || name === 'iso-8859-1' || name === 'iso8859-1' || name === 'l1') {
    const out = new Uint8Array(s.length);
    for (let i = 0; i < s.length; i++) {
      const c = s.charCodeAt(i);
      if (c > 0xff) return NOT_REBUILT;
      out[i] = c;
    }
    return out;
  }
  if (name === 'ascii' || name === 'us-ascii') {
    const out = new Uint8Array(s.length);
    for (let i = 0; i < s.length; i++) {
      const c = s.charCodeAt(i);
      if (c > 0x7f) return NOT_REBUILT;
      out[i] = c;
    }
    return out;
  }
  if (name === 'utf-8' || name === 'utf8') {
    return new TextEncoder().encode(s);
  }
  return NOT_REBUILT;
}

/** bytes(...) / bytearray(...) in the forms CPython writes; never `bytearray(n)`, which would allocate n bytes. */
function rebuildBytes(args: unknown[], decoder: PickleDecoder): unknown {
  if (args.length === 0) return new Uint8Array(0);
  const [source, encoding] = args;
  if (args.length === 1 && isBytes(source)) {
    decoder.spend(source.length);
    return source.slice();
  }
  if (args.length === 1 && Array.isArray(source)) {
    decoder.spend(source.length);
    return bytesFromList(source);
  }
  if (args.length === 2 && typeof source === 'string') {
    decoder.spend(source.length);
    return encodeString(source, encoding);
  }
  return NOT_REBUILT;
}

/** Lossless decoding keeps a bytearray apart from bytes: as the record `bytearray(b'...')`, which encodes back to one. */
function rebuildByteArray(args: unknown[], decoder: PickleDecoder): unknown {
  const bytes = rebuildBytes(args, decoder);
  return decoder.lossless && bytes !== NOT_REBUILT ? byteArrayRecord(bytes as Uint8Array) : bytes;
}

function byteArrayRecord(bytes: Uint8Array): PyObject {
  return new PyObject(new PyGlobal('builtins', 'bytearray'), [bytes]);
}

/** Lossless decoding keeps a frozenset apart from a set: as the record `frozenset([...])`, which encodes back to one. */
function frozensetRecord(items: unknown[], decoder: PickleDecoder): PyObject {
  const list = items.slice();
  decoder.noteItems(list);
  const record = new PyObject(new PyGlobal('builtins', 'frozenset'), [list]);
  decoder.nest(record, [list]);
  return record;
}

function rebuildFrozenset(args: unknown[], decoder: PickleDecoder): unknown {
  if (!decoder.lossless) return rebuildSet(args, decoder);
  if (args.length === 0) return frozensetRecord([], decoder);
  const [items] = args;
  if (args.length === 1 && (Array.isArray(items) || items instanceof Set)) {
    decoder.spend(Array.isArray(items) ? items.length : items.size);
    return frozensetRecord([...items], decoder);
  }
  return NOT_REBUILT;
}

function rebuildSet(args: unknown[], decoder: PickleDecoder): unknown {
  if (args.length === 0) return new Set();
  const [items] = args;
  if (args.length === 1 && (Array.isArray(items) || items instanceof Set)) {
    decoder.spend(Array.isArray(items) ? items.length : items.size);
    return decoder.newSet(items);
  }
  return NOT_REBUILT;
}

function toFloat(v: unknown): number | undefined {
  if (typeof v === 'number') return v;
  if (v instanceof PyFloat) return v.value;
  if (typeof v === 'bigint') return Number(v);
  if (typeof v === 'boolean') return v ? 1 : 0;
  return undefined;
}

function rebuildComplex(args: unknown[]): unknown {
  if (args.length > 2) return NOT_REBUILT;
  const real = args.length > 0 ? toFloat(args[0]) : 0;
  const imag = args.length > 1 ? toFloat(args[1]) : 0;
  if (real === undefined || imag === undefined) return NOT_REBUILT;
  return new PyComplex(real, imag);
}

function rebuildOrderedDict(args: unknown[], decoder: PickleDecoder): unknown {
  // Lossless decoding leaves it an `OrderedDict` record, so it goes back as an OrderedDict rather than a dict.
  if (decoder.lossless) return NOT_REBUILT;
  if (args.length === 0) return decoder.newDict();
  const [pairs] = args;
  if (args.length !== 1 || !Array.isArray(pairs)) return NOT_REBUILT;
  decoder.spend(pairs.length);
  const items: unknown[] = [];
  for (const pair of pairs) {
    if (!Array.isArray(pair) || pair.length !== 2) return NOT_REBUILT;
    items.push(pair[0], pair[1]);
  }
  const dict = decoder.newDict();
  decoder.setItems(dict, items);
  return dict;
}

/**
 * `list(items)`: CPython's managers pickle `dict.keys()`, `values()` and
 * `items()` results this way (managers.py registers `rebuild_as_list`).
 */
function rebuildList(args: unknown[], decoder: PickleDecoder): unknown {
  if (args.length === 0) return [];
  const [items] = args;
  if (args.length !== 1 || !Array.isArray(items)) return NOT_REBUILT;
  decoder.spend(items.length);
  const list = items.slice();
  decoder.noteItems(list);
  return list;
}

const REBUILDS: ReadonlyMap<string, Rebuild> = new Map<string, Rebuild>([
  ['builtins.list', rebuildList],
  ['builtins.set', rebuildSet],
  ['builtins.frozenset', rebuildFrozenset],
  ['builtins.bytes', rebuildBytes],
  ['builtins.bytearray', rebuildByteArray],
  ['builtins.complex', rebuildComplex],
  ['collections.OrderedDict', rebuildOrderedDict],
  [
    '_codecs.encode',
    (args, decoder) => {
      if (args.length !== 2 || typeof args[0] !== 'string') return NOT_REBUILT;
      decoder.spend(args[0].length);
      return encodeString(args[0], args[1]);
    },
  ],
]);

/** Builtins whose NEWOBJ (`cls.__new__(cls, *args)`) is the same as calling them. */
const NEWOBJ_REBUILDS: ReadonlySet<string> = new Set(['builtins.complex']);

function describe(v: unknown): string {
  if (v === null) return 'None';
  if (Array.isArray(v)) return 'a list or tuple';
  if (v instanceof Dict) return 'a dict';
  if (v instanceof Set) return 'a set';
  if (v instanceof Uint8Array) return 'bytes';
  if (v instanceof PyGlobal) return `the global ${v.module}.${v.name}`;
  if (v instanceof PyObject) return 'an object record';
  if (v instanceof PyComplex) return 'a complex';
  return typeof v === 'string' ? 'a str' : typeof v;
}

function callableOf(v: unknown): PyGlobal | PyObject {
  if (v instanceof PyGlobal || v instanceof PyObject) return v;
  fail(`${describe(v)} is not callable`);
}

function argsOf(v: unknown): unknown[] {
  if (Array.isArray(v)) return v;
  fail(`call arguments must be a tuple, not ${describe(v)}`);
}

/** A falsy Python value: BUILD with it is a no-op in CPython. */
function isFalsy(v: unknown): boolean {
  if (v === null || v === false || v === 0 || v === 0n || v === '') return true;
  if (Array.isArray(v)) return v.length === 0;
  if (v instanceof Dict) return v.keys.length === 0;
  if (v instanceof Set) return v.size === 0;
  if (v instanceof Uint8Array) return v.length === 0;
  return false;
}

/**
 * A dict while the pickle is decoded. Whether it becomes a plain object or a
 * Map depends on keys that SETITEM(S) may add at any time, so its final form
 * is made at the end and put in every place the dict was stored: the decoder
 * records those places as it stores it (never walking the whole value, and
 * never recursing).
 */
class Dict {
  readonly keys: unknown[] = [];
  readonly values: unknown[] = [];
  stringKeys = true;
  result: Record<string, unknown> | Map<unknown, unknown> | undefined;
}

/**
 * Why decoding stopped, turned into an `UnpicklingError` (with the offset) at
 * the top of the loop. Not an Error: capturing a stack trace for each would
 * make rejecting garbage several times slower than decoding it.
 */
class Failure {
  constructor(readonly message: string) {}
}

/**
 * Throws from a small function on purpose: V8 computes the source position of
 * the throwing frame, which costs time proportional to that function's size,
 * and the decoding loop is large.
 */
function fail(message: string): never {
  throw new Failure(message);
}

/** Options of a {@link PickleDecoder}. */
export interface PickleDecoderOptions {
  /**
   * Decode so that encoding the result writes the same Python values back:
   * tuples become `Tuple`, integral floats `PyFloat`, dicts always `Map`
   * (in order, keys as decoded), bytearray and frozenset the records
   * `bytearray(b'...')` and `frozenset([...])`, OrderedDict a record.
   */
  lossless?: boolean;
  /**
   * Deepest nesting of lists, tuples, dicts, sets and objects accepted;
   * deeper rejects with `UnpicklingError`. Default: no limit (a connection's
   * `pickle` serializer passes the connection's `maxDepth`, 10,000 by default).
   */
  maxDepth?: number;
}

/**
 * One decoder per serializer. Its working state (stack, marks, memo) is reused
 * from one `decode` to the next and emptied at the end of each, however it
 * ends, so nothing of one message is seen by the next. `decode` is not
 * re-entrant, and need not be: it is synchronous and runs no code of its
 * caller (the rebuild table is fixed, and no getter is called).
 */
export class PickleDecoder {
  readonly lossless: boolean;

  constructor(options: PickleDecoderOptions = {}) {
    this.lossless = options.lossless === true;
    this.maxDepth = options.maxDepth ?? Infinity;
  }

  readonly maxDepth: number;
  /**
   * Depth of each container that holds containers, recorded as items are
   * stored (one holding only scalars is 1 and not recorded). Depth grows when
   * an item is stored, so a container changed through the memo after it was
   * stored is not re-counted in its holders; what that hides costs bytes of
   * the pickle per level like any other nesting.
   */
  private readonly depths = new Map<object, number>();
  /**
   * Whether this pickle could nest deeper than `maxDepth`. Every opcode adds
   * at most two levels (FROZENSET in lossless mode: the record and its list;
   * any other, one), so a pickle of n bytes nests at most 2n + 1 deep: one
   * that short cannot reach the limit, and its depths need no tracking.
   */
  private tracksDepth = false;

  private data: Uint8Array<ArrayBufferLike> = EMPTY;
  private pos = 0;
  private end = 0;
  private proto = 0;
  private budget = 0;
  private dicts: Dict[] = [];
  /** Where each dict was stored, as pairs: an array and an index, or a PyObject and a field. */
  private places: unknown[] = [];
  /** Sets holding a dict (only a hostile pickle makes one: Python dicts are not hashable). */
  private setsWithDicts: Set<unknown>[] = [];
  /** Where the opcode being decoded starts, and which it is, for error messages. */
  private opStart = 0;
  private op = -1;
  /**
   * The machine's state, kept from one decode to the next so that a decode
   * allocates none of it (a manager server decodes every request with one
   * decoder); emptied at the end of every decode, so nothing of one pickle is
   * seen by the next.
   */
  private readonly stack: unknown[] = [];
  private readonly marks: number[] = [];
  /**
   * The memo: indices 0, 1, 2 … in an array (what MEMOIZE and Python's
   * picklers write), any other index in a Map. An index is in the Map only if
   * it was not the array's next one when stored, and the array then never
   * grows past it, so the two never hold the same index.
   */
  private memoDense: unknown[] = [];
  private memoSparse: Map<number, unknown> | null = null;
  /** Where the items above the innermost MARK start (0 without one). */
  private fence = 0;
  /** The names of the globals the current (or last) `decode` met, in order. */
  private readonly globalNames: string[] = [];

  /** How many globals (`PyGlobal`s) the last `decode` met: a value without any holds no object records but the rebuilt builtins. */
  get globalsDecoded(): number {
    return this.globalNames.length;
  }

  /**
   * Whether the last `decode` met a global of this name, however the pickle
   * spelled it (a manager server looks for `RebuildProxy`: a proxy inside a value).
   */
  decodedGlobal(name: string): boolean {
    return this.globalNames.length > 0 && this.globalNames.includes(name);
  }

  decode(bytes: Uint8Array): unknown {
    if (!(bytes instanceof Uint8Array)) {
      throw new TypeError('a pickle must be a Uint8Array (or Buffer)');
    }
    // A plain view, whatever the input's class: a Buffer's slice() would not copy.
    this.data = new Uint8Array(bytes.buffer, bytes.byteOffset, bytes.byteLength);
    this.pos = 0;
    if (this.globalNames.length > 0) this.globalNames.length = 0;
    this.tracksDepth = 2 * bytes.byteLength + 1 > this.maxDepth;
    this.end = bytes.byteLength;
    this.proto = 0;
    this.budget = 2 * bytes.byteLength + 4096;
    this.opStart = 0;
    this.op = -1;
    try {
      const value = this.run();
      return this.dicts.length > 0 ? this.finish(value) : value;
    } catch (err) {
      if (err instanceof Failure || err instanceof TextDecodeError) {
        const name = OPCODE_NAMES.get(this.op);
        const where = name !== undefined && !err.message.startsWith('invalid load key') ? `, opcode ${name}` : '';
        throw new UnpicklingError(`${err.message} (at byte ${this.opStart}${where})`, { offset: this.opStart });
      }
      throw err;
    } finally {
      // (Each only when there is something to drop; a new array costs less than setting a length, a runtime call.)
      this.data = EMPTY;
      if (this.dicts.length > 0) this.dicts = [];
      if (this.places.length > 0) this.places = [];
      if (this.depths.size > 0) this.depths.clear();
      if (this.setsWithDicts.length > 0) this.setsWithDicts = [];
      if (this.stack.length > 0) this.stack.length = 0;
      if (this.marks.length > 0) this.marks.length = 0;
      this.fence = 0;
      if (this.memoDense.length > 0) this.memoDense = [];
      this.memoSparse = null;
    }
  }

  /** Charges `n` units of rebuilding work against the budget. */
  spend(n: number): void {
    this.budget -= n;
    if (this.budget < 0) {
      fail('rebuilding builtins from memoized arguments would expand the pickle too much');
    }
  }

  newDict(): Dict {
    const dict = new Dict();
    this.dicts.push(dict);
    return dict;
  }

  newSet(items: Iterable<unknown>): Set<unknown> {
    const set = new Set(items);
    this.noteSet(set, items);
    return set;
  }

  /**
   * `parent` now holds `items` (from index `from` on): it is one level deeper
   * than its deepest item. Nothing is tracked when the limit cannot be reached.
   */
  nest(parent: object, items: Iterable<unknown>, from = 0): void {
    if (!this.tracksDepth) return;
    let depth = this.depths.get(parent) ?? 1;
    if (Array.isArray(items)) {
      for (let i = from; i < items.length; i++) depth = this.deeper(items[i], depth);
    } else {
      for (const item of items) depth = this.deeper(item, depth);
    }
    this.settle(parent, depth);
  }

  /** `nest` for one item. */
  private nestOne(parent: object, item: unknown): void {
    if (!this.tracksDepth) return;
    this.settle(parent, this.deeper(item, this.depths.get(parent) ?? 1));
  }

  /** `depth`, or one more than `item`'s depth when `item` is a container and that is more. */
  private deeper(item: unknown, depth: number): number {
    if (Array.isArray(item) || item instanceof Dict || item instanceof Set || item instanceof PyObject) {
      const d = (this.depths.get(item) ?? 1) + 1;
      if (d > depth) return d;
    }
    return depth;
  }

  private settle(parent: object, depth: number): void {
    if (depth === 1) return;
    if (depth > this.maxDepth) fail(`the value is nested more than ${this.maxDepth} levels deep (maxDepth ${this.maxDepth})`);
    this.depths.set(parent, depth);
  }

  /** Records the dicts stored in `array` from `from` on. */
  noteItems(array: unknown[], from = 0): void {
    this.nest(array, array, from);
    if (this.dicts.length === 0) return;
    for (let i = from; i < array.length; i++) if (array[i] instanceof Dict) this.places.push(array, i);
  }

  private noteField(record: PyObject, field: 'kwargs' | 'state' | 'dictItems'): void {
    this.nestOne(record, record[field]);
    if (record[field] instanceof Dict) this.places.push(record, field);
  }

  /** Records `set` when one of the `added` items is a dict (only the new items are looked at: sets grow in batches). */
  private noteSet(set: Set<unknown>, added: Iterable<unknown>): void {
    this.nest(set, added);
    if (this.dicts.length === 0) return;
    for (const item of added) {
      if (item instanceof Dict) {
        this.setsWithDicts.push(set);
        return;
      }
    }
  }

  /** `items` alternates keys and values. */
  setItems(target: unknown, items: unknown[]): void {
    if (items.length % 2 !== 0) fail('odd number of items for a dict (a key without a value)');
    let dict: Dict;
    if (target instanceof Dict) {
      dict = target;
    } else if (target instanceof PyObject) {
      if (!(target.dictItems instanceof Dict)) {
        (target as { dictItems: unknown }).dictItems = this.newDict();
        this.noteField(target, 'dictItems');
      }
      dict = target.dictItems as unknown as Dict;
    } else {
      fail(`cannot set items on ${describe(target)}`);
    }
    this.nest(dict, items);
    // An object is a level above its dict items, which may have grown deeper since the record got them.
    if (target !== dict) this.nestOne(target as PyObject, dict);
    const { keys, values } = dict;
    for (let i = 0; i < items.length; i += 2) {
      const key = items[i];
      const value = items[i + 1];
      if (typeof key !== 'string') {
        dict.stringKeys = false;
        if (key instanceof Dict) this.places.push(keys, keys.length);
      }
      if (value instanceof Dict) this.places.push(values, values.length);
      keys.push(key);
      values.push(value);
    }
  }

  private appendItems(target: unknown, items: unknown[]): void {
    let list: unknown[];
    if (Array.isArray(target)) list = target;
    else if (target instanceof PyObject) list = target.listItems ??= [];
    else fail(`cannot append to ${describe(target)}`);
    const start = list.length;
    for (let i = 0; i < items.length; i++) list.push(items[i]);
    this.noteItems(list, start);
    if (list !== target) this.nestOne(target as PyObject, list);
  }

  /**
   * Gives every dict its final form, a plain object when all its keys are
   * strings, else a Map, in every place it was stored.
   */
  private finish(root: unknown): unknown {
    for (const dict of this.dicts) dict.result = dict.stringKeys && !this.lossless ? {} : new Map();
    const places = this.places;
    for (let i = 0; i < places.length; i += 2) {
      const target = places[i] as Record<string | number, unknown>;
      const key = places[i + 1] as string | number;
      const value = target[key];
      if (value instanceof Dict) target[key] = value.result;
    }
    for (const dict of this.dicts) {
      const { keys, values } = dict;
      if (dict.result instanceof Map) {
        for (let i = 0; i < keys.length; i++) dict.result.set(keys[i], values[i]);
      } else {
        const object = dict.result!;
        for (let i = 0; i < keys.length; i++) setOwn(object, keys[i] as string, values[i]);
      }
    }
    for (const set of new Set(this.setsWithDicts)) {
      const items = [...set];
      set.clear();
      for (const item of items) set.add(item instanceof Dict ? item.result : item);
    }
    return root instanceof Dict ? root.result : root;
  }

  private run(): unknown {
    if (this.end === 0) throw new UnpicklingError('empty pickle: there is no data to decode', { offset: 0 });
    const stack = this.stack;
    const marks = this.marks;

    for (;;) {
      this.opStart = this.pos;
      this.op = -1;
      if (this.pos >= this.end) fail('pickle data was truncated (no STOP opcode)');
      const op = (this.op = this.data[this.pos++]!);
      switch (op) {
        case OP.PROTO: {
          const proto = this.u8();
          if (proto > HIGHEST_PROTOCOL) fail(`unsupported pickle protocol: ${proto}`);
          this.proto = proto;
          break;
        }
        case OP.FRAME: {
          // Frames only group opcodes for buffered reading; the whole pickle is already here.
          const size = this.u64();
          if (size > this.end - this.pos) {
            fail(`pickle data was truncated (FRAME of ${size} bytes, ${this.end - this.pos} left)`);
          }
          break;
        }
        case OP.STOP:
          return this.pop();
        case OP.MARK:
          marks.push(stack.length);
          this.fence = stack.length;
          break;
        case OP.POP:
          if (stack.length > this.fence) stack.pop();
          else if (marks.length > 0 && marks[marks.length - 1] === stack.length) this.popMark();
          else fail('stack underflow');
          break;
        case OP.POP_MARK:
          this.popMark();
          break;
        case OP.DUP:
          stack.push(this.top());
          break;

        // Memo
        case OP.PUT:
          this.memoSet(this.memoIndex(this.line()), this.top());
          break;
        case OP.BINPUT:
          this.memoSet(this.u8(), this.top());
          break;
        case OP.LONG_BINPUT:
          this.memoSet(this.u32(), this.top());
          break;
        case OP.MEMOIZE:
          this.memoSet(this.memoDense.length + (this.memoSparse?.size ?? 0), this.top());
          break;
        case OP.GET:
        case OP.BINGET:
        case OP.LONG_BINGET: {
          const index =
            op === OP.GET ? this.memoIndex(this.line()) : op === OP.BINGET ? this.u8() : this.u32();
          if (index < this.memoDense.length) stack.push(this.memoDense[index]);
          else if (this.memoSparse?.has(index) === true) stack.push(this.memoSparse.get(index));
          else fail(`memo value not found at index ${index}`);
          break;
        }

        // Atoms
        case OP.NONE:
          stack.push(null);
          break;
        case OP.NEWTRUE:
          stack.push(true);
          break;
        case OP.NEWFALSE:
          stack.push(false);
          break;
        case OP.INT: {
          const [start, end] = this.line();
          // Protocol 0 booleans are the ints written as exactly 01 and 00.
          if (end - start === 2 && this.data[start] === 0x30 && this.data[start + 1] === 0x31) stack.push(true);
          else if (end - start === 2 && this.data[start] === 0x30 && this.data[start + 1] === 0x30) stack.push(false);
          else stack.push(this.parseInt(start, end));
          break;
        }
        case OP.LONG: {
          const [start, end0] = this.line();
          const end = end0 > start && this.data[end0 - 1] === 0x4c ? end0 - 1 : end0; // Python 2's trailing L
          stack.push(this.parseInt(start, end));
          break;
        }
        case OP.BININT:
          stack.push(this.i32());
          break;
        case OP.BININT1:
          stack.push(this.u8());
          break;
        case OP.BININT2:
          stack.push(this.u16());
          break;
        case OP.LONG1: {
          const n = this.u8();
          stack.push(this.decodeLong(this.take(n), n));
          break;
        }
        case OP.LONG4: {
          const n = this.i32();
          if (n < 0) fail('LONG4 has a negative byte count');
          stack.push(this.decodeLong(this.take(n), n));
          break;
        }
        case OP.FLOAT: {
          const [start, end] = this.line();
          stack.push(this.float(parseFloatText(readLatin1(this.data, start, end))));
          break;
        }
        case OP.BINFLOAT:
          stack.push(this.float(this.f64()));
          break;

        // Strings and bytes
        case OP.STRING: {
          const [start, end] = this.line();
          const quote = this.data[start];
          if (end - start < 2 || (quote !== 0x27 && quote !== 0x22) || this.data[end - 1] !== quote) {
            fail('the STRING opcode argument must be quoted');
          }
          stack.push(readEscaped(this.data, start + 1, end - 1));
          break;
        }
        case OP.BINSTRING: {
          const n = this.i32();
          if (n < 0) fail('BINSTRING has a negative byte count');
          const start = this.take(n);
          stack.push(readLatin1(this.data, start, start + n));
          break;
        }
        case OP.SHORT_BINSTRING: {
          const n = this.u8();
          const start = this.take(n);
          stack.push(readLatin1(this.data, start, start + n));
          break;
        }
        case OP.UNICODE: {
          const [start, end] = this.line();
          stack.push(readRawUnicodeEscape(this.data, start, end));
          break;
        }
        case OP.SHORT_BINUNICODE:
        case OP.BINUNICODE:
        case OP.BINUNICODE8: {
          const n = op === OP.SHORT_BINUNICODE ? this.u8() : op === OP.BINUNICODE ? this.u32() : this.u64();
          const start = this.take(n);
          stack.push(readUtf8(this.data, start, start + n));
          break;
        }
        case OP.SHORT_BINBYTES:
        case OP.BINBYTES:
        case OP.BINBYTES8:
        case OP.BYTEARRAY8: {
          const n = op === OP.SHORT_BINBYTES ? this.u8() : op === OP.BINBYTES ? this.u32() : this.u64();
          const start = this.take(n);
          const bytes = this.data.slice(start, start + n);
          stack.push(op === OP.BYTEARRAY8 && this.lossless ? byteArrayRecord(bytes) : bytes);
          break;
        }
        case OP.NEXT_BUFFER:
        case OP.READONLY_BUFFER:
          fail(
            'the pickle refers to out-of-band buffers (pickled with a buffer_callback, protocol 5); ' +
              'they are not part of the message, so it cannot be decoded: pickle without buffer_callback',
          );

        // Containers
        case OP.EMPTY_TUPLE:
        case OP.EMPTY_LIST:
          stack.push(op === OP.EMPTY_TUPLE ? this.tuple([]) : []);
          break;
        case OP.TUPLE:
        case OP.LIST: {
          const items = op === OP.TUPLE ? this.tuple(this.popMark()) : this.popMark();
          this.noteItems(items);
          stack.push(items);
          break;
        }
        case OP.TUPLE1:
        case OP.TUPLE2:
        case OP.TUPLE3: {
          const n = op - OP.TUPLE1 + 1;
          if (stack.length - this.fence < n) fail('stack underflow');
          // Array literals: splice makes its result through the generic array path.
          const c = stack.pop();
          const b = n > 1 ? stack.pop() : undefined;
          const items = this.tuple(n === 1 ? [c] : n === 2 ? [b, c] : [stack.pop(), b, c]);
          this.noteItems(items);
          stack.push(items);
          break;
        }
        case OP.APPEND: {
          const item = this.pop();
          this.appendItems(this.top(), [item]);
          break;
        }
        case OP.APPENDS: {
          const items = this.popMark();
          this.appendItems(this.top(), items);
          break;
        }
        case OP.EMPTY_DICT:
          stack.push(this.newDict());
          break;
        case OP.DICT: {
          const items = this.popMark();
          const dict = this.newDict();
          this.setItems(dict, items);
          stack.push(dict);
          break;
        }
        case OP.SETITEM: {
          const value = this.pop();
          const key = this.pop();
          this.setItems(this.top(), [key, value]);
          break;
        }
        case OP.SETITEMS: {
          const items = this.popMark();
          this.setItems(this.top(), items);
          break;
        }
        case OP.EMPTY_SET:
          stack.push(new Set());
          break;
        case OP.FROZENSET:
          stack.push(this.lossless ? frozensetRecord(this.popMark(), this) : this.newSet(this.popMark()));
          break;
        case OP.ADDITEMS: {
          const items = this.popMark();
          const target = this.top();
          if (!(target instanceof Set)) fail(`ADDITEMS needs a set, not ${describe(target)}`);
          for (let i = 0; i < items.length; i++) target.add(items[i]);
          this.noteSet(target, items);
          break;
        }

        // Globals and objects: recorded, never imported or called
        case OP.GLOBAL: {
          const module = this.text(this.line());
          const name = this.text(this.line());
          stack.push(this.global(module, name));
          break;
        }
        case OP.STACK_GLOBAL: {
          const name = this.pop();
          const module = this.pop();
          if (typeof name !== 'string' || typeof module !== 'string') {
            fail('STACK_GLOBAL requires str');
          }
          stack.push(this.global(module, name));
          break;
        }
        case OP.INST: {
          const module = this.text(this.line());
          const name = this.text(this.line());
          const args = this.popMark();
          this.noteItems(args);
          stack.push(this.record(this.global(module, name), args, { kind: 'inst' }));
          break;
        }
        case OP.OBJ: {
          const items = this.popMark();
          if (items.length === 0) fail('OBJ needs a class after the MARK');
          const args = items.slice(1);
          this.noteItems(args);
          stack.push(this.record(callableOf(items[0]), args, { kind: 'obj' }));
          break;
        }
        case OP.REDUCE: {
          const args = argsOf(this.pop());
          const callable = callableOf(this.top());
          stack[stack.length - 1] = this.reduce('reduce', callable, args);
          break;
        }
        case OP.NEWOBJ: {
          const args = argsOf(this.pop());
          const cls = callableOf(this.pop());
          stack.push(this.reduce('newobj', cls, args));
          break;
        }
        case OP.NEWOBJ_EX: {
          const kwargs = this.pop();
          const args = argsOf(this.pop());
          const cls = callableOf(this.pop());
          if (!(kwargs instanceof Dict)) fail(`NEWOBJ_EX keyword arguments must be a dict, not ${describe(kwargs)}`);
          const record = this.record(cls, args, { kind: 'newobj_ex', kwargs: kwargs as unknown as Map<unknown, unknown> });
          this.noteField(record, 'kwargs');
          stack.push(record);
          break;
        }
        case OP.BUILD: {
          const state = this.pop();
          const target = this.top();
          if (target instanceof PyObject && target.state === undefined) {
            target.state = state;
            this.noteField(target, 'state');
          } else if (target instanceof PyObject || target instanceof PyGlobal) {
            const record = new PyObject(target, [], { kind: 'build', state });
            this.noteField(record, 'state');
            stack[stack.length - 1] = record;
          } else if (!isFalsy(state)) {
            fail(`BUILD cannot set attributes on ${describe(target)}`);
          }
          break;
        }
        case OP.PERSID:
        case OP.BINPERSID:
          fail('the pickle uses persistent IDs, which need a persistent_load hook: unsupported');
        case OP.EXT1:
        case OP.EXT2:
        case OP.EXT4: {
          const code =
            op === OP.EXT1
              ? this.u8()
              : op === OP.EXT2
                ? this.u16()
                : this.i32();
          fail(`extension code ${code} is not registered (copyreg extensions are not supported)`);
        }
        default:
          fail(`invalid load key, ${JSON.stringify(String.fromCharCode(op))} (0x${op.toString(16).padStart(2, '0')})`);
      }
    }
  }

  private memoSet(index: number, value: unknown): void {
    const dense = this.memoDense;
    if (index < dense.length) dense[index] = value;
    else if (index === dense.length && this.memoSparse?.has(index) !== true) dense.push(value);
    else (this.memoSparse ??= new Map()).set(index, value);
  }

  private pop(): unknown {
    const stack = this.stack;
    if (stack.length <= this.fence) fail('stack underflow (nothing to take above the mark)');
    return stack.pop();
  }

  private top(): unknown {
    const stack = this.stack;
    if (stack.length <= this.fence) fail('stack underflow (nothing to take above the mark)');
    return stack[stack.length - 1];
  }

  /** The items above the innermost MARK, taken off the stack with it. */
  private popMark(): unknown[] {
    const marks = this.marks;
    const mark = marks.pop();
    if (mark === undefined) fail('could not find MARK');
    this.fence = marks.length > 0 ? marks[marks.length - 1]! : 0;
    const stack = this.stack;
    const items = stack.slice(mark);
    // Popped rather than truncated: setting an array's length is a call into the runtime.
    for (let i = stack.length; i > mark; i--) stack.pop();
    return items;
  }

  private reduce(kind: 'reduce' | 'newobj', callable: PyGlobal | PyObject, args: unknown[]): unknown {
    if (callable instanceof PyGlobal) {
      const key = `${callable.module}.${callable.name}`;
      const rebuild = kind === 'reduce' || NEWOBJ_REBUILDS.has(key) ? REBUILDS.get(key) : undefined;
      if (rebuild !== undefined) {
        const value = rebuild(args, this);
        if (value !== NOT_REBUILT) return value;
      }
    }
    return this.record(callable, args, { kind });
  }

  /** An object record over `args`: one level of nesting above them, as any container. */
  private record(callable: PyGlobal | PyObject, args: unknown[], options: PyObjectOptions): PyObject {
    const record = new PyObject(callable, args, options);
    this.nest(record, args);
    return record;
  }

  /** A decoded tuple: a plain array, or (lossless) the same array as a `Tuple`, without copying. */
  private tuple(items: unknown[]): unknown[] {
    if (this.lossless) Object.setPrototypeOf(items, Tuple.prototype);
    return items;
  }

  /** A decoded float: a number, or (lossless) a `PyFloat` when it is integral, since an integral number encodes as an int. */
  private float(x: number): number | PyFloat {
    return this.lossless && Number.isInteger(x) && !Object.is(x, -0) ? new PyFloat(x) : x;
  }

  private global(module: string, name: string): PyGlobal {
    if (this.proto < 3) [module, name] = python3Name(module, name);
    this.globalNames.push(name);
    return new PyGlobal(module, name);
  }

  /** Advances over `n` bytes that must be present; returns where they start. */
  private take(n: number): number {
    if (n > this.end - this.pos) {
      fail(`pickle data was truncated (needs ${n} bytes, ${this.end - this.pos} left)`);
    }
    const start = this.pos;
    this.pos += n;
    return start;
  }

  private u8(): number {
    return this.data[this.take(1)]!;
  }

  private u16(): number {
    const at = this.take(2);
    return this.data[at]! | (this.data[at + 1]! << 8);
  }

  private i32(): number {
    return this.i32At(this.take(4));
  }

  /** The little-endian signed 32-bit integer at `at` (already taken). */
  private i32At(at: number): number {
    const d = this.data;
    return d[at]! | (d[at + 1]! << 8) | (d[at + 2]! << 16) | (d[at + 3]! << 24);
  }

  private u32(): number {
    return this.i32() >>> 0;
  }

  /** A big-endian IEEE 754 double (BINFLOAT). */
  private f64(): number {
    const at = this.take(8);
    for (let i = 0; i < 8; i++) FLOAT_BYTES[i] = this.data[at + i]!;
    return FLOAT_VIEW.getFloat64(0, false);
  }

  /** An unsigned 64-bit length; beyond 2**53 it is far more than any input, so the approximation is harmless. */
  private u64(): number {
    const at = this.take(8);
    return (this.i32At(at) >>> 0) + (this.i32At(at + 4) >>> 0) * 2 ** 32;
  }

  /** The argument of a text opcode: up to (not including) the next newline. */
  private line(): [number, number] {
    const nl = this.data.indexOf(0x0a, this.pos);
    if (nl < 0 || nl >= this.end) fail('pickle data was truncated (missing end of line)');
    const start = this.pos;
    this.pos = nl + 1;
    return [start, nl];
  }

  private text([start, end]: [number, number]): string {
    return readUtf8(this.data, start, end);
  }

  private memoIndex(line: [number, number]): number {
    const s = readLatin1(this.data, line[0], line[1]).trim();
    if (!/^\+?\d+$/.test(s) || s.length > 15) fail(`invalid memo index ${JSON.stringify(s)}`);
    return Number(s);
  }

  /** Python's `int(text, 0)` for the INT and LONG opcodes. */
  private parseInt(start: number, end: number): number | bigint {
    const text = readLatin1(this.data, start, end).trim().replace(/_/g, '');
    const match = /^([+-]?)(0[xX][0-9a-fA-F]+|0[oO][0-7]+|0[bB][01]+|\d+)$/.exec(text);
    if (match === null) fail(`invalid integer literal ${JSON.stringify(text.slice(0, 40))}`);
    const digits = match[2]!;
    if (digits.length > MAX_DECIMAL_DIGITS) {
      fail(`integer literal of ${digits.length} digits exceeds the limit of ${MAX_DECIMAL_DIGITS}`);
    }
    const body = /^0[oObB]/.test(digits) || /^0[xX]/.test(digits) ? digits.toLowerCase() : digits;
    const magnitude = BigInt(body);
    return normalizeInt(match[1] === '-' ? -magnitude : magnitude);
  }

  /** Little-endian two's complement (LONG1, LONG4). */
  private decodeLong(start: number, n: number): number | bigint {
    if (n === 0) return 0;
    const data = this.data;
    if (n <= 6) {
      let value = 0;
      for (let i = n - 1; i >= 0; i--) value = value * 256 + data[start + i]!;
      if (data[start + n - 1]! & 0x80) value -= 2 ** (8 * n);
      return value;
    }
    const hex = Buffer.from(data.buffer, data.byteOffset + start, n).reverse().toString('hex');
    const unsigned = BigInt(`0x${hex}`);
    return normalizeInt(BigInt.asIntN(8 * n, unsigned));
  }
}

function normalizeInt(v: bigint): number | bigint {
  return v >= -0x1fffffffffffffn && v <= 0x1fffffffffffffn ? Number(v) : v;
}

const FLOAT_TEXT = /^[+-]?(\d+(_\d+)*(\.(\d+(_\d+)*)?)?|\.\d+(_\d+)*)([eE][+-]?\d+(_\d+)*)?$/;

/** Python's `float(text)` for the FLOAT opcode. */
function parseFloatText(raw: string): number {
  const text = raw.trim();
  const special = /^([+-]?)(inf|infinity|nan)$/i.exec(text);
  if (special !== null) {
    if (special[2]!.toLowerCase() === 'nan') return NaN;
    return special[1] === '-' ? -Infinity : Infinity;
  }
  if (!FLOAT_TEXT.test(text)) fail(`invalid float literal ${JSON.stringify(text.slice(0, 40))}`);
  return Number(text.replace(/_/g, ''));
}

/** An own property, even for the key `__proto__` (assignment would set the prototype). */
function setOwn(target: Record<string, unknown>, key: string, value: unknown): void {
  if (key === '__proto__') {
    Object.defineProperty(target, key, { value, writable: true, enumerable: true, configurable: true });
  } else {
    target[key] = value;
  }
}
