/**
 * `Proxy`: a handle on one object a manager server holds (Python's
 * `BaseProxy` / `AutoProxy`). Every name the server exposes for the object is
 * a method of the proxy, made on the fly by a JS `Proxy` around it, so
 * `await q.put('x')` is `q.callMethod('put', ['x'])`.
 */
import { Kwargs } from './protocol.js';
import type { CallOptions } from './client-options.js';
import { checkCall } from './client-options.js';

/** What a proxy needs from the client that made it. */
export interface ProxyOwner {
  call(proxy: Proxy, name: string, args: readonly unknown[], kwds: Record<string, unknown>, options: CallOptions): Promise<unknown>;
  release(proxy: Proxy): Promise<void>;
}

/** The state behind one proxy, kept off the object so that exposed names never collide with it. */
export interface ProxyState {
  readonly owner: ProxyOwner;
  readonly typeid: string;
  readonly id: string;
  readonly exposed: readonly string[];
  readonly pinned: boolean;
}

/**
 * A method of the managed object as the proxy offers it: positional
 * arguments, then optionally one `Kwargs` for Python's keyword arguments.
 *
 * @example
 * ```ts
 * const put: ProxyMethod = queue.put;
 * await put('item', kwargs({ timeout: 1 }));
 * ```
 */
export type ProxyMethod = (...args: unknown[]) => Promise<unknown>;

/**
 * Any exposed method by name, untyped: what `create()` returns a proxy as.
 *
 * @example
 * ```ts
 * const obj: AnyProxy = await manager.create('get_queue');
 * await obj.put('hello');
 * ```
 */
export type AnyProxy = Proxy & { [method: string]: ProxyMethod };

const states = new WeakMap<object, ProxyState>();

/** The state of `proxy` (the JS `Proxy` or the object under it), or `undefined` when it is not a proxy. */
export function proxyState(proxy: unknown): ProxyState | undefined {
  return typeof proxy === 'object' && proxy !== null ? states.get(proxy) : undefined;
}

function stateOf(proxy: unknown): ProxyState {
  const state = proxyState(proxy);
  if (state === undefined) throw new TypeError('this is not a manager Proxy (call its methods on the proxy itself)');
  return state;
}

// The members a proxy keeps for itself: an exposed method of the same name is reached with callMethod.
const OWN_MEMBERS: ReadonlySet<PropertyKey> = new Set(['typeid', 'id', 'exposed', 'callMethod', 'getValue', '_callmethod', '_getvalue']);

const JsProxy = globalThis.Proxy;

// Shared by every call made without keywords or options (the owner only reads them): two objects fewer per call.
const NO_KWDS: Record<string, unknown> = Object.freeze({});
const NO_OPTIONS: CallOptions = Object.freeze({});

/**
 * One object held by a manager server (Python's `BaseProxy`). Every name in
 * `exposed` is also a method: `await q.put('x')` is
 * `q.callMethod('put', ['x'])`, and a trailing `kwargs({...})` argument
 * travels as Python's keyword arguments. Exposed names win over every member
 * but `typeid`, `id`, `exposed`, `callMethod`, `getValue` and their Python
 * aliases, so a Lock proxy's `release()` is the lock's own; to drop the
 * reference, call `manager.release(proxy)` (or `await using`). `then` is never
 * a method: a proxy is not a thenable.
 *
 * @example
 * ```ts
 * await using q = await manager.Queue();
 * await q.put('hello');
 * console.log(await q.get(kwargs({ timeout: 1 }))); // 'hello'
 * ```
 */
export class Proxy implements AsyncDisposable {
  /** @internal Made by a `ManagerClient`; use its `create()` or typeid methods. */
  constructor(state: ProxyState) {
    const methods = new Map<string, ProxyMethod>();
    const exposed = new Set(state.exposed);
    const method = (name: string): ProxyMethod => {
      let fn = methods.get(name);
      if (fn === undefined) {
        fn = (...args: unknown[]): Promise<unknown> => {
          const last = args.length === 0 ? undefined : args[args.length - 1];
          if (last instanceof Kwargs) return state.owner.call(wrapped, name, args.slice(0, -1), { ...last }, NO_OPTIONS);
          return state.owner.call(wrapped, name, args, NO_KWDS, NO_OPTIONS);
        };
        Object.defineProperty(fn, 'name', { value: name });
        methods.set(name, fn);
      }
      return fn;
    };
    const wrapped: Proxy = new JsProxy(this, {
      get(target, prop, receiver) {
        if (prop === 'then') return undefined;
        if (typeof prop === 'string' && exposed.has(prop) && !OWN_MEMBERS.has(prop)) return method(prop);
        return Reflect.get(target, prop, receiver);
      },
      has(target, prop) {
        if (prop === 'then') return false;
        return (typeof prop === 'string' && exposed.has(prop)) || Reflect.has(target, prop);
      },
    });
    states.set(this, state);
    states.set(wrapped, state);
    return wrapped;
  }

  /** The typeid the object was created as (`'Queue'`, `'dict'`, a registered name). */
  get typeid(): string {
    return stateOf(this).typeid;
  }

