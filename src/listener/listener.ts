import { EventEmitter, once } from 'node:events';
import { rmSync } from 'node:fs';
import { resolve as resolvePath } from 'node:path';
import { lookup } from 'node:dns/promises';
import net from 'node:net';
import tls from 'node:tls';
import { authenticatePeer } from '../auth/handshake.js';
import { ownAuthkey } from '../auth/challenge.js';
import { SocketHandshake } from '../auth/socket-handshake.js';
import { Connection, type ConnectionOptions } from '../connection/index.js';
import { bufferedMessages } from '../connection/connection.js';
import { AuthenticationError, ConnectionStateError, MpconnError, ProtocolError } from '../core/errors.js';
import { Notifier, readiness, type Readiness } from '../core/readiness.js';
import { Queue, untilEnd, WaitQueue, type Waiter } from '../core/queue.js';
import { channels, debug, debugging, publish, showAddress } from '../connection/diagnostics.js';
import {
  cancelOptions,
  checkOptionNames,
  ConnectionSettings,
  describe,
  noteUndefinedAuthkey,
  options as optionsOf,
  queueLength,
  timeoutOr,
} from '../core/validate.js';
import {
  type Address,
  addressType,
  arbitraryAddress,
  checkFamily,
  checkUnixPath,
  claimPrivateDir,
  defaultFamily,
  type Family,
  inetParts,
} from './address.js';
import { onExit } from './cleanup.js';
import { transportFamily } from './options.js';

/**
 * Options of {@link Listener.listen}.
 *
 * @example
 * ```ts
 * const listener = await Listener.listen(['0.0.0.0', 6000], {
 *   authkey: process.env.APP_KEY,
 *   authTimeout: 5_000,
 *   tls: { key: readFileSync('key.pem'), cert: readFileSync('cert.pem') },
 * });
 * ```
 */
export interface ListenerOptions extends ConnectionOptions {
  /** Default: from the address, else `AF_UNIX` (`AF_PIPE` on Windows). */
  family?: Family;
  /** Queue length of the listening socket. Default 511 (CPython's is 1). */
  backlog?: number;
  /** When set, every peer must pass the HMAC challenge before `accept()` sees it. */
  authkey?: Uint8Array | string | null;
  /** Milliseconds a peer gets to finish the handshake. Default 20000; `null` or `Infinity`: no limit. */
  authTimeout?: number | null;
  /** TLS for `AF_INET`: the server's key and certificate, and so on. */
  tls?: tls.TlsOptions;
  /**
   * Most connections held between the OS handing them over and `accept()`
   * taking them: those still in their handshake plus those queued for
   * `accept()`. Each holds a file descriptor, so without a bound a flood of
   * silent peers could exhaust the process's. Beyond it the oldest is
   * dropped (handshakes first, then queued connections) and reported as an
   * `'acceptError'` event with code `ERR_TOO_MANY_PENDING`. Default 511,
   * or the `backlog` when that is larger: as many again as the kernel queues.
   */
  maxPending?: number;
}

/**
 * Options of {@link Listener.accept}.
 *
 * @example
 * ```ts
 * const conn = await listener.accept({ signal: AbortSignal.timeout(10_000) });
 * ```
 */
export interface AcceptOptions {
  /** Abort the accept; it rejects with the signal's reason and no connection is lost. */
  signal?: AbortSignal;
  /** Milliseconds to wait; then it rejects with a `TimeoutError` and no connection is lost. `null` or `Infinity`: no limit. */
  timeout?: number | null;
}

/**
 * The events of a {@link Listener} and their arguments.
 *
 * @example
 * ```ts
 * listener.on('handshakeError', (err, peer) => console.warn('rejected', peer, err.code));
 * listener.on('acceptError', (err) => console.error('accept failed:', err.message));
 * ```
 */
export interface ListenerEvents {
  /** A peer whose handshake failed (wrong key, no key, too slow, bad TLS); it was closed. */
  handshakeError: [err: AuthenticationError | ProtocolError, peer: Address | null];
  /** A connection the Listener could not take or keep; `peer` is null for errors of the listening socket. */
  acceptError: [err: Error, peer: Address | null];
}

