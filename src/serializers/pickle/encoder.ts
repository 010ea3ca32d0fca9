import { OP } from './opcodes.js';
import { utf8Length, writeUtf8 } from './text.js';
import { PyComplex, PyFloat, PyGlobal, PyObject, Tuple } from './types.js';

/**
 * Encodes JS values as pickle protocol 4, the way CPython's C pickler
 * (`_pickle`) writes the same Python values: same opcodes, memo, batches of
 * 1000 and 64 KiB frames, so the bytes for plain data match
 * `pickle.dumps(v, protocol=4)` (strings are memoized by value, where Python
 * memoizes by object identity).
 */

const FRAME_SIZE_TARGET = 64 * 1024;
const FRAME_SIZE_MIN = 4;
const FRAME_HEADER_SIZE = 9;
const BATCHSIZE = 1000;
/** Python's own pickler stops at its recursion limit (1000 by default); the JS stack allows a bit more. */
export const MAX_DEPTH = 2000;
/** A reused buffer larger than this is let go after the message, so one huge message does not pin memory. */
const KEEP_BUFFER_BYTES = 1024 * 1024;

const BUILTINS_COMPLEX = new PyGlobal('builtins', 'complex');

/** A number written as a Python float even when it is integral (the parts of a complex). */
class FloatValue {
  constructor(readonly value: number) {}
}

function isPlainObject(v: object): v is Record<string, unknown> {
  const proto = Object.getPrototypeOf(v) as unknown;
  return proto === Object.prototype || proto === null;
}

function typeName(v: object): string {
  const ctor = (v as { constructor?: { name?: unknown } }).constructor;
  return typeof ctor?.name === 'string' && ctor.name !== '' ? ctor.name : 'object';
}

/** Bits in the magnitude of `x` (Python's `int.bit_length()`). */
function bitLength(x: bigint): number {
  const hex = (x < 0n ? -x : x).toString(16);
  return (hex.length - 1) * 4 + (32 - Math.clz32(parseInt(hex[0]!, 16)));
}

/** Minimal little-endian two's complement (`pickle.encode_long`). */
function encodeLong(x: bigint): Uint8Array {
  let n = (bitLength(x) >> 3) + 1;
  const hex = BigInt.asUintN(8 * n, x).toString(16).padStart(2 * n, '0');
  const bytes = Buffer.from(hex, 'hex').reverse();
  if (x < 0n && n > 1 && bytes[n - 1] === 0xff && (bytes[n - 2]! & 0x80) !== 0) n--;
  return bytes.subarray(0, n);
}

export class PickleEncoder {
  private buf: Buffer = Buffer.allocUnsafe(256);
  private pos = 0;
  private framing = false;
  private frameStart = -1;
  /** Memo indices: objects by identity, strings by value. */
  private memo = new Map<unknown, number>();
  /** Arrays and Sets written as tuples and frozensets (as dict keys and set items), by identity. */
  private keyMemo = new Map<object, number>();
  /** Globals by `module\0name`. */
  private globalMemo = new Map<string, number>();
  private memoSize = 0;
  /** Objects being written whose memo entry comes after their contents, with the memo size when entered. */
  private active = new Map<object, number>();
  private busy = false;

  /**
   * `keepBufferBytes`: the largest buffer kept for the next message (default
   * 1 MiB); one grown larger for a big message is let go after it.
   */
  constructor(private readonly keepBufferBytes = KEEP_BUFFER_BYTES) {}

  /** The pickle of `value`, in a new array of its own. */
  encode(value: unknown): Uint8Array {
    if (this.busy) return new PickleEncoder().encode(value); // re-entered from a getter
    const length = this.encodeToBuffer(value);
    const out = new Uint8Array(length);
    out.set(this.buf.subarray(0, length));
    if (this.buf.length > this.keepBufferBytes) this.buf = Buffer.allocUnsafe(256);
    return out;
  }