  /** The object's ident on the server (Python's `token.id`). */
  get id(): string {
    return stateOf(this).id;
  }

  /** The method names the server lets this proxy call. */
  get exposed(): readonly string[] {
    return stateOf(this).exposed;
  }

  /**
   * Calls `name` on the managed object with positional `args` and keyword
   * `kwds`, and resolves to its result (a `'#PROXY'` result becomes a new
   * `Proxy`). A failure on the server rejects with `RemoteError`. `signal`
   * and `timeout` (ms) abort the wait: the call rejects at once and its call
   * connection is closed (a Python server still finishes the call).
   *
   * @example
   * ```ts
   * const item = await q.callMethod('get', [], { timeout: 5 }, { signal: AbortSignal.timeout(10_000) });
   * ```
   */
  callMethod(
    name: string,
    args?: readonly unknown[],
    kwds?: Record<string, unknown>,
    options?: { signal?: AbortSignal; timeout?: number },
  ): Promise<unknown> {
    try {
      const state = stateOf(this);
      const call = checkCall(name, args, kwds, options);
      return state.owner.call(this, call.name, call.args, call.kwds, call.options);
    } catch (err) {
      return Promise.reject(err);
    }
  }

  /**
   * A copy of the managed object itself (Python's `_getvalue()`, the server's
   * `#GETVALUE`), decoded like any value.
   *
   * @example
   * ```ts
   * const d = await manager.dict({ a: 1 });
   * console.log(await d.getValue()); // { a: 1 }
   * ```
   */
  getValue(): Promise<unknown> {
    return this.callMethod('#GETVALUE');
  }

  /**
   * Releases the proxy's reference (its manager's `release(this)`).
   *
   * @example
   * ```ts
   * {
   *   await using lock = await manager.Lock();
   *   await lock.acquire();
   *   await lock.release();
   * } // decref'd here
   * ```
   */
  [Symbol.asyncDispose](): Promise<void> {
    return stateOf(this).owner.release(this);
  }

  /** How `console.log` shows a proxy: Python's `<AutoProxy[Queue] object, typeid 'Queue' at 0x…>`, shorter. */
  [Symbol.for('nodejs.util.inspect.custom')](): string {
    const state = stateOf(this);
    return `Proxy [${state.typeid} ${state.id}]`;
  }

  /**
   * Python-compatible name of {@link Proxy.callMethod}.
   *
   * @example
   * ```ts
   * await q._callmethod('put', ['x']);
   * ```
   */
  _callmethod(
    name: string,
    args?: readonly unknown[],
    kwds?: Record<string, unknown>,
    options?: { signal?: AbortSignal; timeout?: number },
  ): Promise<unknown> {
    return this.callMethod(name, args, kwds, options);
  }

  /**
   * Python-compatible name of {@link Proxy.getValue}.
   *
   * @example
   * ```ts
   * const copy = await d._getvalue();
   * ```
   */
  _getvalue(): Promise<unknown> {
    return this.getValue();
  }
}

/**
 * A `Queue` or `JoinableQueue` proxy (Python's `queue.Queue`). Timeouts are
 * seconds, as Python takes them: `get(kwargs({ timeout: 0.5 }))`.
 *
 * @example
 * ```ts
 * const q: QueueProxy = await manager.Queue();
 * await q.put(1);
 * console.log(await q.qsize(), await q.get()); // 1 1
 * ```
 */
export interface QueueProxy extends Proxy {
  put(item: unknown, ...rest: unknown[]): Promise<null>;
  put_nowait(item: unknown): Promise<null>;
  get(...args: unknown[]): Promise<unknown>;
  get_nowait(): Promise<unknown>;
  qsize(): Promise<number>;
  empty(): Promise<boolean>;
  full(): Promise<boolean>;
  task_done(): Promise<null>;
  join(): Promise<null>;
}

/**
 * A `dict` proxy. Python's `keys()`, `values()` and `items()` arrive as arrays.
 *
 * @example
 * ```ts
 * const d: DictProxy = await manager.dict({ a: 1 });
 * await d.__setitem__(2, 'two');      // non-string keys make the dict a Map when read back
 * console.log(await d.get('a'), await d.keys()); // 1 [ 'a', 2 ]
 * ```
 */
export interface DictProxy extends Proxy {
  __getitem__(key: unknown): Promise<unknown>;
  __setitem__(key: unknown, value: unknown): Promise<null>;
  __delitem__(key: unknown): Promise<null>;
  __contains__(key: unknown): Promise<boolean>;
  __len__(): Promise<number>;
  get(key: unknown, ...rest: unknown[]): Promise<unknown>;
  keys(): Promise<unknown[]>;
  values(): Promise<unknown[]>;
  items(): Promise<unknown[]>;
  pop(key: unknown, ...rest: unknown[]): Promise<unknown>;
  popitem(): Promise<unknown>;
  setdefault(key: unknown, ...rest: unknown[]): Promise<unknown>;
  update(...args: unknown[]): Promise<null>;
  clear(): Promise<null>;
  copy(): Promise<unknown>;
  /** Answered `'#PROXY'`: an `Iterator` proxy (call its `__next__()` until `StopIteration`). */
  __iter__(): Promise<AnyProxy>;
}