/** The option names each entry point knows (a misspelled one is a TypeError, not silently ignored). */
const CONNECTION_OPTION_NAMES = ['serializer', 'maxMessageSize', 'maxDepth'] as const;
const LISTENER_OPTION_NAMES = [
  ...CONNECTION_OPTION_NAMES,
  'family',
  'backlog',
  'authkey',
  'authTimeout',
  'tls',
  'maxPending',
] as const;
const ACCEPT_OPTION_NAMES = ['signal', 'timeout'] as const;

interface Arrival {
  conn: Connection;
  peer: Address;
  /** Stops watching for the peer leaving while queued. */
  leave?: () => void;
}

const DEFAULT_BACKLOG = 511;
const DEFAULT_AUTH_TIMEOUT = 20_000;
/** A small `backlog` (CPython's is 1) must not shrink it: clients that got past the kernel's queue are already here. */
const DEFAULT_MAX_PENDING = 511;

/**
 * A bound, listening socket that hands out connections: Python's
 * `multiprocessing.connection.Listener`. With an `authkey`, handshakes run
 * concurrently and `accept()` only ever sees authenticated peers; a peer whose
 * handshake fails is closed and reported as a `'handshakeError'` event
 * `(err, peer)`, and never stops the server.
 *
 * `'acceptError'` `(err, peer)` reports connections the Listener could not
 * take or keep: an error of the listening socket (`EMFILE`, `ENFILE`:
 * out of file descriptors), or a pending peer dropped over `maxPending`
 * (`ERR_TOO_MANY_PENDING`). Unlike `'error'`, it needs no listener: nothing
 * a peer does can crash the process.
 *
 * @example
 * ```ts
 * await using listener = await Listener.listen(['localhost', 6000], { authkey: 'secret' });
 * for await (const conn of listener) {
 *   console.log('from', listener.lastAccepted, await conn.recv());
 * }
 * ```
 */
export class Listener extends EventEmitter<ListenerEvents> implements AsyncIterable<Connection>, AsyncDisposable {
  readonly #server: net.Server;
  readonly #address: Address;
  readonly #family: Family;
  readonly #authkey: Uint8Array | null;
  readonly #authTimeout: number;
  readonly #connectionSettings: ConnectionSettings;
  readonly #arrivals = new Queue<Arrival>();
  readonly #acceptors = new WaitQueue<Waiter<Connection>>('accept');
  /** Peers in their handshake: on the bare socket, or on a Connection when the accept event has subscribers. */
  readonly #handshaking = new Map<Connection | SocketHandshake, Address>();
  /**
   * A TLS listener's raw sockets still in their TLS handshake (Node's, before
   * 'secureConnection'), oldest first, by peer (`address|port`, which the
   * TLS socket made of the raw one reports too): pending connections like
   * the others, counted in `maxPending`.
   */
  readonly #tlsHandshaking = new Map<string, net.Socket>();
  /** Raw sockets dropped over maxPending in their TLS handshake whose 'socket hang up' is still to come. */
  #tlsDropped = 0;
  readonly #maxPending: number;
  readonly #ready = new Notifier();
  #lastAccepted: Address | null = null;
  #closed = false;
  #removeFiles: (() => void) | null;

