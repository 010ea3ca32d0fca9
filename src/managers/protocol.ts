/**
 * The manager protocol's messages, shared by the client and the server roles:
 * requests `(ident, methodname, args, kwds)`, replies `(kind, result)`, the
 * `Token` that names a managed object, and keyword arguments (`Kwargs`).
 * Everything travels pickled over authenticated connections (CPython's
 * `multiprocessing/managers.py`, `dispatch` and `Server.serve_client`).
 */
import type { Address } from '../listener/index.js';
import { RemoteError } from '../core/errors.js';
import type { RemoteErrorKind } from '../core/errors.js';
import { PyGlobal, PyObject, Tuple } from '../serializers/index.js';

/**
 * Keyword arguments of a manager call. As the last argument of a proxy
 * method, they travel as the call's `kwds`; a server hands a call's `kwds` to
 * the callable or method as one trailing `Kwargs` (test with `instanceof`).
 * Its own enumerable properties are the keywords.
 *
 * @example
 * ```ts
 * await queue.get(new Kwargs({ timeout: 1 })); // Python: queue.get(timeout=1)
 * ```
 */
export class Kwargs {
  [keyword: string]: unknown;

  constructor(kwds: Record<string, unknown> = {}) {
    if (kwds === null || typeof kwds !== 'object' || Array.isArray(kwds)) {
      throw new TypeError('kwargs() takes a plain object of keyword arguments');
    }
    for (const key of Object.keys(kwds)) {
      Object.defineProperty(this, key, { value: kwds[key], enumerable: true, writable: true, configurable: true });
    }
  }
}

/**
 * Keyword arguments for a proxy method call: `kwargs({ timeout: 1 })` is
 * Python's `timeout=1`.
 *
 * @example
 * ```ts
 * const item = await queue.get(kwargs({ block: true, timeout: 0.5 }));
 * ```
 */
export function kwargs(kwds: Record<string, unknown>): Kwargs {
  return new Kwargs(kwds);
}

/** The own enumerable keywords of a `Kwargs` (or plain object), as a plain object. */
export function keywordsOf(kwds: Kwargs | Record<string, unknown> | undefined | null): Record<string, unknown> {
  const out: Record<string, unknown> = {};
  if (kwds === undefined || kwds === null) return out;
  for (const key of Object.keys(kwds)) {
    Object.defineProperty(out, key, { value: kwds[key], enumerable: true, writable: true, configurable: true });
  }
  return out;
}

/** The global CPython pickles a token as. */
export const TOKEN_GLOBAL = new PyGlobal('multiprocessing.managers', 'Token');

/**
 * Names one managed object: Python's `multiprocessing.managers.Token`.
 *
 * @example
 * ```ts
 * const token = new Token('Queue', ['127.0.0.1', 50000], '7f3a2c1d');
 * ```
 */
export class Token {
  constructor(
    /** The typeid the object was created as (`'Queue'`, `'dict'`, a registered name). */
    readonly typeid: string,
    /** The manager server's address. */
    readonly address: Address,
    /** The object's ident on that server. */
    readonly id: string,
  ) {}
}

/** A token as CPython pickles it: `Token.__new__(Token)` then `__setstate__((typeid, address, id))`. */
export function tokenToPickle(token: Token): PyObject {
  return new PyObject(TOKEN_GLOBAL, [], { kind: 'newobj', state: new Tuple(token.typeid, pickleAddress(token.address), token.id) });
}

/** The Token a decoded value records, or `null` when it is not one. */
export function tokenFromPickle(value: unknown): Token | null {
  if (!(value instanceof PyObject)) return null;
  const cls = value.callable;
  if (!(cls instanceof PyGlobal) || cls.module !== TOKEN_GLOBAL.module || cls.name !== TOKEN_GLOBAL.name) return null;
  const state = value.state;
  if (!Array.isArray(state) || state.length !== 3) return null;
  const [typeid, address, id] = state as unknown[];
  if (typeof typeid !== 'string' || typeof id !== 'string') return null;
  const addr = addressFromPickle(address);
  return addr === null ? null : new Token(typeid, addr, id);
}

/** An address as Python holds it: AF_INET as a `(host, port)` tuple, a path as a str. */
export function pickleAddress(address: Address): unknown {
  if (typeof address === 'string') return address;
  if (Array.isArray(address)) return new Tuple(address[0], address[1]);
  const inet = address as { host: string; port: number };
  return new Tuple(inet.host, inet.port);
}

