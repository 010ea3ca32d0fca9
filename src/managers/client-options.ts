/**
 * The one place where the manager client checks what a caller hands it:
 * `TypeError` for the wrong kind of value, `RangeError` for a value out of range.
 */
import type { Family } from '../listener/index.js';
import type { ConnectionOptions as TlsConnectionOptions } from 'node:tls';
import { abortSignal, authkeyBytes, byteCount, checkOptionNames, describe, timeoutMs } from '../core/validate.js';
import { Kwargs } from './protocol.js';

/**
 * Options of {@link ManagerClient.connect}.
 *
 * @example
 * ```ts
 * const manager = await ManagerClient.connect(['localhost', 50000], { authkey: 'abracadabra', maxConnections: 4 });
 * ```
 */
export interface ManagerClientOptions {
  /**
   * The manager's authkey; required (Python's default key belongs to one
   * process tree and means nothing here). `null` only for a server that asks
   * for no authentication.
   */
  authkey: Uint8Array | string | null;
  /**
   * Milliseconds for each connection's connect and handshake, and for the
   * server's answer to the client's own requests on it (`connect()`'s `dummy`,
   * `create`, `decref`, `numberOfObjects()`, `accept_connection` …); not for
   * method calls, which take their own `timeout`. Default 20000; `null` or
   * `Infinity`: no limit.
   */
  timeout?: number | null;
  /** Aborts `connect()`. */
  signal?: AbortSignal;
  /** Default: from the address. */
  family?: Family;
  /** TLS for `AF_INET`. */
  tls?: TlsConnectionOptions;
  /** Call connections kept open to the server at most (default 16); further calls wait for one. */
  maxConnections?: number;
  /**
   * Longest reply, in bytes, the client takes (default: the platform's Buffer
   * limit). A longer one rejects its call with `ProtocolError`
   * `ERR_MESSAGE_TOO_LONG` before its bytes are held, and that connection is
   * closed; the client goes on with others.
   */
  maxMessageSize?: number;
}

/** Per-call options of `callMethod`. */
export interface CallOptions {
  signal?: AbortSignal | undefined;
  /** Milliseconds. */
  timeout?: number | undefined;
}

export interface CheckedClientOptions {
  readonly authkey: Uint8Array | null;
  readonly timeout: number | null | undefined;
  readonly signal: AbortSignal | undefined;
  readonly family: Family | undefined;
  readonly tls: TlsConnectionOptions | undefined;
  readonly maxConnections: number;
  readonly maxMessageSize: number | undefined;
}

/** The names {@link ManagerClientOptions} has: any other is a typo, refused rather than ignored. */
const CLIENT_OPTION_NAMES = ['authkey', 'timeout', 'signal', 'family', 'tls', 'maxConnections', 'maxMessageSize'] as const;

const DEFAULT_MAX_CONNECTIONS = 16;
/** CPython's CONNECTION_TIMEOUT, as `Client()` uses it. */
export const DEFAULT_TIMEOUT = 20_000;

export function checkClientOptions(address: unknown, options: unknown): CheckedClientOptions {
  if (address === undefined || address === null) throw new TypeError('ManagerClient.connect() needs the manager\'s address');
  if (options === undefined || options === null || typeof options !== 'object') {
    throw new TypeError(
      'ManagerClient.connect(address, options) needs options with the manager\'s authkey ({ authkey: null } for none)',
    );
  }
  checkOptionNames(options, CLIENT_OPTION_NAMES, 'ManagerClient.connect() options');
  const opts = options as Partial<ManagerClientOptions>;
  if (!('authkey' in opts) || opts.authkey === undefined) {
    throw new TypeError(
      'options.authkey is required: pass the manager\'s authkey (Python\'s default key is per process tree), or null for none',
    );
  }
  const authkey = authkeyBytes(opts.authkey);
  let timeout: number | null | undefined;
  if (opts.timeout === null) timeout = null;
  else timeout = timeoutMs(opts.timeout, 'options.timeout');
  const signal = abortSignal(opts.signal);
  let maxConnections = DEFAULT_MAX_CONNECTIONS;
  if (opts.maxConnections !== undefined) {
    if (typeof opts.maxConnections !== 'number') {
      throw new TypeError(`options.maxConnections must be a number, not ${describe(opts.maxConnections)}`);
    }
    if (!Number.isInteger(opts.maxConnections) || opts.maxConnections < 1) {
      throw new RangeError(`options.maxConnections must be a positive integer, got ${opts.maxConnections}`);
    }
    maxConnections = opts.maxConnections;
  }
  if (opts.tls !== undefined && (opts.tls === null || typeof opts.tls !== 'object')) {
    throw new TypeError(`options.tls must be an object, not ${describe(opts.tls)}`);
  }
  const maxMessageSize = byteCount(opts.maxMessageSize, 'options.maxMessageSize');
  return { authkey, timeout, signal, family: opts.family, tls: opts.tls, maxConnections, maxMessageSize };
}


export function checkTypeid(typeid: unknown): string {
  if (typeof typeid !== 'string') throw new TypeError(`typeid must be a string, not ${describe(typeid)}`);
  if (typeid === '') throw new RangeError('typeid must not be empty');
  return typeid;
}

export function checkArgs(args: unknown, what = 'args'): readonly unknown[] {
  if (args === undefined || args === null) return [];
  if (!Array.isArray(args)) throw new TypeError(`${what} must be an array of positional arguments, not ${describe(args)}`);
  return args;
}

export function checkKwds(kwds: unknown, what = 'kwds'): Record<string, unknown> {
  if (kwds === undefined || kwds === null) return {};
  if (kwds instanceof Kwargs) return { ...kwds };
  if (typeof kwds !== 'object' || Array.isArray(kwds) || kwds instanceof Map) {
    throw new TypeError(`${what} must be a plain object of keyword arguments, not ${describe(kwds)}`);
  }
  return kwds as Record<string, unknown>;
}

export function checkCallOptions(options: unknown): CallOptions {
  if (options === undefined || options === null) return {};
  if (typeof options !== 'object') throw new TypeError(`options must be an object, not ${describe(options)}`);
  const opts = options as CallOptions;
  return { signal: abortSignal(opts.signal), timeout: timeoutMs(opts.timeout) };
}

export function checkCall(
  name: unknown,
  args: unknown,
  kwds: unknown,
  options: unknown,
): { name: string; args: readonly unknown[]; kwds: Record<string, unknown>; options: CallOptions } {
  if (typeof name !== 'string') throw new TypeError(`the method name must be a string, not ${describe(name)}`);
  if (name === '') throw new RangeError('the method name must not be empty');
  return { name, args: checkArgs(args), kwds: checkKwds(kwds), options: checkCallOptions(options) };
}

/** A count Python takes as an int (`maxsize`, a semaphore's `value`, `parties`). */
export function checkInt(value: unknown, what: string): number {
  if (typeof value !== 'number') throw new TypeError(`${what} must be a number, not ${describe(value)}`);
  if (!Number.isInteger(value)) throw new RangeError(`${what} must be an integer, got ${value}`);
  return value;
}

export function checkTypecode(typecode: unknown): string {
  if (typeof typecode !== 'string') throw new TypeError(`typecode must be a string such as 'i' or 'd', not ${describe(typecode)}`);
  return typecode;
}