  /**
   * Binds and listens. Without an address: a Unix socket in a fresh private
   * directory (a named pipe on Windows). `['localhost', 0]` binds a free port;
   * `.address` tells which.
   *
   * @example
   * ```ts
   * const listener = await Listener.listen(['127.0.0.1', 0], { authkey: 'secret' });
   * const [host, port] = listener.address as [string, number];
   * ```
   */
  static async listen(address?: Address | null, options?: ListenerOptions): Promise<Listener> {
    if (arguments.length > 2 || (options !== undefined && options !== null && typeof options !== 'object')) {
      // Python's positional Listener(address, family, backlog, authkey).
      throw new TypeError(
        `Listener.listen(address, options) takes its options as one object, as { family, backlog, authkey }, not ${describe(options)}` +
          (arguments.length > 2 ? ' and more arguments (Python positional form)' : ''),
      );
    }
    const opts = optionsOf(options, 'options');
    checkOptionNames(opts, LISTENER_OPTION_NAMES, 'Listener.listen() options');
    noteUndefinedAuthkey(opts, 'Listener.listen() options');
    // As Python's Listener: the family comes from the option, else the address, else the default, and is validated either way.
    const wanted = checkFamily(opts.family ?? (address != null ? addressType(address) : defaultFamily));
    const addr = address ?? arbitraryAddress(wanted);
    const family = transportFamily(addr, wanted, opts.tls);
    const authkey = ownAuthkey(opts.authkey);
    // Node reads a backlog of 0 as its default (511); the kernel's meaning of listen(0), as in Python, is closest to 1.
    const backlog = Math.max(1, queueLength(opts.backlog, 'backlog') ?? DEFAULT_BACKLOG);
    // `null` is Python's None: no limit (as CPython, whose Listener has none). Left out, the default applies.
    const authTimeout = timeoutOr(opts.authTimeout, DEFAULT_AUTH_TIMEOUT, 'authTimeout');
    const maxPending = Math.max(1, queueLength(opts.maxPending, 'maxPending') ?? Math.max(backlog, DEFAULT_MAX_PENDING));
    // A bad serializer fails here, not at the first connection.
    const settings = new ConnectionSettings(opts);

    const server =
      opts.tls !== undefined
        ? // authTimeout bounds the TLS handshake too (Node's own default is 120 s); opts.tls may override.
          tls.createServer({ handshakeTimeout: tlsHandshakeTimeout(authTimeout), ...opts.tls, allowHalfOpen: true })
        : net.createServer({ allowHalfOpen: true });
    let bound: Address;
    let removeFiles: (() => void) | null = null;
    if (family === 'AF_INET') {
      const { host, port } = inetParts(addr);
      server.listen({ host: await bindHost(host), port, backlog });
      await listening(server);
      const info = server.address() as net.AddressInfo;
      bound = [info.address, info.port];
    } else {
      let path = addr as string;
      if (family === 'AF_UNIX') {
        checkUnixPath(path);
        // Bound (and later removed) by absolute path: libuv removes the path
        // it was given, relative to the cwd at close time, so after a chdir a
        // relative path would name someone else's file.
        if (!path.startsWith('\0')) {
          path = resolvePath(path);
          checkUnixPath(path, 'Unix socket path (made absolute)');
        }
      }
      const privateDir = family === 'AF_UNIX' ? claimPrivateDir(path) : null;
      try {
        server.listen({ path, backlog });
        await listening(server);
      } catch (err) {
        if (privateDir !== null) rmSync(privateDir, { recursive: true, force: true });
        throw err;
      }
      bound = path;
      if (family === 'AF_UNIX' && !path.startsWith('\0')) removeFiles = socketFileRemover(path, privateDir);
    }
    return new Listener(server, bound, family, authkey, authTimeout, maxPending, removeFiles, settings);
  }

