/**
 * The `pickle` serializer: exchange objects with unmodified Python programs
 * (`conn.send(obj)` / `conn.recv()` there).
 *
 * Encoding writes pickle protocol 4, which every CPython since 3.4 reads.
 * Decoding reads protocols 0-5 and never imports or calls anything: plain
 * data becomes JS values, everything else an inert {@link PyGlobal} or
 * {@link PyObject} record.
 *
 * | Python                    | JS (decoded)                                   | JS → Python (encoded)               |
 * |---------------------------|------------------------------------------------|-------------------------------------|
 * | `None`                    | `null`                                         | `null`, `undefined` → `None`        |
 * | `bool`                    | `boolean`                                      | `boolean`                           |
 * | `int`                     | `number` if a safe integer, else `bigint`      | integer `number`, any `bigint`      |
 * | `float`                   | `number`                                       | non-integer `number`, NaN, ±Infinity, -0 |
 * | `complex`                 | `PyComplex`                                    | `PyComplex`                         |
 * | `str`                     | `string`                                       | `string`                            |
 * | `bytes`, `bytearray`      | `Uint8Array`                                   | `Uint8Array` (and other views) → `bytes` |
 * | `list`, `tuple`           | `Array`                                        | `Array` → `list`, `Tuple` → `tuple` |
 * | `set`, `frozenset`        | `Set`                                          | `Set` → `set`                       |
 * | `dict`, `OrderedDict`     | plain object if all keys are `str`, else `Map` | plain object, `Map` → `dict`        |
 * | anything else             | `PyGlobal` / `PyObject` records                | `PyGlobal` / `PyObject` as recorded |
 *
 * Python requires dict keys and set items to be hashable, so as a `Map` key or
 * a `Set` item an `Array` is sent as a `tuple` and a `Set` as a `frozenset`.
 * An integral `number` is an `int` whatever its size, so `1e20` comes back as
 * `100000000000000000000n`. Strings keep lone surrogates both ways (Python's
 * `surrogatepass`).
 *
 * Decoding with `lossless` (`new PickleDecoder({ lossless: true })`,
 * `pickleSerializer({ lossless: true })`) keeps what the table above merges,
 * so that encoding the result writes the same Python value back: a tuple
 * decodes to a `Tuple`, an integral float to a `PyFloat`, every dict to a
 * `Map`, a bytearray, frozenset or OrderedDict to its `PyObject` record.
 *
 * @module
 */
import type { Serializer } from '../types.js';
import { PickleDecoder } from './decoder.js';
import type { PickleDecoderOptions } from './decoder.js';
import { PickleEncoder } from './encoder.js';

export { PyComplex, PyFloat, PyGlobal, PyObject, Tuple, formatPyFloat } from './types.js';
export { PickleDecoder } from './decoder.js';
export { PickleEncoder } from './encoder.js';
export type { PickleDecoderOptions } from './decoder.js';
export type { PyObjectKind, PyObjectOptions } from './types.js';

const sharedEncoder = new PickleEncoder();
const sharedDecoder = new PickleDecoder();

/**
 * `pickle.dumps(value, protocol=4)`.
 *
 * @throws TypeError for values with no Python counterpart (functions,
 *   symbols, class instances other than those listed in the module table).
 */
export function dumps(value: unknown): Uint8Array {
  return sharedEncoder.encode(value);
}

/**
 * `pickle.loads(bytes)`, without executing anything.
 *
 * @throws UnpicklingError when `bytes` is not a valid pickle.
 */
export function loads(bytes: Uint8Array): unknown {
  return sharedDecoder.decode(bytes);
}

/**
 * The `pickle` serializer; its encoder buffer is reused across messages.
 * With `lossless`, values decode so that they encode back to the same Python
 * values (see {@link PickleDecoderOptions}): what a manager server holds for
 * Python clients comes back as Python stored it.
 */
export function pickleSerializer(options: PickleDecoderOptions = {}): Serializer {
  const encoder = new PickleEncoder();
  const decoder = new PickleDecoder(options);
  return {
    encode: (value) => encoder.encode(value),
    decode: (bytes) => decoder.decode(bytes),
  };
}
