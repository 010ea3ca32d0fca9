/**
 * The manager server role: Node holds objects, unmodified Python programs
 * (`BaseManager(address=..., authkey=...).connect()`, `SyncManager`) and Node
 * `ManagerClient`s use them through proxies. CPython's `Server` class of
 * `multiprocessing/managers.py`, over the public Listener/Connection API, with
 * one difference of shape: where CPython runs a thread per connection, each
 * connection here is an async loop, and a method that returns a promise is
 * awaited while every other connection is served.
 */
import type { TlsOptions } from 'node:tls';
import { untilAborted } from '../core/cancel.js';
import { checkOptionNames } from '../core/validate.js';
import { Listener } from '../listener/index.js';
import type { Address, Family } from '../listener/index.js';
import type { Connection } from '../connection/index.js';
import { PyObject, Tuple } from '../serializers/index.js';
import { DEFAULT_MAX_DEPTH } from '../serializers/depth.js';
import { PickleDecoder, PickleEncoder, dumps as pickleDumps } from '../serializers/pickle/index.js';
import { applyInCall, applyInTrackedCall, runInCall, runInTrackedCall } from './context.js';
import type { CallContext } from './context.js';
import { Kwargs, Token, encodeReply, parseRequest, pyTypeOf, tokenFromPickle, tokenToPickle } from './protocol.js';
import type { Reply, Request } from './protocol.js';
import { methodOf, ObjectTable, publicMethods, ServerFault } from './server-objects.js';
import type { HeldObject } from './server-objects.js';
import { isPlainSyncObject, isSyncObject, syncTypeids } from './sync/typeids.js';
import { pyRepr as reprValue, reprStr as pyRepr } from './sync/repr.js';

/**
 * A typeid's factory: called with a `create` request's arguments (and a
 * trailing `Kwargs` when it had keywords); the object it returns is served.
 * Its parameters are `any[]` so that a factory declaring its own
 * (`(start: number) => …`) can be registered.
 *
 * @example
 * ```ts
 * const makeCounter: ManagerCallable = (start = 0) => new Counter(start); // Python: m.Counter(5)
 * ```
 */
export type ManagerCallable = (...args: any[]) => object;

/**
 * How a registered typeid's objects are served.
 *
 * @example
 * ```ts
 * server.register('Counter', () => new Counter(), {
 *   exposed: ['increment', 'value'],
 *   methodToTypeid: { child: 'Counter' }, // child() answers a proxy
 * });
 * ```
 */
export interface RegisterOptions {
  /** The method names clients may call. Default: the object's public methods. */
  exposed?: readonly string[];
  /** Methods whose result is held by the server as an object of that typeid, and sent as a proxy. */
  methodToTypeid?: Readonly<Record<string, string>>;
}

/**
 * Options of {@link ManagerServer.listen}.
 *
 * @example
 * ```ts
 * const server = await ManagerServer.listen(['127.0.0.1', 50000], {
 *   authkey: 'abracadabra',
 *   registry: { get_queue: () => queue },
 * });
 * ```
 */
export interface ManagerServerOptions {
  /**
   * Required. `null` only when asked for explicitly: CPython clients always
   * authenticate, so a server without a key serves Node clients only.
   */
  authkey: Uint8Array | string | null;
  /** typeid → callable, as {@link ManagerServer.register} with default options. */
  registry?: Readonly<Record<string, ManagerCallable>>;
  /** Serve the typeids Python's `SyncManager` registers (`Queue`, `dict`, `Lock` …). Default `true`. */
  sync?: boolean;
  /** Queue length of the listening socket (default 511). */
  backlog?: number;
  /** Milliseconds a client gets to finish the handshake (default 20000). */
  authTimeout?: number | null;
  /** TLS for `AF_INET` (Node clients only: CPython's manager clients do not speak TLS). */
  tls?: TlsOptions;
  /** The address family; default from the address (as `Listener.listen`). */
  family?: Family;
  /**
   * Longest request, in bytes, a client may send (default: the platform's
   * Buffer limit; CPython's server sets none). A longer one ends that
   * client's connection, and only that one, before its bytes are held: set
   * it to bound what each connected client can make the server buffer.
   */
  maxMessageSize?: number;
}

/** The names {@link ManagerServerOptions} has: any other is a typo, refused rather than ignored. */
const SERVER_OPTION_NAMES = ['authkey', 'registry', 'sync', 'backlog', 'authTimeout', 'tls', 'family', 'maxMessageSize'] as const;
/** The names {@link RegisterOptions} has. */
const REGISTER_OPTION_NAMES = ['exposed', 'methodToTypeid'] as const;