  private constructor(
    server: net.Server,
    address: Address,
    family: Family,
    authkey: Uint8Array | null,
    authTimeout: number,
    maxPending: number,
    removeFiles: (() => void) | null,
    connectionSettings: ConnectionSettings,
  ) {
    super();
    if (!(server instanceof net.Server)) {
      throw new TypeError('a Listener is made with `await Listener.listen(address, options)`, not `new Listener()`');
    }
    this.#maxPending = maxPending;
    this.#server = server;
    this.#address = address;
    this.#family = family;
    this.#authkey = authkey;
    this.#authTimeout = authTimeout;
    this.#removeFiles = removeFiles;
    this.#connectionSettings = connectionSettings;
    const secure = server instanceof tls.Server;
    if (secure) {
      server.on('connection', (raw: net.Socket) => this.#onTlsArrival(raw));
      server.on('secureConnection', (socket: tls.TLSSocket) => {
        const key = peerKey(socket);
        if (key !== null) this.#tlsHandshaking.delete(key);
        this.#onSocket(socket);
      });
    } else {
      server.on('connection', (socket: net.Socket) => this.#onSocket(socket));
    }
    if (secure) {
      server.on('tlsClientError', (err: Error, socket: tls.TLSSocket) => {
        // Its peer while it still has one (a socket whose raw socket is gone has none).
        const key = peerKey(socket);
        const peer = peerOf(socket, family);
        if (key !== null) this.#tlsHandshaking.delete(key); // it holds no room from now on
        socket.destroy(); // Node leaves it open after a handshake timeout: the listener must close it
        if (this.#closed) return; // close() ended it
        // A TLS socket whose raw socket closes before its handshake is done
        // reports one 'socket hang up', with no peer left to tell it by: one
        // per raw socket dropped over maxPending is that drop's, already
        // reported as such.
        if (key === null && this.#tlsDropped > 0 && isHangUp(err)) {
          this.#tlsDropped--;
          return;
        }
        this.#reportHandshakeError(new AuthenticationError(`TLS handshake failed: ${err.message}`, { cause: err, reason: 'tls' }), peer);
      });
    }
    // Errors on the listening socket after bind (the OS refusing accept:
    // EMFILE, ENFILE, ENOBUFS) must not crash the process: they are reported
    // as 'acceptError', which, unlike 'error', nobody has to listen to. libuv
    // does not spin on them: at EMFILE it accepts and closes what is queued
    // (with a spare descriptor it keeps for that) and waits for new peers.
    server.on('error', (err: Error) => {
      if (debugging()) debug('listener %s: accept error: %s', showAddress(address), err.message);
      this.emit('acceptError', err, null);
    });
  }

  /** The bound address: `[host, port]` with the real port for `AF_INET`, else the path or pipe name. */
  get address(): Address {
    return this.#address;
  }

  /** The address family the Listener is bound in: `'AF_INET'`, `'AF_UNIX'` or `'AF_PIPE'`. */
  get family(): Family {
    return this.#family;
  }

  /** Address of the peer of the last connection `accept()` returned (`''` for Unix sockets), or null. */
  get lastAccepted(): Address | null {
    return this.#lastAccepted;
  }

  /** Python-compatible name of {@link lastAccepted}. */
  get last_accepted(): Address | null {
    return this.#lastAccepted;
  }

  /**
   * The next connection (authenticated, when the Listener has an authkey).
   * An aborted or timed-out accept loses no connection: it goes to the next one.
   *
   * @example
   * ```ts
   * const conn = await listener.accept({ timeout: 10_000 });
   * ```
   */
  accept(options?: AcceptOptions): Promise<Connection> {
    if (this.#closed) return Promise.reject(listenerClosed());
    let signal: AbortSignal | undefined;
    let timeout: number | undefined;
    try {
      const opts = optionsOf(options, 'options');
      checkOptionNames(opts, ACCEPT_OPTION_NAMES, 'accept() options');
      ({ signal, timeout } = cancelOptions(opts));
    } catch (err) {
      return Promise.reject(err);
    }
    if (signal?.aborted) return Promise.reject(signal.reason);
    const arrival = this.#arrivals.shift();
    if (arrival !== undefined) return Promise.resolve(this.#handOver(arrival));
    return new Promise<Connection>((resolve, reject) => {
      this.#acceptors.add({ resolve, reject, disarm: null }, signal, timeout);
    });
  }

  /**
   * Stops listening and removes the socket file (and the private directory)
   * it created. Connections already accepted stay open; ones not yet accepted
   * are closed. Pending `accept()` calls reject with `ERR_CLOSED`. Idempotent.
   */
  async close(): Promise<void> {
    if (this.#closed) return;
    this.#closed = true;
    this.#server.close();
    this.#removeFiles?.();
    this.#removeFiles = null;
    const err = listenerClosed();
    for (const acceptor of this.#acceptors.drain()) acceptor.reject(err);
    const pending = [...this.#arrivals.drain().map((a) => a.conn), ...this.#handshaking.keys()];
    this.#handshaking.clear();
    for (const raw of this.#tlsHandshaking.values()) raw.destroy();
    this.#tlsHandshaking.clear();
    this.#ready.notify();
    await Promise.all(pending.map((conn) => conn.close()));
  }

  /** Accepts connections until the Listener is closed. */
  [Symbol.asyncIterator](): AsyncIterator<Connection> {
    return untilEnd(
      () => this.accept(),
      (err) => err instanceof ConnectionStateError && err.code === 'ERR_CLOSED',
    );
  }

  /** `await using listener = await Listener.listen(...)` closes it at the end of the block. */
  [Symbol.asyncDispose](): Promise<void> {
    return this.close();
  }

  /** @internal For `wait()`: ready when a connection is waiting to be accepted. */
  [readiness](): Readiness {
    return this.#ready.readiness(() => this.#arrivals.length > 0 || this.#closed);
  }

  /** A TLS listener's raw socket, before its TLS handshake: pending from now on. */
  #onTlsArrival(raw: net.Socket): void {
    if (this.#closed) {
      raw.destroy();
      return;
    }
    const key = peerKey(raw);
    if (key === null) return; // already gone: nothing is held
    this.#makeRoom();
    if (this.#closed) {
      raw.destroy(); // an 'acceptError' listener closed the Listener
      return;
    }
    this.#tlsHandshaking.delete(key); // a connection gone from the same address and port: this one is the newest
    this.#tlsHandshaking.set(key, raw);
    raw.once('close', () => {
      if (this.#tlsHandshaking.get(key) === raw) this.#tlsHandshaking.delete(key);
    });
  }

  #onSocket(socket: net.Socket): void {
    if (this.#closed) {
      socket.destroy();
      return;
    }
    if (this.#family === 'AF_INET') socket.setNoDelay(true);
    const peer = peerOf(socket, this.#family);
    this.#makeRoom();
    if (this.#authkey !== null && !channels.listenerAccept.hasSubscribers) {
      this.#authenticate(socket, this.#authkey, peer);
      return;
    }
    const conn = new Connection(socket, this.#connectionSettings);
    if (debugging()) debug('listener %s: accepted a connection from %s', showAddress(this.#address), showAddress(peer));
    publish(channels.listenerAccept, () => ({ listener: this, connection: conn, peer }));
    if (this.#authkey === null) {
      this.#arrive({ conn, peer }, socket);
      return;
    }
    this.#handshaking.set(conn, peer);
    authenticatePeer(conn, this.#authkey, this.#authTimeout).then(
      () => {
        if (!this.#handshaking.delete(conn)) return; // closed or dropped meanwhile
        if (debugging()) debug('listener %s: handshake with %s ok', showAddress(this.#address), showAddress(peer));
        publish(channels.handshakeOk, () => ({ side: 'listener', connection: conn, peer }));
        this.#arrive({ conn, peer }, socket);
      },
      (err: AuthenticationError | ProtocolError) => {
        const wasPending = this.#handshaking.delete(conn);
        if (wasPending) this.#reportHandshakeError(err, peer);
      },
    );
  }

  /**
   * The handshake on the bare socket; the Connection is made once the peer
   * is authenticated. (A subscriber to the accept event is given the
   * Connection before the handshake: then it runs on the Connection.)
   */
  #authenticate(socket: net.Socket, authkey: Uint8Array, peer: Address): void {
    if (debugging()) debug('listener %s: accepted a connection from %s', showAddress(this.#address), showAddress(peer));
    const handshake = SocketHandshake.listener(
      socket,
      authkey,
      { timeout: this.#authTimeout, maxMessageSize: this.#connectionSettings.maxMessageSize },
      () => {
        if (!this.#handshaking.delete(handshake)) {
          socket.destroy(); // closed or dropped meanwhile
          return;
        }
        const conn = handshake.connection(this.#connectionSettings);
        if (debugging()) debug('listener %s: handshake with %s ok', showAddress(this.#address), showAddress(peer));
        publish(channels.handshakeOk, () => ({ side: 'listener', connection: conn, peer }));
        this.#arrive({ conn, peer }, socket);
      },
      (err) => {
        if (this.#handshaking.delete(handshake)) this.#reportHandshakeError(err, peer);
      },
    );
    this.#handshaking.set(handshake, peer);
  }

  #reportHandshakeError(err: AuthenticationError | ProtocolError, peer: Address | null): void {
    if (debugging()) debug('listener %s: handshake with %s failed: %s', showAddress(this.#address), showAddress(peer), err.message);
    publish(channels.handshakeError, () => ({ side: 'listener', error: err, peer }));
    this.emit('handshakeError', err, peer);
  }

  #arrive(arrival: Arrival, socket: net.Socket): void {
    const acceptor = this.#acceptors.shift();
    if (acceptor !== undefined) {
      acceptor.resolve(this.#handOver(arrival));
      return;
    }
    this.#arrivals.push(arrival);
    // A queued peer that leaves gives its descriptor back at once: dropped
    // if it sent nothing, else kept (without the socket) so that accept()
    // still hands over what it sent, as from a Python peer that sent and closed.
    const left = (): void => {
      if (arrival.conn[bufferedMessages]() > 0) socket.destroy();
      else if (this.#arrivals.remove(arrival)) arrival.conn.destroy();
    };
    socket.once('end', left);
    socket.once('close', left);
    arrival.leave = () => {
      socket.off('end', left);
      socket.off('close', left);
    };
    if (this.#arrivals.length === 1) this.#ready.notify();
  }

  #pendingCount(): number {
    return this.#tlsHandshaking.size + this.#handshaking.size + this.#arrivals.length;
  }

  /** One more connection is coming: drop the oldest pending one if that would pass maxPending. */
  #makeRoom(): void {
    if (this.#pendingCount() < this.#maxPending) return;
    // A raw socket whose TLS handshake failed may not have said 'close' yet: it holds no room.
    for (const [key, raw] of this.#tlsHandshaking) if (raw.destroyed) this.#tlsHandshaking.delete(key);
    if (this.#pendingCount() < this.#maxPending) return;
    let conn: Connection | SocketHandshake | net.Socket;
    let peer: Address | null;
    const tlsFirst = this.#tlsHandshaking.entries().next();
    const first = this.#handshaking.entries().next();
    if (!tlsFirst.done) {
      const [key, raw] = tlsFirst.value;
      this.#tlsHandshaking.delete(key);
      this.#tlsDropped++;
      conn = raw;
      peer = peerOf(raw, this.#family);
    } else if (!first.done) {
      [conn, peer] = first.value;
      this.#handshaking.delete(conn);
    } else {
      const oldest = this.#arrivals.shift()!;
      oldest.leave?.();
      conn = oldest.conn;
      peer = oldest.peer;
    }
    conn.destroy();
    if (debugging()) debug('listener %s: dropped a pending connection from %s (maxPending)', showAddress(this.#address), showAddress(peer));
    this.emit(
      'acceptError',
      new MpconnError(
        'ERR_TOO_MANY_PENDING',
        `dropped a pending connection: ${this.#maxPending} were already waiting for their handshake or for accept() ` +
          '(maxPending); accept faster or raise maxPending',
      ),
      peer,
    );
  }

  #handOver(arrival: Arrival): Connection {
    arrival.leave?.();
    this.#lastAccepted = arrival.peer;
    return arrival.conn;
  }
}

function listenerClosed(): ConnectionStateError {
  return new ConnectionStateError('ERR_CLOSED', 'the listener is closed');
}

/** Node's report of a TLS socket whose raw socket closed before the handshake was done. */
function isHangUp(err: Error): boolean {
  return (err as NodeJS.ErrnoException).code === 'ECONNRESET' && err.message === 'socket hang up';
}

/** A TCP peer as `address|port`, the same for a raw socket and the TLS socket over it; null once it is gone. */
function peerKey(socket: net.Socket): string | null {
  const { remoteAddress, remotePort } = socket;
  return remoteAddress === undefined || remotePort === undefined ? null : `${remoteAddress}|${remotePort}`;
}

function peerOf(socket: net.Socket, family: Family): Address {
  if (family !== 'AF_INET') return '';
  return [socket.remoteAddress ?? '', socket.remotePort ?? 0];
}

/** `handshakeTimeout` for tls.createServer: 0 disables it; setTimeout caps at 2**31-1 ms. */
function tlsHandshakeTimeout(authTimeout: number): number {
  return Number.isFinite(authTimeout) ? Math.min(Math.max(1, authTimeout), 2 ** 31 - 1) : 0;
}

async function listening(server: net.Server): Promise<void> {
  if (server.listening) return;
  await once(server, 'listening');
}

/**
 * Python binds `AF_INET` to an IPv4 address: `'localhost'` means 127.0.0.1 so
 * that a Python client (which connects over IPv4 only) reaches it. `''` means
 * every interface. IPv6 literals are used as given.
 */
async function bindHost(host: string): Promise<string> {
  if (host === '') return '0.0.0.0';
  if (net.isIP(host) !== 0) return host;
  try {
    return (await lookup(host, { family: 4 })).address;
  } catch {
    return (await lookup(host)).address;
  }
}

/** Removes the socket file (and the private directory around it) on close or at exit. */
function socketFileRemover(path: string, privateDir: string | null): () => void {
  const remove = (): void => {
    rmSync(path, { force: true });
    if (privateDir !== null) rmSync(privateDir, { recursive: true, force: true });
  };
  const cancelAtExit = onExit(remove);
  return () => {
    cancelAtExit();
    remove();
  };
}