  /**
   * The pickle of `value` as a view of this encoder's own buffer, lent until
   * its next `encode` or `encodeLent`: no array is made for it. For a caller
   * that is done with the bytes by then (a manager server's connection hands
   * its reply to `sendBytes` and awaits it before the next one).
   */
  encodeLent(value: unknown): Uint8Array {
    if (this.busy) return new PickleEncoder().encode(value); // re-entered from a getter
    return this.lend(this.encodeToBuffer(value));
  }

  /**
   * `encodeLent` of the tuple `items` (whatever the array's class): the bytes
   * `encode(Tuple.from(items))` gives, without making that Tuple.
   */
  encodeTupleLent(items: readonly unknown[]): Uint8Array {
    if (this.busy) return new PickleEncoder().encode(Tuple.from(items));
    return this.lend(this.encodeToBuffer(items, true));
  }

  /** The first `length` bytes of the buffer, as a plain view (a Buffer's subarray() constructs a Buffer subclass, which costs more). */
  private lend(length: number): Uint8Array {
    return new Uint8Array(this.buf.buffer, this.buf.byteOffset, length);
  }

  /** Writes the pickle of `value` (`asTuple`: an array written as a tuple) at the start of `buf`; returns its length. */
  private encodeToBuffer(value: unknown, asTuple = false): number {
    // (After a lent pickle the buffer is let go only now: the view was valid until this call.)
    if (this.buf.length > this.keepBufferBytes) this.buf = Buffer.allocUnsafe(256);
    this.busy = true;
    try {
      this.pos = 0;
      this.frameStart = -1;
      this.framing = false;
      this.write2(OP.PROTO, 4);
      this.framing = true;
      if (asTuple) this.saveTuple(value as unknown[], this.memo, 1, false);
      else this.save(value, 0, false);
      this.write1(OP.STOP);
      this.commitFrame();
      this.framing = false;
      return this.pos;
    } catch (err) {
      // Nothing lent survives a failed call: a buffer grown past the keep size goes now (encode() releases it only on success).
      if (this.buf.length > this.keepBufferBytes) this.buf = Buffer.allocUnsafe(256);
      // The encoder recurses: a value nested deep enough exhausts the JS stack
      // before MAX_DEPTH (tuples, dicts and records use more stack per level than
      // lists, and the caller's own stack counts). Say so, not "Maximum call stack".
      if (err instanceof RangeError && /call stack/i.test(err.message)) {
        throw new RangeError(
          `cannot pickle a value nested this deeply: the stack ran out (lists can nest up to ${MAX_DEPTH} levels; ` +
            'tuples, dicts, sets and records fewer)',
        );
      }
      throw err;
    } finally {
      this.memo.clear();
      this.keyMemo.clear();
      this.globalMemo.clear();
      this.active.clear();
      this.memoSize = 0;
      this.busy = false;
    }
  }

  // --- output and framing (CPython's _Pickler_Write / _Pickler_CommitFrame) ---

  private ensure(n: number): void {
    let needed = n;
    if (this.framing && this.frameStart === -1) needed += FRAME_HEADER_SIZE;
    if (this.pos + needed > this.buf.length) {
      let size = this.buf.length * 2;
      while (size < this.pos + needed) size *= 2;
      const bigger = Buffer.allocUnsafe(size);
      this.buf.copy(bigger, 0, 0, this.pos);
      this.buf = bigger;
    }
    if (this.framing && this.frameStart === -1) {
      this.frameStart = this.pos;
      this.pos += FRAME_HEADER_SIZE;
    }
  }

  private write1(a: number): void {
    this.ensure(1);
    this.buf[this.pos++] = a;
  }

  private write2(a: number, b: number): void {
    this.ensure(2);
    this.buf[this.pos++] = a;
    this.buf[this.pos++] = b;
  }

