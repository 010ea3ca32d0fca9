/**
 * The manager protocol's client role: `ManagerClient` uses the objects a
 * manager server (CPython's `BaseManager`/`SyncManager`, or a Node
 * `ManagerServer`) holds, through `Proxy` objects.
 *
 * A CPython server answers one request per connection on its control
 * connections (`handle_request`), so `create`, `decref` and the rest each open
 * a connection of their own, as CPython's client does. Method calls go over
 * call connections (`accept_connection`), one call in flight per connection.
 */
import { armCancel, untilAborted } from '../core/cancel.js';
import type { Connection } from '../connection/index.js';
import { ConnectionStateError, EOFError, ProtocolError } from '../core/errors.js';
import { Client } from '../listener/index.js';
import type { Address, ClientOptions } from '../listener/index.js';
import { dumps as pickleDumps } from '../serializers/pickle/index.js';
import {
  checkArgs,
  checkClientOptions,
  checkInt,
  checkKwds,
  checkTypeid,
  checkTypecode,
  DEFAULT_TIMEOUT,
  type CallOptions,
  type CheckedClientOptions,
  type ManagerClientOptions,
} from './client-options.js';
import { CallPool, clientClosedError, PinnedLane } from './client-pool.js';
import { encodeRequest, parseReply, remoteErrorOf, tokenFromPickle } from './protocol.js';
import {
  Proxy,
  proxyState,
  type AcquirerProxy,
  type AnyProxy,
  type ArrayProxy,
  type BarrierProxy,
  type ConditionProxy,
  type DictProxy,
  type EventProxy,
  type ListProxy,
  type NamespaceProxy,
  type ProxyOwner,
  type ProxyState,
  type QueueProxy,
  type ValueProxy,
} from './proxy.js';

/** Typeids whose proxies are pinned: a Python server gives their ownership to the thread of one connection. */
const PINNED_TYPEIDS: ReadonlySet<string> = new Set(['RLock', 'Condition']);

/** Decrefs sent at once by `close()`: each opens a connection, and a Python server starts a thread per connection. */
const CLOSE_CONCURRENCY = 8;

/** The reference one proxy holds; nothing in it leads back to the proxy, so the proxy can be collected. */
interface Reference {
  readonly ident: string;
  readonly lane: PinnedLane | null;
  released: boolean;
  /** Pickled requests of the calls made without arguments, by method name (made on first use). */
  bare: Map<string, Uint8Array> | null;
}

/** Most proxies call a handful of methods; a proxy calling more without arguments re-encodes the rest. */
const MAX_BARE_REQUESTS = 64;

/**
 * The pickled `(ident, name, (), {})` of a call without arguments. Those bytes
 * never change for a proxy, and encoding them (two tuples, a dict, the pickle
 * encoder) was a good part of a call's CPU: they are encoded once and sent as
 * they are after that (a connection never modifies what it is given to send).
 */
function bareRequest(ref: Reference, ident: string, name: string): Uint8Array {
  let bare = ref.bare;
  let request = bare?.get(name);
  if (request === undefined) {
    request = pickleDumps(encodeRequest(ident, name, [], {}));
    bare ??= ref.bare = new Map();
    if (bare.size < MAX_BARE_REQUESTS) bare.set(name, request);
  }
  return request;
}

/** Whether `kwds` has an own enumerable keyword (what `keywordsOf` would send), without making an array of them. */
function hasOwnKeys(kwds: Record<string, unknown>): boolean {
  for (const key in kwds) if (Object.hasOwn(kwds, key)) return true;
  return false;
}

/**
 * A client of a manager server: Python's `BaseManager(address, authkey).connect()`.
 * It makes proxies (`create()` and SyncManager's typeid methods), keeps a pool
 * of call connections so that a call blocked on the server never delays
 * another, and holds one reference per proxy until `release()` or `close()`.
 *
 * @example
 * ```ts
 * await using manager = await ManagerClient.connect(['127.0.0.1', 50000], { authkey: 'abracadabra' });
 * const q = await manager.create('get_queue');
 * await q.put('hello');
 * ```
 */
