/** Child processes with a connection to their parent. */
import { spawn as spawnChild, type ChildProcess, type SpawnOptions as NodeSpawnOptions } from 'node:child_process';
import { fstatSync } from 'node:fs';
import net from 'node:net';
import { Connection, type ConnectionOptions } from '../connection/index.js';
import { resolveSerializer } from '../serializers/index.js';
import { byteCount, describe } from '../validate.js';

/**
 * Options of {@link spawn}: Node's spawn options (without `stdio`) and the connection's.
 *
 * @example
 * ```ts
 * const { connection } = spawn('worker.js', [], { env: { ...process.env, LEVEL: '2' }, serializer: 'json' });
 * ```
 */
export type SpawnOptions = Omit<NodeSpawnOptions, 'stdio'> & ConnectionOptions;

/** The file descriptor the connection to the parent lives on in the child. */
const PARENT_FD = 3;

/**
 * Starts `node modulePath ...args` with a duplex socket pair on fd 3 and
 * returns the process (the sentinel for `wait()`) and the parent's end of the
 * connection. The child gets its end with `parentConnection()`. If the child
 * dies, a pending `recv` settles at once: `EOFError` at a message boundary,
 * `ProtocolError` `ERR_TRUNCATED` inside one.
 *
 * @example
 * ```ts
 * const { process: child, connection } = spawn(new URL('./worker.js', import.meta.url).pathname);
 * await connection.send({ task: 1 });
 * console.log(await connection.recv());
 * ```
 */
export function spawn(
  modulePath: string,
  args: readonly string[] = [],
  options?: SpawnOptions,
): {
  /** The child (the sentinel for `wait()`). */
  process: ChildProcess;
  /** The parent's end of the connection to the child. */
  connection: Connection;
} {
  if (typeof modulePath !== 'string') throw new TypeError(`modulePath must be a string, not ${describe(modulePath)}`);
  if (!Array.isArray(args) || args.some((a) => typeof a !== 'string')) {
    throw new TypeError('args must be an array of strings');
  }
  const { serializer, maxMessageSize, ...spawnOptions } = options ?? {};
  resolveSerializer(serializer);
  byteCount(maxMessageSize, 'maxMessageSize');
  const child = spawnChild(process.execPath, [...process.execArgv, modulePath, ...args], {
    ...spawnOptions,
    // 'pipe' beyond stdio 2 is a socketpair on POSIX (a duplex named pipe on Windows).
    stdio: ['inherit', 'inherit', 'inherit', 'pipe'],
  });
  const socket = child.stdio[PARENT_FD] as net.Socket;
  return { process: child, connection: new Connection(socket, { serializer, maxMessageSize }) };
}

let parent: Connection | null = null;

/**
 * In a process started by {@link spawn}: the connection to the parent (the
 * same object on every call). It keeps the process alive only while a
 * receive is pending, so a child that has sent its results and returns exits.
 *
 * @example
 * ```ts
 * const conn = parentConnection();
 * for await (const task of conn) await conn.send(work(task));
 * ```
 */
export function parentConnection(options?: ConnectionOptions): Connection {
  if (parent !== null) return parent;
  let isSocket = false;
  try {
    isSocket = fstatSync(PARENT_FD).isSocket() || process.platform === 'win32';
  } catch {
    isSocket = false;
  }
  if (!isSocket) {
    throw new Error(`parentConnection() works in a process started by mpconn's spawn(): fd ${PARENT_FD} is not a socket here`);
  }
  const socket = new net.Socket({ fd: PARENT_FD, readable: true, writable: true, allowHalfOpen: true });
  parent = new Connection(socket, options, { readable: true, writable: true, keepAlive: 'while-waiting' });
  return parent;
}