  private commitFrame(): void {
    if (!this.framing || this.frameStart === -1) return;
    const length = this.pos - this.frameStart - FRAME_HEADER_SIZE;
    if (length >= FRAME_SIZE_MIN) {
      this.buf[this.frameStart] = OP.FRAME;
      this.buf.writeUInt32LE(length, this.frameStart + 1);
      this.buf.writeUInt32LE(0, this.frameStart + 5);
    } else {
      this.buf.copy(this.buf, this.frameStart, this.frameStart + FRAME_HEADER_SIZE, this.pos);
      this.pos -= FRAME_HEADER_SIZE;
    }
    this.frameStart = -1;
  }

  /** Before each object: a frame that reached 64 KiB is closed. */
  private opcodeBoundary(): void {
    if (this.framing && this.frameStart !== -1 && this.pos - this.frameStart - FRAME_HEADER_SIZE >= FRAME_SIZE_TARGET) {
      this.commitFrame();
    }
  }

  /**
   * A length-prefixed payload (str, bytes). One of 64 KiB or more goes
   * outside any frame, as CPython writes it.
   */
  private writeCounted(small: number, medium: number, large: number, length: number, payload: (at: number) => void): void {
    const bypass = length >= FRAME_SIZE_TARGET;
    if (bypass) {
      this.commitFrame();
      this.framing = false;
    }
    const header = length <= 0xff ? 2 : length <= 0xffffffff ? 5 : 9;
    this.ensure(header + length);
    const buf = this.buf;
    if (length <= 0xff) {
      buf[this.pos++] = small;
      buf[this.pos++] = length;
    } else if (length <= 0xffffffff) {
      buf[this.pos++] = medium;
      buf.writeUInt32LE(length, this.pos);
      this.pos += 4;
    } else {
      buf[this.pos++] = large;
      buf.writeUInt32LE(length % 2 ** 32, this.pos);
      buf.writeUInt32LE(Math.floor(length / 2 ** 32), this.pos + 4);
      this.pos += 8;
    }
    payload(this.pos);
    this.pos += length;
    if (bypass) this.framing = true;
  }

  // --- memo ---

  private memoPut(table: Map<unknown, number>, key: unknown): void {
    table.set(key, this.memoSize++);
    this.write1(OP.MEMOIZE);
  }

  private memoGet(index: number): void {
    if (index < 256) {
      this.write2(OP.BINGET, index);
    } else {
      this.ensure(5);
      this.buf[this.pos++] = OP.LONG_BINGET;
      this.buf.writeUInt32LE(index, this.pos);
      this.pos += 4;
    }
  }

  /** Enters an object whose memo entry follows its contents; a cycle that memoizes nothing new is a Tuple containing itself. */
  private enter(obj: object): number | undefined {
    const previous = this.active.get(obj);
    if (previous === this.memoSize) {
      throw new TypeError(
        `cannot pickle a ${typeName(obj)} that contains itself: Python tuples and frozensets can only contain ` +
          'themselves through a list, dict or set',
      );
    }
    this.active.set(obj, this.memoSize);
    return previous;
  }

  private leave(obj: object, previous: number | undefined): void {
    if (previous === undefined) this.active.delete(obj);
    else this.active.set(obj, previous);
  }

  // --- values ---

  /** `asKey`: the value is a dict key or a set item, which Python requires to be hashable. */
  private save(v: unknown, depth: number, asKey: boolean): void {
    this.opcodeBoundary();
    switch (typeof v) {
      case 'undefined':
        this.write1(OP.NONE);
        break;
      case 'boolean':
        this.write1(v ? OP.NEWTRUE : OP.NEWFALSE);
        break;
      case 'number':
        if (Number.isInteger(v) && !Object.is(v, -0)) this.saveInt(v);
        else this.saveFloat(v);
        break;
      case 'bigint':
        if (v >= -0x80000000n && v <= 0x7fffffffn) this.saveInt(Number(v));
        else this.saveLong(v);
        break;
      case 'string':
        this.saveStr(v);
        break;
      case 'object':
        if (v === null) this.write1(OP.NONE);
        else this.saveObject(v, depth, asKey);
        break;
      default:
        throw new TypeError(`cannot pickle a ${typeof v}: the pickle serializer sends plain data`);
    }
  }