/**
 * A `list` proxy.
 *
 * @example
 * ```ts
 * const l: ListProxy = await manager.list([1, 2]);
 * await l.append(3);
 * console.log(await l.index(3), await l.__len__()); // 2 3
 * ```
 */
export interface ListProxy extends Proxy {
  __getitem__(index: unknown): Promise<unknown>;
  __setitem__(index: unknown, value: unknown): Promise<null>;
  __delitem__(index: unknown): Promise<null>;
  __contains__(value: unknown): Promise<boolean>;
  __len__(): Promise<number>;
  append(value: unknown): Promise<null>;
  extend(values: unknown): Promise<null>;
  insert(index: number, value: unknown): Promise<null>;
  index(value: unknown, ...rest: unknown[]): Promise<number>;
  count(value: unknown): Promise<number>;
  pop(...index: unknown[]): Promise<unknown>;
  remove(value: unknown): Promise<null>;
  reverse(): Promise<null>;
  sort(...args: unknown[]): Promise<null>;
  __add__(other: unknown): Promise<unknown[]>;
  __mul__(n: number): Promise<unknown[]>;
  __rmul__(n: number): Promise<unknown[]>;
  __imul__(n: number): Promise<unknown>;
  /** A pickled `list_reverseiterator`: an inert `PyObject` here. */
  __reversed__(): Promise<unknown>;
}

/**
 * A `Namespace` proxy: attributes are read and written through Python's
 * `__getattribute__` / `__setattr__` (what Python's `NamespaceProxy` does for `ns.x`).
 *
 * @example
 * ```ts
 * const ns: NamespaceProxy = await manager.Namespace({ x: 1 });
 * await ns.__setattr__('y', 2);
 * console.log(await ns.__getattribute__('x')); // 1
 * ```
 */
export interface NamespaceProxy extends Proxy {
  __getattribute__(name: string): Promise<unknown>;
  __setattr__(name: string, value: unknown): Promise<null>;
  __delattr__(name: string): Promise<null>;
}

/**
 * A `Value` proxy.
 *
 * @example
 * ```ts
 * const v: ValueProxy = await manager.Value('i', 7);
 * await v.set(8);
 * console.log(await v.get()); // 8
 * ```
 */
export interface ValueProxy extends Proxy {
  get(): Promise<unknown>;
  set(value: unknown): Promise<null>;
}

/**
 * An `Array` proxy (Python's `array.array`).
 *
 * @example
 * ```ts
 * const a: ArrayProxy = await manager.Array('i', [1, 2, 3]);
 * console.log(await a.__getitem__(1), await a.__len__()); // 2 3
 * ```
 */
export interface ArrayProxy extends Proxy {
  __getitem__(index: unknown): Promise<unknown>;
  __setitem__(index: unknown, value: unknown): Promise<null>;
  __len__(): Promise<number>;
}

/**
 * A `Lock`, `RLock`, `Semaphore` or `BoundedSemaphore` proxy: `release()` is
 * the lock's own (the reference is dropped with `manager.release(proxy)`).
 * Python's `acquire(blocking=True, timeout=None)`, timeout in seconds.
 *
 * @example
 * ```ts
 * const lock: AcquirerProxy = await manager.Lock();
 * if (await lock.acquire(true, 1)) await lock.release();
 * ```
 */
export interface AcquirerProxy extends Proxy {
  acquire(...args: unknown[]): Promise<boolean>;
  release(): Promise<null>;
}

/**
 * A `Condition` proxy (pinned: its calls share one server thread).
 *
 * @example
 * ```ts
 * const cond: ConditionProxy = await manager.Condition();
 * await cond.acquire();
 * await cond.notify_all();
 * await cond.release();
 * ```
 */
export interface ConditionProxy extends AcquirerProxy {
  wait(timeout?: number | null | Kwargs): Promise<boolean>;
  notify(n?: number | Kwargs): Promise<null>;
  notify_all(): Promise<null>;
}

/**
 * An `Event` proxy.
 *
 * @example
 * ```ts
 * const ev: EventProxy = await manager.Event();
 * await ev.set();
 * console.log(await ev.is_set(), await ev.wait(1)); // true true
 * ```
 */
export interface EventProxy extends Proxy {
  is_set(): Promise<boolean>;
  set(): Promise<null>;
  clear(): Promise<null>;
  wait(timeout?: number | null | Kwargs): Promise<boolean>;
}

/**
 * A `Barrier` proxy; read `parties`, `n_waiting` and `broken` with
 * `__getattribute__` (Python's `BarrierProxy` properties).
 *
 * @example
 * ```ts
 * const b: BarrierProxy = await manager.Barrier(2);
 * const index = await b.wait(); // resolves once a second client waits too
 * ```
 */
export interface BarrierProxy extends Proxy {
  wait(timeout?: number | null | Kwargs): Promise<number>;
  abort(): Promise<null>;
  reset(): Promise<null>;
  __getattribute__(name: 'parties' | 'n_waiting' | 'broken'): Promise<unknown>;
}