interface Registration {
  readonly callable: ManagerCallable;
  readonly exposed: readonly string[] | null;
  readonly methodToTypeid: ReadonlyMap<string, string> | null;
  readonly lossless: boolean;
}

/** One client connection: the owner its calls run as, and the signal that aborts when it goes. */
class Caller {
  readonly controller = new AbortController();
  #encoder: PickleEncoder | null = null;
  /** The ident of this connection's last method call (a client calls one object many times in a row). */
  lastIdent: string | null = null;
  /** Replaced once, when `accept_connection` names the client thread. */
  context: CallContext;

  constructor(
    readonly conn: Connection,
    name: string,
  ) {
    this.context = { owner: Object.freeze({ name }), signal: this.controller.signal };
  }

  /**
   * This connection's replies are pickled here: it lends each one's bytes
   * until the next (see `replyBytes`). Made at the first reply: CPython opens
   * a connection for every `create`, `incref` and `decref`.
   */
  get encoder(): PickleEncoder {
    return (this.#encoder ??= new PickleEncoder(REPLY_BUFFER_BYTES));
  }

  rename(name: string): void {
    this.context = { owner: Object.freeze({ name }), signal: this.controller.signal };
  }

  gone(): void {
    if (!this.controller.signal.aborted) this.controller.abort(new Error('the manager client connection closed'));
  }
}

/** The control functions a request's first message may name (CPython's `Server.public`). */
const CONTROL = new Set([
  'shutdown',
  'create',
  'accept_connection',
  'get_methods',
  'debug_info',
  'number_of_objects',
  'dummy',
  'incref',
  'decref',
]);

/** Calls one connection may serve back to back before it lets the event loop serve the others. */
const YIELD_EVERY = 32;

/**
 * The largest reply buffer a connection keeps for its next reply (a bigger one
 * is let go after its reply): 16 KiB, what the connection copies into its
 * write batch anyway, so many idle connections that once sent a large reply
 * hold little.
 */
const REPLY_BUFFER_BYTES = 16 * 1024;

/** The commonest reply (a method returning None, as `__setitem__` does), pickled once: what the encoder writes for it. */
const RETURN_NONE = pickleDumps(new Tuple('#RETURN', null));

/** How long `close()` lets each client connection flush before it stops waiting for it. */
const CLOSE_FLUSH_MS = 2000;

/**
 * A manager server: holds objects that unmodified Python programs (and Node
 * `ManagerClient`s) use through proxies, as CPython's
 * `BaseManager.get_server().serve_forever()` does.
 *
 * Registered callables make the objects; a method an object exposes is
 * called with the decoded arguments (keyword arguments as one trailing
 * `Kwargs`); it may return a promise. A thrown `PyObject` (such as
 * `new PyObject(new PyGlobal('builtins', 'KeyError'), ['k'])`) is the
 * exception the Python client raises; any other error reaches it as a
 * `RemoteError` with the JS error's name, message and stack.
 *
 * @example
 * ```ts
 * // Python: BaseManager.register('get_queue'); m = BaseManager(address=('127.0.0.1', 50000), authkey=b'abracadabra')
 * //         m.connect(); m.get_queue().put('hello')
 * const jobs: unknown[] = [];
 * await using server = await ManagerServer.listen(['127.0.0.1', 50000], { authkey: 'abracadabra' });
 * server.register('get_queue', () => ({ put: (item: unknown) => void jobs.push(item), size: () => jobs.length }));
 * await server.stopped;
 * ```
 */
export class ManagerServer implements AsyncDisposable {
  readonly #listener: Listener;
  readonly #registry = new Map<string, Registration>();
  readonly #table = new ObjectTable();
  readonly #callers = new Set<Caller>();
  // Requests are decoded here, not by the connection, so its depth limit does
  // not apply: without one, a client's one-byte-per-level bomb becomes a JS
  // object per byte, and a value no encoder or walk could take back.
  readonly #plain = new PickleDecoder({ maxDepth: DEFAULT_MAX_DEPTH });
  readonly #lossless = new PickleDecoder({ lossless: true, maxDepth: DEFAULT_MAX_DEPTH });
  #closing: Promise<void> | null = null;
  #resolveStopped!: () => void;
  readonly #stopped = new Promise<void>((resolve) => {
    this.#resolveStopped = resolve;
  });

  /**
   * Binds and starts serving. Without an address: a Unix socket in a fresh
   * private directory. `authkey` is required (`null` only when passed explicitly).
   *
   * @example
   * ```ts
   * const server = await ManagerServer.listen(['127.0.0.1', 0], { authkey: 'secret' });
   * console.log(server.address); // ['127.0.0.1', 41234]
   * ```
   */
  static async listen(address: Address | null | undefined, options: ManagerServerOptions): Promise<ManagerServer> {
    if (options === null || typeof options !== 'object') {
      throw new TypeError('ManagerServer.listen() needs options with an authkey (null only to serve without authentication)');
    }
    checkOptionNames(options, SERVER_OPTION_NAMES, 'ManagerServer.listen() options');
    if (options.authkey === undefined) {
      throw new TypeError(
        'ManagerServer.listen(): authkey is required (Python clients always authenticate; pass null explicitly to serve Node clients without one)',
      );
    }
    const { registry, sync = true } = options;
    if (registry !== undefined && (registry === null || typeof registry !== 'object')) {
      throw new TypeError('registry must be an object mapping typeids to callables');
    }
    if (typeof sync !== 'boolean') throw new TypeError('sync must be a boolean');
    const server = new ManagerServer(
      await Listener.listen(address, {
        authkey: options.authkey,
        serializer: 'pickle',
        ...(options.backlog !== undefined ? { backlog: options.backlog } : {}),
        ...(options.authTimeout !== undefined ? { authTimeout: options.authTimeout } : {}),
        ...(options.tls !== undefined ? { tls: options.tls } : {}),
        ...(options.family !== undefined ? { family: options.family } : {}),
        ...(options.maxMessageSize !== undefined ? { maxMessageSize: options.maxMessageSize } : {}),
      }),
    );
    try {
      if (sync) {
        for (const r of syncTypeids()) server.#register(r.typeid, r.callable, r, true);
      }
      for (const [typeid, callable] of Object.entries(registry ?? {})) server.register(typeid, callable);
    } catch (err) {
      await server.close();
      throw err;
    }
    server.#acceptLoop().catch(() => {});
    return server;
  }

  private constructor(listener: Listener) {
    this.#listener = listener;
    // A failed handshake is the peer's problem: the Listener closes it and goes on.
    listener.on('handshakeError', () => {});
  }

  /** The bound address (the real port when listening on port 0). */
  get address(): Address {
    return this.#listener.address;
  }

  /** Settles when a client sent `shutdown` or `close()` was called. */
  get stopped(): Promise<void> {
    return this.#stopped;
  }

  /**
   * Registers (or replaces) a typeid: a `create` of it calls `callable`, and
   * the object it returns is held until its refcount drops to 0. A callable
   * that returns one shared object (`() => queue`) gives every client that
   * same object, as Python's `register('get_queue', callable=lambda: queue)`.
   *
   * @example
   * ```ts
   * server.register('Counter', (start = 0) => new Counter(start));
   * ```
   */
  register(typeid: string, callable: ManagerCallable, options: RegisterOptions = {}): void {
    if (options !== null && typeof options === 'object') checkOptionNames(options, REGISTER_OPTION_NAMES, 'register() options');
    this.#register(typeid, callable, options, false);
  }

  #register(typeid: string, callable: ManagerCallable, options: RegisterOptions, lossless: boolean): void {
    if (typeof typeid !== 'string' || typeid === '') throw new TypeError('typeid must be a non-empty string');
    if (typeof callable !== 'function') throw new TypeError(`the callable of typeid ${JSON.stringify(typeid)} must be a function`);
    if (options === null || typeof options !== 'object') throw new TypeError('register() options must be an object');
    const { exposed, methodToTypeid } = options;
    if (exposed !== undefined && (!Array.isArray(exposed) || exposed.some((n) => typeof n !== 'string'))) {
      throw new TypeError('exposed must be an array of method names');
    }
    let m2t: Map<string, string> | null = null;
    if (methodToTypeid !== undefined) {
      if (methodToTypeid === null || typeof methodToTypeid !== 'object' || Array.isArray(methodToTypeid)) {
        throw new TypeError('methodToTypeid must be an object mapping method names to typeids');
      }
      m2t = new Map();
      for (const [method, target] of Object.entries(methodToTypeid)) {
        if (typeof target !== 'string') throw new TypeError(`methodToTypeid[${JSON.stringify(method)}] must be a typeid string`);
        m2t.set(method, target);
      }
    }
    this.#registry.set(typeid, { callable, exposed: exposed === undefined ? null : [...exposed], methodToTypeid: m2t, lossless });
  }

  /**
   * Stops listening, closes every client connection and cancels the calls
   * they left blocked (their signals abort). Idempotent.
   *
   * @example
   * ```ts
   * await server.close();
   * ```
   */
  close(): Promise<void> {
    if (this.#closing !== null) return this.#closing;
    this.#closing = (async () => {
      this.#resolveStopped();
      const callers = [...this.#callers];
      this.#callers.clear();
      for (const caller of callers) caller.gone();
      await Promise.all([
        this.#listener.close().catch(() => {}),
        ...callers.map((caller) => boundedClose(caller.conn)),
      ]);
      this.#table.clear();
    })();
    return this.#closing;
  }

  /** `await using server = await ManagerServer.listen(...)` closes it at the end of the block. */
  [Symbol.asyncDispose](): Promise<void> {
    return this.close();
  }

  // --- connections ---

  async #acceptLoop(): Promise<void> {
    while (this.#closing === null) {
      let conn: Connection;
      try {
        conn = await this.#listener.accept();
      } catch {
        if (this.#closing !== null) return;
        // Not expected (a failed handshake never rejects accept()); a pause keeps a persistent failure from spinning.
        await new Promise((resolve) => setTimeout(resolve, 10));
        continue;
      }
      if (this.#closing !== null) {
        void conn.close().catch(() => {});
        return;
      }
      void this.#serve(conn).catch(() => {});
    }
  }

  /** One connection: its first message is a control request, as in CPython's `handle_request`. */
  async #serve(conn: Connection): Promise<void> {
    const caller = new Caller(conn, 'control');
    this.#callers.add(caller);
    try {
      let first: Buffer;
      try {
        first = await conn.recvBytes();
      } catch {
        return; // EOF, bad framing, a message too long, our own close: this connection is done, no one else is affected.
      }
      const request = this.#decode(
        first,
        (r) => r.method === 'create' && typeof r.args[0] === 'string' && this.#registry.get(r.args[0])?.lossless === true,
      );
      if (request instanceof Error) {
        await send(caller, tracebackReply(request));
        return;
      }
      if (request.method === 'accept_connection') {
        const [name] = request.args;
        if (typeof name === 'string') caller.rename(name);
        if (!(await send(caller, encodeReply('#RETURN', null)))) return;
        await this.#serveCalls(caller);
        return;
      }
      const reply = await this.#control(caller, request);
      await send(caller, reply);
      if (request.method === 'shutdown' && reply[0] === '#RETURN') void this.close();
    } finally {
      caller.gone();
      this.#callers.delete(caller);
      await boundedClose(conn);
    }
  }

  /**
   * Method calls on an accepted connection, answered in order one at a time
   * (CPython's `serve_client`). While a call is awaited the next request is
   * read, so that a client that goes away while its call is blocked is noticed
   * and the call cancelled (its signal aborts); a synchronous call is answered
   * before anything else happens, so its next request is read after the reply.
   */
  async #serveCalls(caller: Caller): Promise<void> {
    const conn = caller.conn;
    const gone = (): void => caller.gone();
    /** The next request, when it was asked for while an awaited call ran. */
    let ahead: Promise<Buffer> | null = null;
    let served = 0;
    for (;;) {
      let bytes: Buffer;
      try {
        bytes = await (ahead ?? conn.recvBytes());
      } catch {
        // EOF, bad framing, a message too long, our own close: this connection is done, no one else is affected.
        caller.gone();
        return;
      }
      ahead = null;
      if (this.#closing !== null) return;
      let reply = this.#call(caller, bytes);
      if (reply instanceof Promise) {
        ahead = conn.recvBytes();
        ahead.catch(gone); // the end of the connection cancels the call running
        reply = await reply;
      }
      // Awaited before the next reply is pickled: the encoder lends the bytes until then.
      // (`send()`, inlined: one async frame and promise fewer per call.)
      try {
        await conn.sendBytes(replyBytes(caller.encoder, reply));
      } catch {
        return;
      }
      // A client that pipelines calls keeps this loop in the microtask queue
      // (every message already buffered, every call synchronous): a turn of
      // the event loop now and then lets the other connections be served.
      if (++served % YIELD_EVERY === 0) await new Promise((resolve) => setImmediate(resolve));
    }
  }

  // --- requests ---

  /**
   * Decodes and checks a request, and adopts the proxies it carries. The
   * SyncManager objects keep values as Python stored them (a tuple stays a
   * tuple, 1.0 a float), so a request for one of them is decoded losslessly;
   * a request for any other object gets plain JS values. An `Error` when the
   * message is not a request.
   */
  #decode(bytes: Buffer, wantsLossless: (request: Request) => boolean, guess?: boolean): Request | Error {
    let request: Request;
    let decoder: PickleDecoder;
    try {
      // Decode once when the guess (from a glance at the bytes) holds, twice when it does not.
      const first = guess ?? true;
      decoder = first ? this.#lossless : this.#plain;
      request = parseRequest(decoder.decode(bytes));
      if (wantsLossless(request) !== first) {
        decoder = first ? this.#plain : this.#lossless;
        request = parseRequest(decoder.decode(bytes));
      }
    } catch (err) {
      return err instanceof Error ? err : new Error(String(err));
    }
    // A proxy in a pickle is a call of the global RebuildProxy (however the
    // pickle spells its name): most requests carry no global at all.
    if (decoder.decodedGlobal('RebuildProxy')) {
      const isOwn = (address: Address): boolean => this.#isOwnAddress(address);
      this.#table.adoptStoredProxies(request.args, isOwn);
      this.#table.adoptStoredProxies(request.kwds, isOwn);
    }
    return request;
  }

  /**
   * Whether a token's address is this server's. Python clients put the address
   * they connected to in their tokens, which may name the host differently
   * from the bound address (`localhost`, `0.0.0.0`): for AF_INET the port decides.
   */
  #isOwnAddress(address: Address): boolean {
    const own = this.address;
    if (typeof own === 'string' || typeof address === 'string') return own === address;
    const port = (a: Address): number => (Array.isArray(a) ? (a[1] as number) : (a as { port: number }).port);
    return port(own) === port(address);
  }

  async #control(caller: Caller, request: Request): Promise<Reply> {
    const { method, args } = request;
    try {
      if (!CONTROL.has(method)) throw new ServerFault('AssertionError', `${pyRepr(method)} unrecognized`);
      switch (method) {
        case 'dummy':
          return encodeReply('#RETURN', null);
        case 'create': {
          if (args.length < 1 || typeof args[0] !== 'string') {
            throw new ServerFault('TypeError', 'create() needs a typeid (str) as its first argument');
          }
          const [ident, exposed] = await this.#create(caller, args[0], args.slice(1), kwargsOf(request.kwds));
          return encodeReply('#RETURN', new Tuple(ident, Tuple.from(exposed)));
        }
        case 'incref':
          this.#table.incref(identArg(method, args));
          return encodeReply('#RETURN', null);
        case 'decref':
          this.#table.decref(identArg(method, args));
          return encodeReply('#RETURN', null);
        case 'get_methods': {
          const token = args.length === 1 ? tokenFromPickle(args[0]) : null;
          if (token === null) throw new ServerFault('TypeError', 'get_methods() takes one Token');
          const held = this.#table.lookup(token.id);
          if (held === undefined) throw new ServerFault('KeyError', pyRepr(token.id));
          return encodeReply('#RETURN', Tuple.from(held.exposed));
        }
        case 'debug_info':
          return encodeReply('#RETURN', await this.#debugInfo(caller.context));
        case 'number_of_objects':
          return encodeReply('#RETURN', this.#table.size);
        case 'shutdown':
          return encodeReply('#RETURN', null);
        default:
          // accept_connection is handled by the caller of #control.
          throw new ServerFault('AssertionError', `${pyRepr(method)} unrecognized`);
      }
    } catch (err) {
      return tracebackReply(err);
    }
  }

  /** CPython's `Server.create`: call the typeid's callable, hold its result, incref it. */
  async #create(caller: Caller, typeid: string, args: unknown[], kwds: Kwargs | null): Promise<[string, readonly string[]]> {
    const registration = this.#registry.get(typeid);
    if (registration === undefined) throw new ServerFault('KeyError', pyRepr(typeid));
    if (registration.lossless && typeid === 'Condition') {
      // Python's `m.Condition(m.Lock())` sends a proxy of this server's own
      // lock (CPython's server rebuilds it into a proxy calling back into
      // itself): the lock it names is meant.
      const isOwn = (address: Address): boolean => this.#isOwnAddress(address);
      args = args.map((arg) => this.#table.namedBy(arg, isOwn) ?? arg);
      const lock = kwds === null ? undefined : this.#table.namedBy(kwds['lock'], isOwn);
      if (lock !== undefined) kwds = new Kwargs({ ...kwds, lock });
    }
    const callArgs = kwds === null ? args : [...args, kwds];
    // The SyncManager typeids' callables are those classes' constructors, which read the caller synchronously if at all.
    const run = registration.lossless ? runInCall : runInTrackedCall;
    let obj: unknown = run(caller.context, () => registration.callable(...callArgs));
    if (isPromise(obj)) obj = await untilAborted(obj, caller.context.signal);
    return this.#hold(typeid, obj, registration);
  }

  #hold(typeid: string, obj: unknown, registration: Registration | undefined): [string, readonly string[]] {
    const names = [...(registration?.exposed ?? publicMethods(obj))];
    const methodToTypeid = registration?.methodToTypeid ?? null;
    if (methodToTypeid !== null) names.push(...methodToTypeid.keys());
    const exposed = [...new Set(names)];
    const held: HeldObject = {
      obj,
      typeid,
      exposed,
      exposedSet: new Set(exposed),
      methodToTypeid,
      lossless: (registration?.lossless ?? false) || isSyncObject(obj),
      tracked: !isPlainSyncObject(obj),
    };
    return [this.#table.hold(held), exposed];
  }

  /**
   * One method call (CPython's `serve_client` loop body): the reply to send,
   * or a promise of it when the method returned a promise. A synchronous
   * method's reply is made without a promise.
   */
  #call(caller: Caller, bytes: Buffer): Reply | Promise<Reply> {
    const peeked = peekIdent(bytes, caller.lastIdent);
    if (typeof peeked === 'string') caller.lastIdent = peeked;
    const request = this.#decode(bytes, this.#wantsLossless, peeked === undefined ? undefined : this.#identWantsLossless(peeked));
    if (request instanceof Error) return tracebackReply(request);
    const { id, method } = request;
    try {
      const held = id === null ? undefined : this.#table.lookup(id);
      if (held === undefined) throw new ServerFault('KeyError', id === null ? 'None' : pyRepr(id));
      const fn = held.exposedSet.has(method) ? methodOf(held.obj, method) : undefined;
      if (fn === undefined) {
        return this.#fallback(caller.context, id!, held, method).then((result) => encodeReply('#RETURN', result), tracebackReply);
      }
      const kwds = kwargsOf(request.kwds);
      // The decoded args array is the request's own: handed over as it is.
      const args = kwds === null ? request.args : [...request.args, kwds];
      let result: unknown;
      try {
        result = (held.tracked ? applyInTrackedCall : applyInCall)(caller.context, fn, held.obj, args);
      } catch (err) {
        return raisedReply(err);
      }
      if (isPromise(result)) {
        return untilAborted(result, caller.context.signal).then((value) => this.#resultReply(held, method, value), raisedReply);
      }
      return this.#resultReply(held, method, result);
    } catch (err) {
      return tracebackReply(err);
    }
  }

  readonly #identWantsLossless = (ident: string | null): boolean => ident !== null && this.#table.lookup(ident)?.lossless === true;
  readonly #wantsLossless = (request: Request): boolean => this.#identWantsLossless(request.id);

  /** The reply to a method's result: `#RETURN`, or `#PROXY` when `methodToTypeid` holds the result. */
  #resultReply(held: HeldObject, method: string, result: unknown): Reply {
    const typeid = held.methodToTypeid?.get(method);
    if (typeid === undefined) return encodeReply('#RETURN', result);
    try {
      // The result itself is held under the typeid (its exposed names and
      // methodToTypeid apply); the typeid's callable is for `create` only.
      // (CPython calls the callable with the result, which is why its
      // SyncManager registers such typeids with callable=None.)
      const [ident, exposed] = this.#hold(typeid, result, this.#registry.get(typeid));
      const token = new Token(typeid, this.address, ident);
      return encodeReply('#PROXY', new Tuple(Tuple.from(exposed), tokenToPickle(token)));
    } catch (err) {
      return tracebackReply(err);
    }
  }

  /**
   * What CPython answers for any object when the method is not exposed:
   * `#GETVALUE` (the object itself), `__str__`, `__repr__`. An object with a
   * method `__getvalue__`, `__str__` or `__repr__` answers it itself (the
   * SyncManager classes do: a dict's value is its contents).
   */
  async #fallback(context: CallContext, ident: string, held: HeldObject, method: string): Promise<unknown> {
    if (method !== '#GETVALUE' && method !== '__str__' && method !== '__repr__') {
      throw new ServerFault(
        'AttributeError',
        `method ${pyRepr(method)} of ${pyRepr(typeName(held.obj))} object is not in exposed=(${held.exposed.map(pyRepr).join(', ')}${
          held.exposed.length === 1 ? ',' : ''
        })`,
      );
    }
    const own = methodOf(held.obj, method === '#GETVALUE' ? '__getvalue__' : method);
    if (own !== undefined) {
      let result: unknown = (held.tracked ? runInTrackedCall : runInCall)(context, () => own.call(held.obj));
      if (isPromise(result)) result = await untilAborted(result, context.signal);
      return result;
    }
    if (method === '#GETVALUE') return held.obj;
    return method === '__str__' ? this.#strOf(context, ident, held.obj) : this.#reprOf(context, ident, held.obj);
  }

  async #strOf(context: CallContext, ident: string, obj: unknown): Promise<string> {
    const str = methodOf(obj, '__str__');
    if (str !== undefined) return String(await runnerFor(obj)(context, () => str.call(obj)));
    const text = ownToString(obj);
    return text ?? this.#reprOf(context, ident, obj);
  }

  async #reprOf(context: CallContext, ident: string, obj: unknown): Promise<string> {
    const repr = methodOf(obj, '__repr__');
    if (repr !== undefined) return String(await runnerFor(obj)(context, () => repr.call(obj)));
    if (obj === null || (typeof obj !== 'object' && typeof obj !== 'function')) return String(obj);
    return ownToString(obj) ?? `<${typeName(obj)} object at 0x${ident}>`;
  }

  /** CPython's `debug_info` text: one entry per counted object, sorted by ident. */
  async #debugInfo(context: CallContext): Promise<string> {
    const lines: string[] = [];
    for (const [ident, refcount, held] of this.#table.counted()) {
      let text: string;
      try {
        text = await this.#strOf(context, ident, held.obj);
      } catch (err) {
        text = `<str() failed: ${err instanceof Error ? err.message : String(err)}>`;
      }
      lines.push(`  ${ident}:       refcount=${refcount}\n    ${text.slice(0, 75)}`);
    }
    return lines.join('\n');
  }
}

