// Placeholder until the pickle serializer (issue 5) lands.
import { UnpicklingError } from '../../errors.js';
import type { Serializer } from '../types.js';

export class PyGlobal {
  constructor(readonly module: string, readonly name: string) {}
}
export class PyObject {}
export class Tuple extends Array<unknown> {}
export function dumps(_value: unknown): Uint8Array {
  throw new Error('the pickle serializer is not implemented yet');
}
export function loads(_bytes: Uint8Array): unknown {
  throw new UnpicklingError('the pickle serializer is not implemented yet');
}
export function pickleSerializer(): Serializer {
  return { encode: dumps, decode: loads };
}