  private saveInt(n: number): void {
    if (n >= 0 && n <= 0xff) {
      this.write2(OP.BININT1, n);
    } else if (n >= 0 && n <= 0xffff) {
      this.ensure(3);
      this.buf[this.pos++] = OP.BININT2;
      this.buf.writeUInt16LE(n, this.pos);
      this.pos += 2;
    } else if (n >= -0x80000000 && n <= 0x7fffffff) {
      this.ensure(5);
      this.buf[this.pos++] = OP.BININT;
      this.buf.writeInt32LE(n, this.pos);
      this.pos += 4;
    } else {
      this.saveLong(BigInt(n));
    }
  }

  private saveLong(x: bigint): void {
    const bytes = encodeLong(x);
    const n = bytes.length;
    if (n < 256) {
      this.ensure(2 + n);
      this.buf[this.pos++] = OP.LONG1;
      this.buf[this.pos++] = n;
    } else {
      if (n > 0x7fffffff) throw new RangeError('int too large to pickle');
      this.ensure(5 + n);
      this.buf[this.pos++] = OP.LONG4;
      this.buf.writeInt32LE(n, this.pos);
      this.pos += 4;
    }
    this.buf.set(bytes, this.pos);
    this.pos += n;
  }

  private saveFloat(x: number): void {
    this.ensure(9);
    this.buf[this.pos++] = OP.BINFLOAT;
    this.buf.writeDoubleBE(x, this.pos);
    this.pos += 8;
  }

  private saveStr(s: string): void {
    const index = this.memo.get(s);
    if (index !== undefined) return this.memoGet(index);
    const length = utf8Length(s);
    this.writeCounted(OP.SHORT_BINUNICODE, OP.BINUNICODE, OP.BINUNICODE8, length, (at) => {
      writeUtf8(s, this.buf, at);
    });
    this.memoPut(this.memo, s);
  }

  private saveBytes(key: object, bytes: Uint8Array): void {
    this.writeCounted(OP.SHORT_BINBYTES, OP.BINBYTES, OP.BINBYTES8, bytes.length, (at) => {
      this.buf.set(bytes, at);
    });
    this.memoPut(this.memo, key);
  }

  private saveObject(v: object, depth: number, asKey: boolean): void {
    if (depth >= MAX_DEPTH) {
      throw new RangeError(`cannot pickle a value nested more than ${MAX_DEPTH} levels deep`);
    }
    const keyed = asKey && (Array.isArray(v) || v instanceof Set);
    const table = keyed ? this.keyMemo : this.memo;
    const index = table.get(v);
    if (index !== undefined) return this.memoGet(index);
    const next = depth + 1;

    if (v instanceof Uint8Array) return this.saveBytes(v, v);
    if (ArrayBuffer.isView(v)) return this.saveBytes(v, new Uint8Array(v.buffer, v.byteOffset, v.byteLength));
    if (v instanceof ArrayBuffer || (typeof SharedArrayBuffer !== 'undefined' && v instanceof SharedArrayBuffer)) {
      return this.saveBytes(v, new Uint8Array(v));
    }
    if (v instanceof Tuple || (keyed && Array.isArray(v))) return this.saveTuple(v as unknown[], table, next, asKey);
    if (Array.isArray(v)) return this.saveList(v, next);
    if (v instanceof Set) {
      return keyed ? this.saveFrozenset(v, table, next) : this.saveSet(v, next);
    }
    if (v instanceof PyGlobal) return this.saveGlobal(v);
    if (v instanceof PyObject) return this.saveReduce(v, next);
    if (v instanceof PyComplex) {
      const args = new Tuple(new FloatValue(v.real), new FloatValue(v.imag));
      return this.saveReduce(new PyObject(BUILTINS_COMPLEX, args), next, v);
    }
    if (v instanceof FloatValue || v instanceof PyFloat) {
      return this.saveFloat(v.value);
    }
    if (asKey && (v instanceof Map || isPlainObject(v))) {
      throw new TypeError(
        'cannot pickle a Map or plain object as a Map key or Set item: Python dicts are not hashable',
      );
    }
    if (v instanceof Map) return this.saveDict(v, v.size, v.entries(), next);
    if (isPlainObject(v)) {
      const keys = Object.keys(v);
      return this.saveDict(v, keys.length, keys.map((k): [string, unknown] => [k, v[k]]).values(), next);
    }
    throw new TypeError(
      `cannot pickle ${typeName(v)}: the pickle serializer sends null, booleans, numbers, bigints, strings, ` +
        'Uint8Array, arrays, Tuple, plain objects, Map, Set, PyComplex, PyGlobal and PyObject',
    );
  }

