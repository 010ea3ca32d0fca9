/**
 * Python exceptions as the served objects throw them: inert `PyObject`
 * records of globals that every CPython 3.6–3.13 client can import, which a
 * `ManagerServer` answers `('#ERROR', record)` and the client raises.
 * `queue.Empty` is named through `queue`, never `_queue` (where 3.7+ defines
 * it): 3.6 has no `_queue` module and could not unpickle the reply.
 */
import { PyGlobal, PyObject } from '../../serializers/index.js';

/** `module.name(*args)` as an exception record. */
export function pyException(module: string, name: string, ...args: unknown[]): PyObject {
  return new PyObject(new PyGlobal(module, name), args);
}

const builtin = (name: string) => (...args: unknown[]): PyObject => pyException('builtins', name, ...args);

/** The exceptions the sync classes raise, by Python name. */
export const raise = {
  KeyError: builtin('KeyError'),
  IndexError: builtin('IndexError'),
  ValueError: builtin('ValueError'),
  TypeError: builtin('TypeError'),
  RuntimeError: builtin('RuntimeError'),
  AttributeError: builtin('AttributeError'),
  OverflowError: builtin('OverflowError'),
  MemoryError: builtin('MemoryError'),
  RecursionError: builtin('RecursionError'),
  StopIteration: builtin('StopIteration'),
  Empty: (): PyObject => pyException('queue', 'Empty'),
  Full: (): PyObject => pyException('queue', 'Full'),
  /** CPython 3.13+ only (as `Queue.shutdown()` is). */
  ShutDown: (): PyObject => pyException('queue', 'ShutDown'),
  BrokenBarrierError: (): PyObject => pyException('threading', 'BrokenBarrierError'),
} as const;