// --- helpers ---

/**
 * The ident a method call's pickle starts with, read without decoding it
 * (`None` as null), or `undefined` when the bytes do not start the way
 * CPython's `_callmethod` (and mpconn's client) pickle `(ident, method, args,
 * kwds)`: PROTO, an optional FRAME, MARK or not, then a str or None. Only a
 * hint for choosing the decoder: the request is decoded and checked in full
 * either way. When the bytes spell `previous`, that string is returned rather
 * than a new one.
 */
export function peekIdent(bytes: Buffer, previous: string | null = null): string | null | undefined {
  let i = 0;
  if (bytes[i] === 0x80) i += 2; // PROTO n
  if (bytes[i] === 0x95) i += 9; // FRAME + 8-byte length
  if (bytes[i] === 0x28) i += 1; // MARK (a 4-tuple is MARK … TUPLE)
  const op = bytes[i];
  if (op === 0x4e) return null; // NONE
  let start: number;
  let length: number;
  if (op === 0x8c) {
    // SHORT_BINUNICODE: 1-byte length
    if (i + 2 > bytes.length) return undefined;
    length = bytes[i + 1]!;
    start = i + 2;
  } else if (op === 0x58) {
    // BINUNICODE: 4-byte little-endian length
    if (i + 5 > bytes.length) return undefined;
    length = (bytes[i + 1]! | (bytes[i + 2]! << 8) | (bytes[i + 3]! << 16) | (bytes[i + 4]! << 24)) >>> 0;
    start = i + 5;
  } else {
    return undefined;
  }
  if (length > 64 || start + length > bytes.length) return undefined;
  if (previous !== null && spells(bytes, start, length, previous)) return previous;
  return bytes.toString('latin1', start, start + length);
}

