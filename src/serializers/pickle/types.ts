/**
 * The JS values a pickle decodes to when it holds more than plain data, and the
 * `Tuple` helper for sending Python tuples. None of these classes ever runs
 * anything: they are records of what the pickle names.
 */

/**
 * A Python global a pickle refers to (a class, a function, a constant), such as
 * `datetime.datetime` or `os.system`. Decoding never imports it: this is only
 * its name. Encoding one writes a reference to the global, which the Python
 * peer resolves (imports) when it unpickles.
 *
 * @example
 * ```ts
 * const value = loads(bytes);
 * if (value instanceof PyGlobal) console.log(`${value.module}.${value.name}`);
 * ```
 */
export class PyGlobal {
  constructor(
    /** The module, e.g. `'collections'`. */
    readonly module: string,
    /** The qualified name in the module, e.g. `'OrderedDict'` or `'Outer.Inner'`. */
    readonly name: string,
  ) {}

  /** `'module.name'`, as Python writes the global. */
  toString(): string {
    return `${this.module}.${this.name}`;
  }
}

/**
 * How a pickle asked for an object that is not plain data:
 *
 * - `'reduce'`: `callable(*args)` (opcode REDUCE)
 * - `'newobj'`: `cls.__new__(cls, *args)` (NEWOBJ)
 * - `'newobj_ex'`: `cls.__new__(cls, *args, **kwargs)` (NEWOBJ_EX)
 * - `'inst'`, `'obj'`: `cls(*args)` (protocol 0/1 INST and OBJ)
 * - `'build'`: `state` applied with BUILD to `callable`, the object being built,
 *   when that object is a `PyGlobal` or an already built `PyObject`
 *
 * @example
 * ```ts
 * const obj = (await conn.recv()) as PyObject; // a datetime.date from Python
 * if (obj.kind === 'reduce') console.log(obj.callable, obj.args);
 * ```
 */
export type PyObjectKind = 'reduce' | 'newobj' | 'newobj_ex' | 'inst' | 'obj' | 'build';

/**
 * Optional parts of a {@link PyObject}.
 *
 * @example
 * ```ts
 * // argparse.Namespace() with its __dict__ set by BUILD: Python receives Namespace(verbose=True)
 * const ns = new PyObject(new PyGlobal('argparse', 'Namespace'), [], { state: { verbose: true } });
 * await conn.send(ns);
 * ```
 */
export interface PyObjectOptions {
  /** Defaults to `'reduce'`. */
  kind?: PyObjectKind;
  /** Keyword arguments of the call (`'newobj_ex'`). */
  kwargs?: Record<string, unknown> | Map<unknown, unknown>;
  /** Applied with BUILD after the call (Python's `__setstate__`, or an update of `__dict__`). */
  state?: unknown;
  /** Appended to the object after the call. */
  listItems?: unknown[];
  /** Set on the object (`obj[key] = value`) after the call. */
  dictItems?: Record<string, unknown> | Map<unknown, unknown>;
}

/**
 * An inert record of an object the pickle would have built by calling
 * something: `callable(*args)`, then `BUILD` with `state`, then appending
 * `listItems` and setting `dictItems` (the parts of Python's `__reduce__`
 * protocol). Decoding never calls anything; this is what is left to look at.
 *
 * Encoding a `PyObject` writes that recipe back, so a record received from
 * Python can be sent back and Python rebuilds the original object (Python
 * *does* run it: only send records you got from a peer you trust).
 *
 * @example
 * ```ts
 * // datetime.date(2024, 5, 17) sent by Python decodes to
 * // PyObject { kind: 'reduce', callable: PyGlobal { module: 'datetime', name: 'date' }, args: [Uint8Array [7, 232, 5, 17]] }
 * const date = new PyObject(new PyGlobal('datetime', 'date'), [2024, 5, 17]);
 * await conn.send(date); // Python receives datetime.date(2024, 5, 17)
 * ```
 */
export class PyObject {
  /** Which opcode asked for the object (a `PyObjectKind`); `'reduce'` by default. */
  readonly kind: PyObjectKind;
  /** What is called (a `PyGlobal` in everything CPython writes); for `'build'`, the object the state is applied to. */
  readonly callable: PyGlobal | PyObject;
  /** Positional arguments of the call. */
  readonly args: unknown[];
  /** Keyword arguments (`'newobj_ex'` only). */
  declare kwargs?: Record<string, unknown> | Map<unknown, unknown>;
  /** The argument of BUILD (`__setstate__`), when the pickle has one. */
  declare state?: unknown;
  /** Items the pickle appended to the object (list subclasses, `__reduce__` list items). */
  declare listItems?: unknown[];
  /** Items the pickle set on the object (dict subclasses, `__reduce__` dict items). */
  declare dictItems?: Record<string, unknown> | Map<unknown, unknown>;