export class ManagerClient implements AsyncDisposable {
  /** The manager server's address, as given to `connect()`. */
  readonly address: Address;
  readonly #options: CheckedClientOptions;
  readonly #pool: CallPool;
  readonly #refs = new WeakMap<ProxyState, Reference>();
  readonly #live = new Set<Reference>();
  readonly #registry: FinalizationRegistry<Reference>;
  readonly #owner: ProxyOwner;
  #connectionNames = 0;
  #closing: Promise<void> | null = null;

  private constructor(address: Address, options: CheckedClientOptions) {
    this.address = address;
    this.#options = options;
    this.#pool = new CallPool((signal) => this.#openCallConnection(signal), options.maxConnections);
    this.#registry = new FinalizationRegistry((ref) => this.#dropped(ref));
    this.#owner = {
      call: (proxy, name, args, kwds, callOptions) => this.#call(proxy, name, args, kwds, callOptions),
      release: (proxy) => this.release(proxy),
    };
  }

  /**
   * Connects to a manager server and checks that it answers (Python's
   * `connect()` sends `dummy`). `authkey` is required (`null` only for a server
   * without authentication); a wrong one rejects with `AuthenticationError`.
   *
   * @example
   * ```ts
   * const manager = await ManagerClient.connect(['localhost', 50000], { authkey: 'abracadabra', timeout: 5_000 });
   * ```
   */
  static async connect(address: Address, options?: ManagerClientOptions): Promise<ManagerClient> {
    const checked = checkClientOptions(address, options);
    const client = new ManagerClient(address, checked);
    await client.#control('dummy', [], {}, checked.signal);
    return client;
  }

  /**
   * Asks the server to create an object of `typeid` with Python's `*args` and
   * `**kwds`, and resolves to its proxy. `pinned` sends all of the proxy's calls
   * over one connection of its own, in order (the default for `RLock` and
   * `Condition`, whose ownership a Python server gives to the thread serving one connection).
   *
   * @example
   * ```ts
   * const q = await manager.create('get_queue');
   * const counter = await manager.create('Counter', [10], { step: 2 }, { pinned: true });
   * ```
   */
  async create(
    typeid: string,
    args?: readonly unknown[],
    kwds?: Record<string, unknown>,
    options?: { pinned?: boolean },
  ): Promise<AnyProxy> {
    const id = checkTypeid(typeid);
    const callArgs = checkArgs(args);
    const callKwds = checkKwds(kwds);
    if (options !== undefined && (options === null || typeof options !== 'object')) {
      throw new TypeError('options must be an object such as { pinned: true }');
    }
    const pinned = options?.pinned ?? PINNED_TYPEIDS.has(id);
    if (typeof pinned !== 'boolean') throw new TypeError('options.pinned must be a boolean');
    this.#checkOpen();
    const result = await this.#control('create', [id, ...callArgs], callKwds);
    if (!Array.isArray(result) || result.length !== 2 || typeof result[0] !== 'string' || !isNames(result[1])) {
      throw badReply(`create answered ${describeReply(result)} instead of (ident, exposed)`);
    }
    return this.#adopt(id, result[0], result[1], pinned);
  }

  /**
   * A `queue.Queue(maxsize)` on the server.
   *
   * @example
   * ```ts
   * const q = await manager.Queue();
   * await q.put('job');
   * ```
   */
  async Queue(maxsize?: number): Promise<QueueProxy> {
    return this.#sync('Queue', maxsize === undefined ? [] : [checkInt(maxsize, 'maxsize')]);
  }

  /**
   * A joinable queue (`task_done()`, `join()`).
   *
   * @example
   * ```ts
   * const q = await manager.JoinableQueue();
   * await q.put(1); await q.get(); await q.task_done(); await q.join();
   * ```
   */
  async JoinableQueue(maxsize?: number): Promise<QueueProxy> {
    return this.#sync('JoinableQueue', maxsize === undefined ? [] : [checkInt(maxsize, 'maxsize')]);
  }

  /**
   * A `dict(init)` on the server; `init` is a plain object or a `Map` (any keys).
   *
   * @example
   * ```ts
   * const d = await manager.dict(new Map([[1, 'one']]));
   * ```
   */
  async dict(init?: object | Map<unknown, unknown>): Promise<DictProxy> {
    if (init !== undefined && (init === null || typeof init !== 'object')) {
      throw new TypeError('dict(init) takes a plain object or a Map');
    }
    return this.#sync('dict', init === undefined ? [] : [init]);
  }

  /**
   * A `list(init)` on the server.
   *
   * @example
   * ```ts
   * const l = await manager.list([1, 2, 3]);
   * ```
   */
  async list(init?: readonly unknown[]): Promise<ListProxy> {
    if (init !== undefined && !Array.isArray(init)) throw new TypeError('list(init) takes an array');
    return this.#sync('list', init === undefined ? [] : [init]);
  }

  /**
   * A `Namespace(**attrs)` on the server.
   *
   * @example
   * ```ts
   * const ns = await manager.Namespace({ x: 1 });
   * console.log(await ns.__getattribute__('x')); // 1
   * ```
   */
  async Namespace(attrs?: Record<string, unknown>): Promise<NamespaceProxy> {
    return this.#sync('Namespace', [], checkKwds(attrs, 'attrs'));
  }

  /**
   * A `Value(typecode, value)` on the server (Python's manager `Value` holds it as is).
   *
   * @example
   * ```ts
   * const v = await manager.Value('i', 0);
   * await v.set(1);
   * ```
   */
  async Value(typecode: string, value: unknown): Promise<ValueProxy> {
    return this.#sync('Value', [checkTypecode(typecode), value]);
  }

  /**
   * An `array.array(typecode, items)` on the server.
   *
   * @example
   * ```ts
   * const a = await manager.Array('d', [0.5, 1.5]);
   * ```
   */
  async Array(typecode: string, items: readonly unknown[]): Promise<ArrayProxy> {
    if (!Array.isArray(items)) throw new TypeError('Array(typecode, items) takes an array of items');
    return this.#sync('Array', [checkTypecode(typecode), items]);
  }

  /**
   * A `threading.Lock()` on the server.
   *
   * @example
   * ```ts
   * const lock = await manager.Lock();
   * await lock.acquire(); await lock.release();
   * ```
   */
  async Lock(): Promise<AcquirerProxy> {
    return this.#sync('Lock', []);
  }

  /**
   * A `threading.RLock()` on the server; its proxy is pinned.
   *
   * @example
   * ```ts
   * const rlock = await manager.RLock();
   * await rlock.acquire(); await rlock.acquire(); await rlock.release(); await rlock.release();
   * ```
   */
  async RLock(): Promise<AcquirerProxy> {
    return this.#sync('RLock', []);
  }

  /**
   * A `threading.Semaphore(value)` on the server.
   *
   * @example
   * ```ts
   * const sem = await manager.Semaphore(2);
   * ```
   */
  async Semaphore(value?: number): Promise<AcquirerProxy> {
    return this.#sync('Semaphore', value === undefined ? [] : [checkInt(value, 'value')]);
  }

  /**
   * A `threading.BoundedSemaphore(value)` on the server.
   *
   * @example
   * ```ts
   * const sem = await manager.BoundedSemaphore(1);
   * ```
   */
  async BoundedSemaphore(value?: number): Promise<AcquirerProxy> {
    return this.#sync('BoundedSemaphore', value === undefined ? [] : [checkInt(value, 'value')]);
  }

  /**
   * A `threading.Condition()` on the server; its proxy is pinned.
   *
   * @example
   * ```ts
   * const cond = await manager.Condition();
   * ```
   */
  async Condition(): Promise<ConditionProxy> {
    return this.#sync('Condition', []);
  }

  /**
   * A `threading.Event()` on the server.
   *
   * @example
   * ```ts
   * const ev = await manager.Event();
   * await ev.set();
   * ```
   */
  async Event(): Promise<EventProxy> {
    return this.#sync('Event', []);
  }

  /**
   * A `threading.Barrier(parties, timeout=timeout)` on the server. `timeout`
   * is in seconds, as the Python object takes it.
   *
   * @example
   * ```ts
   * const barrier = await manager.Barrier(2, 30);
   * ```
   */
  async Barrier(parties: number, timeout?: number): Promise<BarrierProxy> {
    const kwds: Record<string, unknown> = {};
    if (timeout !== undefined && timeout !== null) {
      if (typeof timeout !== 'number') throw new TypeError('timeout must be a number of seconds');
      if (Number.isNaN(timeout)) throw new RangeError('timeout must not be NaN');
      kwds.timeout = timeout;
    }
    return this.#sync('Barrier', [checkInt(parties, 'parties')], kwds);
  }

  /**
   * How many objects the server holds (Python's `_number_of_objects()`).
   *
   * @example
   * ```ts
   * console.log(await manager.numberOfObjects());
   * ```
   */
  async numberOfObjects(): Promise<number> {
    this.#checkOpen();
    const n = await this.#control('number_of_objects', [], {});
    if (typeof n !== 'number') throw badReply(`number_of_objects answered ${describeReply(n)}`);
    return n;
  }

  /**
   * The server's description of its objects and their refcounts (Python's `_debug_info()`).
   *
   * @example
   * ```ts
   * console.log(await manager.debugInfo());
   * ```
   */
  async debugInfo(): Promise<string> {
    this.#checkOpen();
    const text = await this.#control('debug_info', [], {});
    if (typeof text !== 'string') throw badReply(`debug_info answered ${describeReply(text)}`);
    return text;
  }

  /**
   * Drops the proxy's reference on the server (`decref`), once: later calls
   * do nothing, and the proxy can no longer be called. A pinned proxy's
   * connection is closed too.
   *
   * @example
   * ```ts
   * const q = await manager.Queue();
   * await manager.release(q);
   * ```
   */
  async release(proxy: Proxy): Promise<void> {
    const state = proxyState(proxy);
    const ref = state === undefined ? undefined : this.#refs.get(state);
    if (state === undefined || ref === undefined) throw new TypeError('release() takes a Proxy made by this ManagerClient');
    if (ref.released) return;
    this.#forget(ref, state);
    if (this.#closing !== null) return;
    await this.#decref(ref.ident);
  }

  /**
   * Asks the server to stop (Python's `shutdown`), then closes this client
   * without decrefs (the server's objects go with it).
   *
   * @example
   * ```ts
   * await manager.shutdown();
   * ```
   */
  async shutdown(): Promise<void> {
    this.#checkOpen();
    try {
      // CPython answers twice (shutdown() itself, then handle_request): one reply is enough.
      await this.#control('shutdown', [], {});
    } catch (err) {
      if (!(err instanceof EOFError)) throw err;
    }
    for (const ref of this.#live) ref.released = true;
    await this.close();
  }

  /**
   * Releases every proxy this client made, then closes its connections; calls
   * still in flight reject with `ConnectionStateError` `ERR_CLOSED`. Idempotent.
   * A server that is gone is not an error here.
   *
   * @example
   * ```ts
   * await manager.close();
   * ```
   */
  close(): Promise<void> {
    if (this.#closing === null) this.#closing = this.#close();
    return this.#closing;
  }

  /**
   * Same as {@link ManagerClient.close}, for `await using`.
   *
   * @example
   * ```ts
   * await using manager = await ManagerClient.connect(address, { authkey });
   * ```
   */
  [Symbol.asyncDispose](): Promise<void> {
    return this.close();
  }

  /**
   * Python-compatible name of {@link ManagerClient.numberOfObjects}.
   *
   * @example
   * ```ts
   * await manager.number_of_objects();
   * ```
   */
  number_of_objects(): Promise<number> {
    return this.numberOfObjects();
  }

  /**
   * Python-compatible name of {@link ManagerClient.debugInfo}.
   *
   * @example
   * ```ts
   * await manager.debug_info();
   * ```
   */
  debug_info(): Promise<string> {
    return this.debugInfo();
  }

  #sync<P>(typeid: string, args: readonly unknown[], kwds: Record<string, unknown> = {}): Promise<P> {
    return this.create(typeid, args, kwds) as Promise<unknown> as Promise<P>;
  }

  async #close(): Promise<void> {
    this.#pool.close();
    const refs = [...this.#live];
    for (const ref of refs) ref.lane?.close();
    const pending = refs.filter((ref) => !ref.released);
    for (const ref of refs) ref.released = true;
    this.#live.clear();
    let next = 0;
    const worker = async (): Promise<void> => {
      while (next < pending.length) {
        const ref = pending[next++]!;
        await this.#decref(ref.ident).catch(() => undefined);
      }
    };
    await Promise.all(Array.from({ length: Math.min(CLOSE_CONCURRENCY, pending.length) }, worker));
  }

  #checkOpen(): void {
    if (this.#closing !== null) throw clientClosedError();
  }

  #clientOptions(signal: AbortSignal | undefined): ClientOptions {
    const o = this.#options;
    const options: ClientOptions = { authkey: o.authkey, serializer: 'pickle', timeout: o.timeout };
    if (signal !== undefined) options.signal = signal;
    if (o.family !== undefined) options.family = o.family;
    if (o.tls !== undefined) options.tls = o.tls;
    if (o.maxMessageSize !== undefined) options.maxMessageSize = o.maxMessageSize;
    return options;
  }

  /** One request on a connection of its own, as CPython's `dispatch(conn, None, …)`. */
  async #control(funcname: string, args: readonly unknown[], kwds: Record<string, unknown>, signal?: AbortSignal): Promise<unknown> {
    const request = pickleDumps(encodeRequest(null, funcname, args, kwds));
    const started = Date.now();
    const conn = await Client(this.address, this.#clientOptions(signal));
    let reply: unknown;
    try {
      reply = await this.#answer(conn, request, funcname, started, signal);
    } finally {
      conn.destroy();
    }
    const { kind, result } = readReply(reply);
    if (kind === '#RETURN') return result;
    if (kind === '#PROXY') throw badReply(`${funcname} answered '#PROXY'`);
    throw remoteErrorOf(kind, result);
  }

  /**
   * Sends one request of the client's own and reads the answer, within what is
   * left of `options.timeout` since `started` (connecting and the handshake had
   * the rest): a server that authenticates, then never answers, must not hang
   * `connect()`, `create()` or `close()` for ever.
   */
  async #answer(conn: Connection, request: Uint8Array, funcname: string, started: number, signal: AbortSignal | undefined): Promise<unknown> {
    signal?.throwIfAborted();
    const total = this.#options.timeout === null ? Infinity : (this.#options.timeout ?? DEFAULT_TIMEOUT);
    const left = total === Infinity ? undefined : Math.max(1, total - (Date.now() - started));
    const controller = new AbortController();
    const disarm = armCancel(signal, left, `the manager's answer to ${funcname} (options.timeout ${total} ms)`, (reason) =>
      controller.abort(reason),
    );
    try {
      return await untilAborted(
        (async () => {
          await conn.sendBytes(request);
          return conn.recv({ signal: controller.signal });
        })(),
        controller.signal,
      );
    } finally {
      disarm();
    }
  }

  async #openCallConnection(signal: AbortSignal | undefined): Promise<Connection> {
    const started = Date.now();
    const conn = await Client(this.address, this.#clientOptions(signal));
    try {
      // The name becomes the server thread's name (CPython: the calling thread's).
      const request = pickleDumps(encodeRequest(null, 'accept_connection', [`mpconn-${process.pid}-${++this.#connectionNames}`]));
      const { kind, result } = readReply(await this.#answer(conn, request, 'accept_connection', started, signal));
      if (kind === '#PROXY') throw badReply("accept_connection answered '#PROXY'");
      if (kind !== '#RETURN') throw remoteErrorOf(kind, result);
    } catch (err) {
      conn.destroy();
      throw err;
    }
    return conn;
  }

  async #decref(ident: string): Promise<void> {
    await this.#control('decref', [ident], {});
  }

  #adopt(typeid: string, ident: string, exposed: readonly string[], pinned: boolean): AnyProxy {
    if (this.#closing !== null) {
      // Made while closing: its reference must not outlive the client.
      void this.#decref(ident).catch(() => undefined);
      throw clientClosedError();
    }
    const lane = pinned ? new PinnedLane((signal) => this.#openCallConnection(signal)) : null;
    const state: ProxyState = { owner: this.#owner, typeid, id: ident, exposed: Object.freeze([...exposed]), pinned };
    const ref: Reference = { ident, lane, released: false, bare: null };
    const proxy = new Proxy(state) as AnyProxy;
    this.#refs.set(state, ref);
    this.#live.add(ref);
    this.#registry.register(proxy, ref, state);
    return proxy;
  }

  #forget(ref: Reference, state: ProxyState): void {
    ref.released = true;
    this.#live.delete(ref);
    this.#registry.unregister(state);
    ref.lane?.close();
  }

  /** A proxy was collected without a release: drop its reference, as Python's finalizer does. */
  #dropped(ref: Reference): void {
    if (ref.released) return;
    ref.released = true;
    this.#live.delete(ref);
    ref.lane?.close();
    if (this.#closing === null) void this.#decref(ref.ident).catch(() => undefined);
  }

  async #call(
    proxy: Proxy,
    name: string,
    args: readonly unknown[],
    kwds: Record<string, unknown>,
    options: CallOptions,
  ): Promise<unknown> {
    const state = proxyState(proxy);
    const ref = state === undefined ? undefined : this.#refs.get(state);
    if (state === undefined || ref === undefined) throw new TypeError('not a Proxy of this ManagerClient');
    this.#checkOpen();
    if (ref.released) {
      throw new ConnectionStateError('ERR_CLOSED', `the ${state.typeid} proxy ${state.id} was released; it can no longer be called`);
    }
    // Encoded before a connection is taken: a value with no Python counterpart fails here and costs nothing.
    const request =
      args.length === 0 && !hasOwnKeys(kwds) ? bareRequest(ref, state.id, name) : pickleDumps(encodeRequest(state.id, name, args, kwds));
    let reply: unknown;
    if (options.signal === undefined && (options.timeout === undefined || options.timeout === Infinity)) {
      // Nothing can abort this call: no controller, no timer, no abort race around the exchange.
      // The receive is queued with the send (one call in flight per connection, so the next
      // message is this call's reply) rather than one promise turn after it.
      const exchange = (conn: Connection): Promise<unknown> => {
        const sent = conn.sendBytes(request);
        const reply = conn.recv();
        return sent.then(
          () => reply,
          (err: unknown) => {
            // The connection is discarded for the failed send; its receive fails with it, unobserved.
            reply.catch(() => undefined);
            throw err;
          },
        );
      };
      reply = ref.lane !== null ? await ref.lane.run(undefined, exchange) : await this.#pool.run(undefined, exchange);
    } else {
      options.signal?.throwIfAborted();
      let signal = options.signal;
      let disarm: (() => void) | undefined;
      if (options.timeout !== undefined && options.timeout !== Infinity) {
        const controller = new AbortController();
        disarm = armCancel(options.signal, options.timeout, `manager call ${name}()`, (reason) => controller.abort(reason));
        signal = controller.signal;
      }
      // The signal also cuts a send that waits on a server that stopped reading (a large request).
      const exchange = (conn: Connection): Promise<unknown> =>
        untilAborted(
          (async () => {
            await conn.sendBytes(request);
            return conn.recv(signal === undefined ? undefined : { signal });
          })(),
          signal,
        );
      try {
        reply = ref.lane !== null ? await ref.lane.run(signal, exchange) : await this.#pool.run(signal, exchange);
      } finally {
        disarm?.();
      }
    }
    const { kind, result } = readReply(reply);
    switch (kind) {
      case '#RETURN':
        return result;
      case '#PROXY':
        return this.#adoptReturned(result);
      default:
        throw remoteErrorOf(kind, result);
    }
  }

  /** `('#PROXY', (exposed, token))`: the server made one reference for us, which the new proxy holds. */
  #adoptReturned(result: unknown): AnyProxy {
    const token = Array.isArray(result) && result.length === 2 ? tokenFromPickle(result[1]) : null;
    if (token === null || !isNames(result instanceof Array ? result[0] : null)) {
      throw badReply(`'#PROXY' carried ${describeReply(result)} instead of (exposed, Token)`);
    }
    const exposed = (result as unknown[])[0] as string[];
    return this.#adopt(token.typeid, token.id, exposed, PINNED_TYPEIDS.has(token.typeid));
  }
}

function readReply(reply: unknown): ReturnType<typeof parseReply> {
  try {
    return parseReply(reply);
  } catch (err) {
    throw badReply((err as Error).message);
  }
}

function badReply(detail: string): ProtocolError {
  return new ProtocolError('ERR_BAD_REPLY', `the manager server sent a malformed reply: ${detail}`);
}

function isNames(value: unknown): value is string[] {
  return Array.isArray(value) && value.every((v) => typeof v === 'string');
}

function describeReply(value: unknown): string {
  if (value === null) return 'None';
  if (Array.isArray(value)) return `a ${value.length}-item sequence`;
  return `a ${typeof value}`;
}