/** Whether `bytes[start, start + length)` are the latin-1 codes of `text`. */
function spells(bytes: Uint8Array, start: number, length: number, text: string): boolean {
  if (text.length !== length) return false;
  for (let i = 0; i < length; i++) if (bytes[start + i] !== text.charCodeAt(i)) return false;
  return true;
}

/**
 * A reply's pickle, lent by `encoder` until its next reply; one that cannot
 * be pickled becomes `#UNSERIALIZABLE`.
 */
function replyBytes(encoder: PickleEncoder, reply: Reply): Uint8Array {
  if ((reply[1] === null || reply[1] === undefined) && reply[0] === '#RETURN') return RETURN_NONE;
  try {
    return encoder.encodeTupleLent(reply);
  } catch (err) {
    return encoder.encodeTupleLent(encodeReply('#UNSERIALIZABLE', tracebackText(err)));
  }
}

/** Sends a reply (as `replyBytes`). False when the connection is gone. */
async function send(caller: Caller, reply: Reply): Promise<boolean> {
  try {
    await caller.conn.sendBytes(replyBytes(caller.encoder, reply));
    return true;
  } catch {
    return false;
  }
}

/** Closes a connection, flushing for a bounded time (a peer that never reads must not hold close() up), then destroying it. */
function boundedClose(conn: Connection): Promise<void> {
  return conn.close({ timeout: CLOSE_FLUSH_MS }).catch(() => {});
}

