import net from 'node:net';
import tls from 'node:tls';
import { authenticateToListener } from '../auth/handshake.js';
import { ownAuthkey } from '../auth/challenge.js';
import { SocketHandshake } from '../auth/socket-handshake.js';
import { armCancel } from '../core/cancel.js';
import { timeoutError } from '../core/errors.js';
import { Connection, type ConnectionOptions } from '../connection/index.js';
import { channels, debug, debugging, publish, showAddress } from '../connection/diagnostics.js';
import { SocketReads } from '../connection/socket-reads.js';
import { cancelOptions, checkOptionNames, ConnectionSettings, describe, noteUndefinedAuthkey, options as optionsOf } from '../core/validate.js';
import { type Address, addressType, checkUnixPath, type Family, inetParts } from './address.js';
import { transportFamily } from './options.js';

/**
 * Options of {@link Client}.
 *
 * @example
 * ```ts
 * const conn = await Client(['db.internal', 6000], {
 *   authkey: process.env.APP_KEY,
 *   timeout: 5_000,
 *   tls: { ca: readFileSync('ca.pem') },
 * });
 * ```
 */
export interface ClientOptions extends ConnectionOptions {
  /** Default: from the address ({@link addressType}). */
  family?: Family;
  /** When set, the handshake must succeed before `Client()` resolves. */
  authkey?: Uint8Array | string | null;
  /** Milliseconds for connecting and the handshake together. Default 20000 (CPython's CONNECTION_TIMEOUT); `null` or `Infinity`: no limit. */
  timeout?: number | null;
  /** Abort connecting (and the handshake); `Client()` rejects with the signal's reason. */
  signal?: AbortSignal;
  /** TLS for `AF_INET`: `ca`, `servername`, client certificates, and so on. */
  tls?: tls.ConnectionOptions;
}

const DEFAULT_TIMEOUT = 20_000;
const CLIENT_OPTION_NAMES = ['serializer', 'maxMessageSize', 'maxDepth', 'family', 'authkey', 'timeout', 'signal', 'tls'] as const;

/**
 * Connects to a Listener (or a Python `multiprocessing.connection.Listener`)
 * and returns the connection, authenticated when `authkey` is given.
 *
 * @example
 * ```ts
 * const conn = await Client(['localhost', 6000], { authkey: 'secret' });
 * await conn.send('hello');
 * ```
 */
export async function Client(address: Address, options?: ClientOptions): Promise<Connection> {
  if (arguments.length > 2 || (options !== undefined && options !== null && typeof options !== 'object')) {
    // Python's positional Client(address, family, authkey): silently ignoring the key would connect unauthenticated.
    throw new TypeError(
      `Client(address, options) takes its options as one object, as Client(address, { family, authkey }), not ${describe(options)}` +
        (arguments.length > 2 ? ' and more arguments (Python positional form)' : ''),
    );
  }
  const opts = optionsOf(options, 'options');
  checkOptionNames(opts, CLIENT_OPTION_NAMES, 'Client() options');
  noteUndefinedAuthkey(opts, 'Client() options');
  const family = transportFamily(address, opts.family !== undefined ? opts.family : addressType(address), opts.tls);
  const authkey = ownAuthkey(opts.authkey);
  // `null` is Python's None: no limit. Left out, the default applies.
  const { signal, timeout } = cancelOptions(opts, DEFAULT_TIMEOUT);
  const settings = new ConnectionSettings(opts);
  if (family === 'AF_UNIX') checkUnixPath(address as string);
  // Before the connect timer is armed: a bad port thrown from inside the connect would leave it running.
  if (family === 'AF_INET') inetParts(address);
  if (signal?.aborted) throw signal.reason;

  if (authkey !== null && !channels.clientConnect.hasSubscribers) {
    // The handshake runs on the bare socket, under the connect's timer and
    // signal, and the Connection is made once it is done. (A subscriber to
    // the connect event is given the Connection before the handshake: then
    // it runs on the Connection, below.)
    const conn = await connectSocket<Connection>(address, family, opts.tls, timeout, signal, (socket, reads, started, resolve, reject) =>
      authenticate(socket, reads, authkey, address, timeout, started, signal, settings, resolve, reject),
    );
    publish(channels.handshakeOk, () => ({ side: 'client', connection: conn, peer: address }));
    return conn;
  }

  const started = Date.now();
  const [socket, reads] = await connectSocket(address, family, opts.tls, timeout, signal, connected);
  const conn = new Connection(socket, settings, { readable: true, writable: true, reads: reads ?? undefined });
  if (debugging()) debug('client: connected to %s (%s)', showAddress(address), family);
  publish(channels.clientConnect, () => ({ connection: conn, address, family }));
  if (authkey !== null) {
    const left = timeout === Infinity ? Infinity : Math.max(0, timeout - (Date.now() - started));
    try {
      await authenticateToListener(conn, authkey, left, signal, timeout, family !== 'AF_INET');
    } catch (err) {
      if (debugging()) debug('client: handshake with %s failed: %s', showAddress(address), (err as Error)?.message);
      publish(channels.handshakeError, () => ({ side: 'client', error: err, peer: address }));
      throw err;
    }
    if (debugging()) debug('client: handshake with %s ok', showAddress(address));
    publish(channels.handshakeOk, () => ({ side: 'client', connection: conn, peer: address }));
  }
  return conn;
}

