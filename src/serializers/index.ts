/** Serializers: msgpack (default), json, pickle, or your own `{ encode, decode }`. */
export type { Serializer, SerializerOption } from './types.js';
export { PyComplex, PyFloat, PyGlobal, PyObject, Tuple } from './pickle/index.js';
export type { PyObjectKind, PyObjectOptions } from './pickle/index.js';