function tracebackReply(err: unknown): Reply {
  return encodeReply('#TRACEBACK', tracebackText(err));
}

/** The reply to what a method threw: a `PyObject` is the exception the client raises (`#ERROR`), anything else a traceback. */
function raisedReply(err: unknown): Reply {
  return err instanceof PyObject ? encodeReply('#ERROR', err) : tracebackReply(err);
}

/** How a call on `obj` is run: the SyncManager classes read the caller synchronously, any other object may read it later. */
function runnerFor(obj: unknown): typeof runInCall {
  return isSyncObject(obj) ? runInCall : runInTrackedCall;
}

/**
 * The text of a `#TRACEBACK` reply. Python shows it inside its `RemoteError`;
 * its last line names the error as Python's tracebacks do (`KeyError: '1f'`),
 * and a JS error brings its name, message and stack.
 */
export function tracebackText(err: unknown): string {
  const header = 'Traceback (most recent call last):\n  (mpconn ManagerServer)\n';
  if (err instanceof ServerFault) return `${header}${err.pyType}: ${err.message}\n`;
  if (err instanceof PyObject) {
    // As Python's format_exception_only: builtins unqualified, then str(exc)
    // (the one argument itself, a KeyError's repr'd, several as a tuple).
    const type = pyTypeOf(err) ?? 'Exception';
    const name = type.startsWith('builtins.') ? type.slice('builtins.'.length) : type;
    const args = err.args;
    const text =
      args.length === 0
        ? ''
        : args.length > 1
          ? reprValue(Tuple.from(args))
          : typeof args[0] === 'string' && name !== 'KeyError'
            ? args[0]
            : reprValue(args[0]);
    return `${header}${text === '' ? name : `${name}: ${text}`}\n`;
  }
  if (err instanceof Error) {
    const head = `${err.name}: ${err.message}`;
    const stack = typeof err.stack === 'string' ? err.stack : '';
    return stack.startsWith(head) ? `${stack}\n` : `${head}\n${stack}\n`;
  }
  return `Error: ${String(err)}\n`;
}