function addressFromPickle(value: unknown): Address | null {
  if (typeof value === 'string') return value;
  if (value instanceof Uint8Array) return Buffer.from(value).toString('latin1'); // Python 2-era abstract paths
  if (Array.isArray(value) && value.length === 2 && typeof value[0] === 'string' && typeof value[1] === 'number') {
    return [value[0], value[1]] as const;
  }
  return null;
}

/** The four parts of a request, as a server reads them. */
export interface Request {
  /** `null` for the server's own functions (`create`, `incref` …), an ident for a method call. */
  readonly id: string | null;
  readonly method: string;
  readonly args: unknown[];
  readonly kwds: Record<string, unknown> | Map<unknown, unknown>;
}

/** `(ident, methodname, args, kwds)`, as `dispatch` and `_callmethod` send it. */
export function encodeRequest(
  id: string | null,
  method: string,
  args: readonly unknown[] = [],
  kwds: Record<string, unknown> = {},
): Tuple {
  return new Tuple(id, method, Tuple.from(args), keywordsOf(kwds));
}

/** Reads a decoded request; throws a `TypeError` saying what is wrong with it. */
export function parseRequest(value: unknown): Request {
  if (!Array.isArray(value) || value.length !== 4) {
    throw new TypeError(`a request must be a 4-tuple (ident, methodname, args, kwds), got ${describeValue(value)}`);
  }
  const [id, method, args, kwds] = value as unknown[];
  if (id !== null && typeof id !== 'string') throw new TypeError(`the ident must be a str or None, got ${describeValue(id)}`);
  if (typeof method !== 'string') throw new TypeError(`the method name must be a str, got ${describeValue(method)}`);
  if (!Array.isArray(args)) throw new TypeError(`args must be a tuple, got ${describeValue(args)}`);
  const isDict = kwds instanceof Map || (kwds !== null && typeof kwds === 'object' && Object.getPrototypeOf(kwds) === Object.prototype);
  if (!isDict) throw new TypeError(`kwds must be a dict, got ${describeValue(kwds)}`);
  return { id, method, args, kwds: kwds as Record<string, unknown> | Map<unknown, unknown> };
}

/** The reply kinds of the manager protocol. */
export type ReplyKind = '#RETURN' | '#PROXY' | RemoteErrorKind;

const REPLY_KINDS: ReadonlySet<string> = new Set(['#RETURN', '#PROXY', '#ERROR', '#TRACEBACK', '#UNSERIALIZABLE']);

/** A reply as a server sends it, pickled as the tuple `(kind, result)`. */
export type Reply = readonly [kind: ReplyKind, result: unknown];

/** `(kind, result)`, as a server sends it (a plain pair: the server's encoder writes it as a tuple). */
export function encodeReply(kind: ReplyKind, result: unknown): Reply {
  return [kind, result];
}

/** Reads a decoded reply; throws a `TypeError` when it is not one. */
export function parseReply(value: unknown): { kind: ReplyKind; result: unknown } {
  if (!Array.isArray(value) || value.length !== 2 || typeof value[0] !== 'string' || !REPLY_KINDS.has(value[0])) {
    throw new TypeError(`a manager reply must be a pair (kind, result), got ${describeValue(value)}`);
  }
  return { kind: value[0] as ReplyKind, result: value[1] };
}

/** `'module.name'` of an exception record's class, or `null`. */
export function pyTypeOf(exception: unknown): string | null {
  let callable: unknown = exception;
  while (callable instanceof PyObject) callable = callable.callable;
  return callable instanceof PyGlobal ? `${callable.module}.${callable.name}` : null;
}

/** The error a failed reply stands for (Python's `convert_to_error`). */
export function remoteErrorOf(kind: RemoteErrorKind, result: unknown): RemoteError {
  if (kind === '#ERROR') {
    const exception = result instanceof PyObject ? result : null;
    const pyType = pyTypeOf(result);
    const args = exception !== null && Array.isArray(exception.args) ? exception.args : [];
    const detail = args.length === 1 ? String(args[0]) : args.length > 1 ? JSON.stringify(args.map(String)) : '';
    return new RemoteError(kind, `the manager's method raised ${pyType ?? 'an exception'}${detail === '' ? '' : `: ${detail}`}`, {
      exception,
      pyType,
    });
  }
  const text = typeof result === 'string' ? result : `(a ${describeValue(result)} instead of the traceback text)`;
  const what = kind === '#UNSERIALIZABLE' ? 'the manager could not pickle the result' : 'the manager call failed';
  return new RemoteError(kind, `${what}:\n${text}`, { traceback: text });
}

function describeValue(v: unknown): string {
  if (v === null) return 'None';
  if (Array.isArray(v)) return `a ${v.length}-item sequence`;
  if (v instanceof PyObject || v instanceof PyGlobal) return 'an object record';
  return typeof v;
}
