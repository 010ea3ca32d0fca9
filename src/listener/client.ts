import { once } from 'node:events';
import net from 'node:net';
import tls from 'node:tls';
import { authenticateToListener } from '../auth/index.js';
import { armCancel } from '../cancel.js';
import { Connection, type ConnectionOptions } from '../connection/index.js';
import { resolveSerializer } from '../serializers/index.js';
import { abortSignal, authkeyBytes, byteCount, options as optionsOf, timeoutMs } from '../validate.js';
import { type Address, addressType, checkFamily, type Family, inetParts } from './address.js';

/** Options of {@link Client}. */
export interface ClientOptions extends ConnectionOptions {
  family?: Family;
  /** When set, the handshake must succeed before `Client()` resolves. */
  authkey?: Uint8Array | string | null;
  /** Milliseconds for connecting and the handshake together. Default 20000 (CPython's CONNECTION_TIMEOUT). */
  timeout?: number;
  signal?: AbortSignal;
  /** TLS for `AF_INET`: `ca`, `servername`, client certificates, and so on. */
  tls?: tls.ConnectionOptions;
}

const DEFAULT_TIMEOUT = 20_000;

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
  const opts = optionsOf(options, 'options');
  const family = opts.family !== undefined ? checkFamily(opts.family) : checkFamily(addressType(address));
  if (addressType(address) !== family) throw new TypeError(`address ${JSON.stringify(address)} is not an ${family} address`);
  const authkey = authkeyBytes(opts.authkey);
  const timeout = timeoutMs(opts.timeout) ?? DEFAULT_TIMEOUT;
  const signal = abortSignal(opts.signal);
  resolveSerializer(opts.serializer);
  byteCount(opts.maxMessageSize, 'maxMessageSize');
  if (opts.tls !== undefined && family !== 'AF_INET') throw new TypeError('tls is only available with AF_INET addresses');
  if (signal?.aborted) throw signal.reason;

  const started = Date.now();
  const socket = await connectSocket(address, family, opts.tls, timeout, signal);
  const conn = new Connection(socket, { serializer: opts.serializer, maxMessageSize: opts.maxMessageSize });
  if (authkey !== null) {
    const left = timeout === Infinity ? Infinity : Math.max(0, timeout - (Date.now() - started));
    await authenticateToListener(conn, authkey, left, signal);
  }
  return conn;
}

/** Python-compatible alias of {@link Client}. */
export const connect = Client;

function connectSocket(
  address: Address,
  family: Family,
  secure: tls.ConnectionOptions | undefined,
  timeout: number,
  signal: AbortSignal | undefined,
): Promise<net.Socket> {
  let socket: net.Socket;
  let ready: string;
  if (family === 'AF_INET') {
    const { host, port } = inetParts(address);
    if (secure !== undefined) {
      socket = tls.connect({ servername: net.isIP(host) ? undefined : host, ...secure, host, port, allowHalfOpen: true } as tls.ConnectionOptions);
      ready = 'secureConnect';
    } else {
      socket = net.connect({ host, port, allowHalfOpen: true });
      ready = 'connect';
    }
    socket.setNoDelay(true);
  } else {
    socket = net.connect({ path: address as string, allowHalfOpen: true });
    ready = 'connect';
  }
  return new Promise<net.Socket>((resolve, reject) => {
    const disarm = armCancel(signal, timeout, 'connect', (reason) => {
      socket.destroy();
      reject(reason);
    });
    once(socket, ready).then(
      () => {
        disarm();
        resolve(socket);
      },
      (err: unknown) => {
        disarm();
        socket.destroy();
        reject(err);
      },
    );
  });
}