/** The handshake on a socket that just connected to `address`, settling the connect with the Connection made after it. */
function authenticate(
  socket: net.Socket,
  reads: SocketReads | null,
  authkey: Uint8Array,
  address: Address,
  timeout: number,
  started: number,
  signal: AbortSignal | undefined,
  settings: ConnectionSettings,
  resolve: (conn: Connection) => void,
  reject: (err: unknown) => void,
): (reason: unknown) => void {
  const family = addressType(address);
  if (debugging()) debug('client: connected to %s (%s)', showAddress(address), family);
  const handshake = SocketHandshake.client(
    socket,
    authkey,
    { pipeline: family !== 'AF_INET', maxMessageSize: settings.maxMessageSize, reportedTimeout: timeout, signal, reads },
    () => {
      if (debugging()) debug('client: handshake with %s ok', showAddress(address));
      // Made at once, in the same tick: an end or error the socket emits next must find the Connection listening.
      resolve(handshake.connection(settings));
    },
    (err) => {
      if (debugging()) debug('client: handshake with %s failed: %s', showAddress(address), (err as Error)?.message);
      publish(channels.handshakeError, () => ({ side: 'client', error: err, peer: address }));
      reject(err);
    },
  );
  const left = timeout === Infinity ? Infinity : Math.max(0, timeout - (Date.now() - started));
  return (reason) => handshake.cancel(signal?.aborted && reason === signal.reason ? reason : timeoutError('authentication handshake', left));
}

/**
 * Python-compatible alias of {@link Client}.
 *
 * @example
 * ```ts
 * const conn = await connect(['localhost', 6000], { authkey: 'secret' });
 * ```
 */
export const connect = Client;

/** Pause before trying again when a Unix socket's accept queue is full, doubling up to the max. */
const BUSY_RETRY_FIRST = 5;
const BUSY_RETRY_MAX = 100;

/**
 * What runs on the socket once connected, under the same timer and signal
 * (`started`: when the connect began): it settles the connect with
 * `resolve`/`reject` and returns how to cancel it. `reads`: where the
 * socket's bytes come from, when not from `'data'` (see `openSocket`).
 */
type AfterConnect<T> = (
  socket: net.Socket,
  reads: SocketReads | null,
  started: number,
  resolve: (value: T) => void,
  reject: (err: unknown) => void,
) => (reason: unknown) => void;

function connectSocket<T>(
  address: Address,
  family: Family,
  secure: tls.ConnectionOptions | undefined,
  timeout: number,
  signal: AbortSignal | undefined,
  after: AfterConnect<T>,
): Promise<T> {
  const started = Date.now();
  return new Promise<T>((resolve, reject) => {
    let socket: net.Socket | null = null;
    let retry: NodeJS.Timeout | undefined;
    let delay = BUSY_RETRY_FIRST;
    let settled = false;
    let cancelAfter: ((reason: unknown) => void) | null = null;
    const disarm = armCancel(signal, timeout, 'connect', (reason) => {
      if (cancelAfter !== null) return cancelAfter(reason);
      settled = true;
      clearTimeout(retry);
      socket?.destroy();
      reject(reason);
    });
    const attempt = (): void => {
      const [s, ready, reads] = openSocket(address, family, secure);
      socket = s;
      const onReady = (): void => {
        s.off('error', onError);
        if (settled) return;
        cancelAfter = after(
          s,
          reads,
          started,
          (value) => {
            disarm();
            resolve(value);
          },
          (err) => {
            disarm();
            reject(err);
          },
        );
      };
      const onError = (err: NodeJS.ErrnoException): void => {
        s.off(ready, onReady);
        s.destroy();
        if (settled) return;
        // A Unix socket whose accept queue is full refuses a non-blocking
        // connect at once (EAGAIN), where Python's blocking connect() waits
        // for room. A Python Listener's backlog is 1, so a burst of clients
        // meets this routinely: wait and try again, until timeout or abort.
        if (err.code === 'EAGAIN' && family === 'AF_UNIX') {
          retry = setTimeout(attempt, delay);
          delay = Math.min(delay * 2, BUSY_RETRY_MAX);
          return;
        }
        settled = true;
        disarm();
        reject(err);
      };
      s.once(ready, onReady);
      s.once('error', onError);
    };
    attempt();
  });
}

/** What runs once a plain connect is done: nothing; the connect resolves with the socket. */
const connected: AfterConnect<[net.Socket, SocketReads | null]> = (socket, reads, _started, resolve) => {
  resolve([socket, reads]);
  return () => {};
};

/**
 * A socket connecting to `address`, the event that says it is ready, and its
 * reads: a plain socket reads through `onread` (no `'data'` events), a TLS
 * one the usual way (`null`).
 */
function openSocket(address: Address, family: Family, secure: tls.ConnectionOptions | undefined): [net.Socket, string, SocketReads | null] {
  if (family !== 'AF_INET') {
    const [socket, reads] = SocketReads.connect({ path: address as string, allowHalfOpen: true });
    return [socket, 'connect', reads];
  }
  const { host, port } = inetParts(address);
  if (secure !== undefined) {
    const socket = tls.connect({ servername: net.isIP(host) ? undefined : host, ...secure, host, port, allowHalfOpen: true } as tls.ConnectionOptions);
    socket.setNoDelay(true);
    return [socket, 'secureConnect', null];
  }
  const [socket, reads] = SocketReads.connect({ host, port, allowHalfOpen: true });
  socket.setNoDelay(true);
  return [socket, 'connect', reads];
}