  constructor(callable: PyGlobal | PyObject, args: unknown[] = [], options: PyObjectOptions = {}) {
    this.kind = options.kind ?? 'reduce';
    this.callable = callable;
    this.args = args;
    if (options.kwargs !== undefined) this.kwargs = options.kwargs;
    if (options.state !== undefined) this.state = options.state;
    if (options.listItems !== undefined) this.listItems = options.listItems;
    if (options.dictItems !== undefined) this.dictItems = options.dictItems;
  }
}

/**
 * A Python `complex`. Decoded from `complex(...)` in a pickle, and encoded as
 * one.
 *
 * @example
 * ```ts
 * await conn.send(new PyComplex(1, -2)); // Python receives (1-2j)
 * ```
 */
export class PyComplex {
  constructor(
    /** The real part. */
    readonly real: number,
    /** The imaginary part. */
    readonly imag: number,
  ) {}

  /** As Python prints it, e.g. `(1-2j)`. */
  toString(): string {
    return `(${this.real}${this.imag < 0 || Object.is(this.imag, -0) ? '-' : '+'}${Math.abs(this.imag)}j)`;
  }
}

/**
 * An array that the pickle serializer sends as a Python `tuple` (a plain array
 * is sent as a `list`). Decoded tuples are plain arrays.
 *
 * Unlike `Array`, `new Tuple(3)` is the 1-tuple `(3,)`. `map`, `filter` and
 * `slice` return plain arrays.
 *
 * @example
 * ```ts
 * await conn.send(new Tuple(1, 'a'));            // Python receives (1, 'a')
 * await conn.send(Tuple.from(['x', 'y']));       // ('x', 'y')
 * await conn.send(new Map([[Tuple.of(0, 0), 'origin']])); // {(0, 0): 'origin'}
 * ```
 */
export class Tuple<T = unknown> extends Array<T> {
  // NoInfer: `new Tuple(1, 'a')` is a Tuple<unknown>, rather than an error for 'a' not being a number.
  constructor(...items: NoInfer<T>[]) {
    super();
    for (let i = 0; i < items.length; i++) this.push(items[i] as T);
  }

  /** `map`, `filter`, `slice` and the like make plain arrays (sent as lists), not tuples. */
  static override get [Symbol.species](): ArrayConstructor {
    return Array;
  }

  static override of<T = unknown>(...items: NoInfer<T>[]): Tuple<T> {
    const tuple = new Tuple<T>();
    for (let i = 0; i < items.length; i++) tuple.push(items[i] as T);
    return tuple;
  }

  static override from<T, U = T>(
    items: Iterable<T> | ArrayLike<T>,
    mapfn?: (value: T, index: number) => U,
    thisArg?: unknown,
  ): Tuple<U> {
    const values: U[] = mapfn === undefined ? Array.from(items as Iterable<U>) : Array.from(items, mapfn, thisArg);
    const tuple = new Tuple<U>();
    for (let i = 0; i < values.length; i++) tuple.push(values[i] as U);
    return tuple;
  }
}

/**
 * A Python `float` whose value is integral (`1.0`, `-3.0`, `1e20`): a plain
 * integral `number` is sent as an `int`, so decoding with the `lossless`
 * option gives these floats this wrapper, and encoding writes it as a float.
 * It converts to its number (`+x`, arithmetic, `x.value`).
 *
 * @example
 * ```ts
 * await conn.send(new PyFloat(1)); // Python receives 1.0, not 1
 * const x = new PyFloat(2.5);
 * console.log(x.value + 1, String(new PyFloat(3))); // 3.5 '3.0'
 * ```
 */
export class PyFloat {
  constructor(
    /** The float's value. */
    readonly value: number,
  ) {}

  valueOf(): number {
    return this.value;
  }

  /** As Python prints it: `1.0`, `1e+20`, `inf`. */
  toString(): string {
    return formatPyFloat(this.value);
  }
}

/** Python's `repr(float)`: the shortest text that reads back the same, in Python's spelling. */
export function formatPyFloat(x: number): string {
  if (Number.isNaN(x)) return 'nan';
  if (x === Infinity) return 'inf';
  if (x === -Infinity) return '-inf';
  if (x === 0) return Object.is(x, -0) ? '-0.0' : '0.0';
  const abs = Math.abs(x);
  // Python switches to exponent notation below 1e-4 and from 1e16 on (float_repr_style 'short').
  if (abs >= 1e16 || abs < 1e-4) {
    const [mantissa, exponent] = x.toExponential().split('e') as [string, string];
    const exp = Number(exponent);
    return `${mantissa}e${exp < 0 ? '-' : '+'}${String(Math.abs(exp)).padStart(2, '0')}`;
  }
  const text = String(x);
  return /[.e]/.test(text) ? text : `${text}.0`;
}
