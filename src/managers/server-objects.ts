/**
 * The objects a `ManagerServer` holds: idents, refcounts, exposure, and the
 * objects kept alive because a proxy to them is stored inside another held
 * value (CPython's `Server.id_to_obj`, `id_to_refcount` and
 * `id_to_local_proxy_obj`).
 */
import { reprStr as pyRepr } from './sync/repr.js';
import { PyGlobal, PyObject } from '../serializers/index.js';
import { tokenFromPickle, tokenToPickle, Token } from './protocol.js';
import type { Address } from '../listener/index.js';

/** What the server knows about one held object. */
export interface HeldObject {
  readonly obj: unknown;
  readonly typeid: string;
  /** As the client is told: the explicit list, or the public methods, then the `methodToTypeid` names. */
  readonly exposed: readonly string[];
  readonly exposedSet: ReadonlySet<string>;
  readonly methodToTypeid: ReadonlyMap<string, string> | null;
  /** Whether the object wants lossless values (tuples as `Tuple`, floats kept): the SyncManager classes. */
  readonly lossless: boolean;
  /**
   * Whether its methods may read `currentCall()` after an `await` (every
   * object but the SyncManager classes, which read it before their first).
   */
  readonly tracked: boolean;
}

/** A failure CPython reports as a Python exception in its traceback text (`KeyError: '1f'`). */
export class ServerFault extends Error {
  constructor(
    /** The Python exception type the text ends with. */
    readonly pyType: string,
    message: string,
  ) {
    super(message);
    this.name = pyType;
  }
}

/**
 * Public methods, as Python's `public_methods(obj)` (names in `dir(obj)` not
 * starting with `_` whose attribute is callable): function-valued data
 * properties, own or inherited up to `Object.prototype` (excluded), first
 * definition in the chain wins, `constructor` and `then` left out. Getters are
 * never invoked: a property defined by a getter is not a method. Sorted, as
 * `dir()` is.
 */
export function publicMethods(obj: unknown): string[] {
  if (obj === null || (typeof obj !== 'object' && typeof obj !== 'function')) return [];
  const seen = new Set<string>();
  const methods: string[] = [];
  for (let o: object | null = obj as object; o !== null && o !== Object.prototype; o = Object.getPrototypeOf(o) as object | null) {
    for (const name of Object.getOwnPropertyNames(o)) {
      if (seen.has(name)) continue;
      seen.add(name);
      if (name.startsWith('_') || name === 'constructor' || name === 'then') continue;
      const descriptor = Object.getOwnPropertyDescriptor(o, name);
      if (descriptor !== undefined && 'value' in descriptor && typeof descriptor.value === 'function') methods.push(name);
    }
  }
  return methods.sort();
}

/**
 * The function `obj` has under `name` (own or inherited, `Object.prototype`
 * excluded), read through descriptors so that no getter runs; `undefined`
 * when there is none.
 */
export function methodOf(obj: unknown, name: string): ((...args: unknown[]) => unknown) | undefined {
  if (obj === null || (typeof obj !== 'object' && typeof obj !== 'function')) return undefined;
  for (let o: object | null = obj as object; o !== null && o !== Object.prototype; o = Object.getPrototypeOf(o) as object | null) {
    const descriptor = Object.getOwnPropertyDescriptor(o, name);
    if (descriptor === undefined) continue;
    return 'value' in descriptor && typeof descriptor.value === 'function'
      ? (descriptor.value as (...args: unknown[]) => unknown)
      : undefined;
  }
  return undefined;
}

const REBUILD_PROXY = new PyGlobal('multiprocessing.managers', 'RebuildProxy');

/** The ident table of one server. */
export class ObjectTable {
  readonly #objects = new Map<string, HeldObject>();
  readonly #refcounts = new Map<string, number>();
  /** Objects a proxy stored in a held value names: never dropped, as CPython's `id_to_local_proxy_obj`. */
  readonly #stored = new Map<string, HeldObject>();
  readonly #identOf = new WeakMap<object, string>();
  #counter = 0;