function kwargsOf(kwds: Request['kwds']): Kwargs | null {
  if (kwds instanceof Map) {
    if (kwds.size === 0) return null;
    const plain: Record<string, unknown> = {};
    for (const [key, value] of kwds) {
      if (typeof key !== 'string') throw new ServerFault('TypeError', 'keywords must be strings');
      Object.defineProperty(plain, key, { value, enumerable: true, writable: true, configurable: true });
    }
    return new Kwargs(plain);
  }
  return Object.keys(kwds).length === 0 ? null : new Kwargs(kwds);
}

function identArg(method: string, args: unknown[]): string {
  if (args.length !== 1 || typeof args[0] !== 'string') {
    throw new ServerFault('TypeError', `${method}() takes one ident (str)`);
  }
  return args[0];
}

/**
 * Only native promises (what async methods return) are awaited: an object
 * that merely has a `then` method is a value like any other, and awaiting
 * one whose `then` never calls back would hang the connection.
 */
function isPromise(value: unknown): value is Promise<unknown> {
  return value instanceof Promise;
}

function typeName(obj: unknown): string {
  if (obj === null) return 'NoneType';
  if (typeof obj !== 'object' && typeof obj !== 'function') return typeof obj;
  const ctor = methodOf(obj, 'constructor') as { name?: unknown } | undefined;
  return typeof ctor?.name === 'string' && ctor.name !== '' ? ctor.name : 'object';
}

/** A `toString` of the object's own class (not `Object.prototype`'s), or `null`. */
function ownToString(obj: unknown): string | null {
  const toString = methodOf(obj, 'toString');
  if (toString === undefined || toString === Object.prototype.toString) return null;
  const text = toString.call(obj);
  return typeof text === 'string' ? text : null;
}