  private saveTuple(items: unknown[], table: Map<unknown, number>, depth: number, asKey: boolean): void {
    const n = items.length;
    if (n === 0) {
      this.write1(OP.EMPTY_TUPLE);
      return;
    }
    const previous = this.enter(items);
    if (n > 3) this.write1(OP.MARK);
    for (let i = 0; i < n; i++) this.save(items[i], depth, asKey);
    this.leave(items, previous);
    const index = table.get(items);
    if (index !== undefined) {
      // It was memoized while its items were written (a cycle through a list or dict): drop the copy.
      if (n > 3) this.write1(OP.POP_MARK);
      else for (let i = 0; i < n; i++) this.write1(OP.POP);
      return this.memoGet(index);
    }
    this.write1(n > 3 ? OP.TUPLE : OP.TUPLE1 + n - 1);
    this.memoPut(table, items);
  }

  private saveList(list: unknown[], depth: number): void {
    this.write1(OP.EMPTY_LIST);
    this.memoPut(this.memo, list);
    const n = list.length;
    if (n === 0) return;
    if (n === 1) {
      this.save(list[0], depth, false);
      this.write1(OP.APPEND);
      return;
    }
    let total = 0;
    do {
      this.write1(OP.MARK);
      for (let batch = 0; batch < BATCHSIZE && total < list.length; batch++) this.save(list[total++], depth, false);
      this.write1(OP.APPENDS);
    } while (total < list.length);
  }

  private saveDict(dict: object, size: number, entries: Iterator<[unknown, unknown]>, depth: number): void {
    this.write1(OP.EMPTY_DICT);
    this.memoPut(this.memo, dict);
    if (size === 0) return;
    if (size === 1) {
      const [key, value] = entries.next().value as [unknown, unknown];
      this.save(key, depth, true);
      this.save(value, depth, false);
      this.write1(OP.SETITEM);
      return;
    }
    let batch: number;
    do {
      batch = 0;
      this.write1(OP.MARK);
      for (let entry = entries.next(); !entry.done; entry = entries.next()) {
        this.save(entry.value[0], depth, true);
        this.save(entry.value[1], depth, false);
        if (++batch === BATCHSIZE) break;
      }
      this.write1(OP.SETITEMS);
    } while (batch === BATCHSIZE);
  }

  private saveSet(set: Set<unknown>, depth: number): void {
    this.write1(OP.EMPTY_SET);
    this.memoPut(this.memo, set);
    if (set.size === 0) return;
    const items = set.values();
    let batch: number;
    do {
      batch = 0;
      this.write1(OP.MARK);
      for (let item = items.next(); !item.done; item = items.next()) {
        this.save(item.value, depth, true);
        if (++batch === BATCHSIZE) break;
      }
      this.write1(OP.ADDITEMS);
    } while (batch === BATCHSIZE);
  }