  /**
   * The ident of `obj`: one object, one ident, for as long as it lives (CPython's
   * `'%x' % id(obj)`). A counter in hex, starting at 1 (CPython keeps `'0'` for
   * itself); a primitive value has no identity, so it gets a fresh ident each time.
   */
  identOf(obj: unknown): string {
    const keyable = obj !== null && (typeof obj === 'object' || typeof obj === 'function');
    if (keyable) {
      const known = this.#identOf.get(obj as object);
      if (known !== undefined) return known;
    }
    const ident = (++this.#counter).toString(16);
    if (keyable) this.#identOf.set(obj as object, ident);
    return ident;
  }

  /** Holds `held` under its ident (replacing what was there, as `create` does) and increfs it. */
  hold(held: HeldObject): string {
    const ident = this.identOf(held.obj);
    this.#objects.set(ident, held);
    if (!this.#refcounts.has(ident)) this.#refcounts.set(ident, 0);
    this.incref(ident);
    return ident;
  }

  /** The object `ident` names (held, or kept alive by a stored proxy), or `undefined`. */
  lookup(ident: string): HeldObject | undefined {
    return this.#objects.get(ident) ?? this.#stored.get(ident);
  }

  incref(ident: string): void {
    const count = this.#refcounts.get(ident);
    if (count !== undefined) {
      this.#refcounts.set(ident, count + 1);
      return;
    }
    // A client rebuilt a proxy from a stored value after every other reference
    // had gone: CPython restores the object from id_to_local_proxy_obj.
    const stored = this.#stored.get(ident);
    if (stored === undefined) throw new ServerFault('KeyError', pyRepr(ident));
    this.#refcounts.set(ident, 1);
    this.#objects.set(ident, stored);
  }

  decref(ident: string): void {
    const count = this.#refcounts.get(ident);
    if (count === undefined) {
      // CPython skips a decref of an object only a stored proxy keeps (its refcount is gone).
      if (this.#stored.has(ident)) return;
      throw new ServerFault('KeyError', pyRepr(ident));
    }
    if (count > 1) {
      this.#refcounts.set(ident, count - 1);
      return;
    }
    this.#refcounts.delete(ident);
    this.#objects.delete(ident);
  }

  /** CPython's `number_of_objects`: objects with a refcount. */
  get size(): number {
    return this.#refcounts.size;
  }

  /** `[ident, refcount, held]` of every counted object, idents sorted as CPython's `debug_info` sorts them. */
  counted(): Array<[string, number, HeldObject]> {
    const out: Array<[string, number, HeldObject]> = [];
    for (const ident of [...this.#refcounts.keys()].sort()) {
      const held = this.#objects.get(ident);
      if (held !== undefined) out.push([ident, this.#refcounts.get(ident)!, held]);
    }
    return out;
  }

  /**
   * Finds the proxies a decoded request carries (`RebuildProxy(func, token,
   * serializer, kwds)` records, Python's `BaseProxy.__reduce__`) whose token
   * names one of these objects: each such object is kept alive from now on,
   * and the record's token is rewritten in the canonical form (address as a
   * tuple), so that sending the value back makes Python rebuild a working
   * proxy whatever the decoder made of the tuples. The walk is iterative and
   * visits each container once, so neither deep nesting nor shared
   * references (a pickle's memo) can make it blow up.
   */
  adoptStoredProxies(value: unknown, isOwnAddress: (address: Address) => boolean): void {
    const stack: unknown[] = [value];
    const visited = new Set<object>();
    while (stack.length > 0) {
      const v = stack.pop();
      if (v === null || typeof v !== 'object' || ArrayBuffer.isView(v) || visited.has(v)) continue;
      visited.add(v);
      if (v instanceof PyObject) {
        this.#adopt(v, isOwnAddress);
        stack.push(v.callable, v.args, v.kwargs, v.state, v.listItems, v.dictItems);
      } else if (Array.isArray(v)) {
        for (let i = 0; i < v.length; i++) stack.push(v[i]);
      } else if (v instanceof Map) {
        for (const [k, item] of v) stack.push(k, item);
      } else if (v instanceof Set) {
        for (const item of v) stack.push(item);
      } else {
        for (const key of Object.keys(v)) stack.push((v as Record<string, unknown>)[key]);
      }
    }
  }

  #adopt(record: PyObject, isOwnAddress: (address: Address) => boolean): void {
    const own = this.#named(record, isOwnAddress);
    if (own === null) return;
    const [token, held] = own;
    if (!this.#stored.has(token.id)) this.#stored.set(token.id, held);
    record.args[1] = tokenToPickle(new Token(token.typeid, token.address, token.id));
  }

  /** The object a `RebuildProxy` record names, when its token is one of these objects'; else `undefined`. */
  namedBy(value: unknown, isOwnAddress: (address: Address) => boolean): unknown {
    return value instanceof PyObject ? this.#named(value, isOwnAddress)?.[1].obj : undefined;
  }

  #named(record: PyObject, isOwnAddress: (address: Address) => boolean): [Token, HeldObject] | null {
    const cls = record.callable;
    if (!(cls instanceof PyGlobal) || cls.module !== REBUILD_PROXY.module || cls.name !== REBUILD_PROXY.name) return null;
    if (record.args.length < 2) return null;
    const token = tokenFromPickle(record.args[1]);
    if (token === null || !isOwnAddress(token.address)) return null;
    const held = this.#objects.get(token.id) ?? this.#stored.get(token.id);
    return held === undefined ? null : [token, held];
  }

  /** Drops everything (the server closed). */
  clear(): void {
    this.#objects.clear();
    this.#refcounts.clear();
    this.#stored.clear();
  }
}