  private saveFrozenset(set: Set<unknown>, table: Map<unknown, number>, depth: number): void {
    const previous = this.enter(set);
    this.write1(OP.MARK);
    for (const item of set) this.save(item, depth, true);
    this.leave(set, previous);
    const index = table.get(set);
    if (index !== undefined) {
      this.write1(OP.POP_MARK);
      return this.memoGet(index);
    }
    this.write1(OP.FROZENSET);
    this.memoPut(table, set);
  }

  private saveGlobal(g: PyGlobal): void {
    const key = `${g.module}\0${g.name}`;
    const index = this.globalMemo.get(key);
    if (index !== undefined) return this.memoGet(index);
    if (typeof g.module !== 'string' || typeof g.name !== 'string') {
      throw new TypeError('a PyGlobal needs a string module and name');
    }
    this.save(g.module, 0, false);
    this.save(g.name, 0, false);
    this.write1(OP.STACK_GLOBAL);
    this.memoPut(this.globalMemo, key);
  }

  /** A `PyObject` as the recipe it records (CPython's `save_reduce`). */
  private saveReduce(obj: PyObject, depth: number, memoKey: object = obj): void {
    const { kind, callable } = obj;
    if (!(callable instanceof PyGlobal || callable instanceof PyObject)) {
      throw new TypeError('a PyObject needs a PyGlobal or PyObject as its callable');
    }
    if (!Array.isArray(obj.args)) throw new TypeError('PyObject args must be an array');
    const previous = this.enter(memoKey);
    if (kind === 'inst' || kind === 'obj') {
      this.write1(OP.MARK);
      this.save(callable, depth, false);
      for (const arg of obj.args) this.save(arg, depth, false);
      this.write1(OP.OBJ);
    } else if (kind === 'build') {
      this.save(callable, depth, false);
    } else {
      this.save(callable, depth, false);
      this.save(Tuple.from(obj.args), depth, false);
      if (kind === 'newobj_ex') {
        this.save(obj.kwargs ?? {}, depth, false);
        this.write1(OP.NEWOBJ_EX);
      } else {
        this.write1(kind === 'newobj' ? OP.NEWOBJ : OP.REDUCE);
      }
    }
    this.leave(memoKey, previous);
    const index = this.memo.get(memoKey);
    if (index !== undefined) {
      this.write1(OP.POP);
      return this.memoGet(index);
    }
    this.memoPut(this.memo, memoKey);
    if (obj.listItems !== undefined && obj.listItems.length > 0) this.batchItems(obj.listItems.map((v) => [v]), depth);
    if (obj.dictItems !== undefined) {
      const entries = obj.dictItems instanceof Map ? [...obj.dictItems] : Object.entries(obj.dictItems);
      if (entries.length > 0) this.batchItems(entries, depth);
    }
    if (obj.state !== undefined) {
      this.save(obj.state, depth, false);
      this.write1(OP.BUILD);
    }
  }

  /** APPEND(S) of single items or SETITEM(S) of pairs, as CPython's `batch_list` / `batch_dict`. */
  private batchItems(items: unknown[][], depth: number): void {
    const pairs = items[0]!.length === 2;
    const saveItem = (item: unknown[]): void => {
      if (pairs) {
        this.save(item[0], depth, true);
        this.save(item[1], depth, false);
      } else {
        this.save(item[0], depth, false);
      }
    };
    for (let start = 0; start < items.length; start += BATCHSIZE) {
      const count = Math.min(BATCHSIZE, items.length - start);
      if (count === 1) {
        saveItem(items[start]!);
        this.write1(pairs ? OP.SETITEM : OP.APPEND);
      } else {
        this.write1(OP.MARK);
        for (let i = start; i < start + count; i++) saveItem(items[i]!);
        this.write1(pairs ? OP.SETITEMS : OP.APPENDS);
      }
    }
  }
}
