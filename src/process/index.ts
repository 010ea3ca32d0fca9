/** Child processes with a connection to their parent: Node modules, or any program (a Python worker). */
import { spawn as spawnChild, type ChildProcess, type SpawnOptions as NodeSpawnOptions } from 'node:child_process';
import { fstatSync } from 'node:fs';
import net from 'node:net';
import { Connection, type ConnectionOptions } from '../connection/index.js';
import { checkOptionNames, ConnectionSettings, describe, options as optionsOf } from '../core/validate.js';

/**
 * Options of {@link spawn}: Node's spawn options (without `stdio`), the
 * connection's, and `command`, the program to run instead of `node`.
 *
 * @example
 * ```ts
 * const { connection } = spawn('worker.js', [], { env: { ...process.env, LEVEL: '2' }, serializer: 'json' });
 * const python = spawn('worker.py', [], { command: 'python3', serializer: 'pickle' });
 * ```
 */
export type SpawnOptions = Omit<NodeSpawnOptions, 'stdio'> &
  ConnectionOptions & {
    /**
     * The program to run (looked up on `PATH`), e.g. `'python3'`. Left out:
     * this Node (`process.execPath`, with its `execArgv`), so the first
     * argument of `spawn()` is a module to run.
     */
    command?: string;
  };

/**
 * The single-argument form of {@link spawn}: the program and all its
 * arguments in one object, as `spawn({ command: 'python3', args: ['worker.py'] })`.
 *
 * @example
 * ```ts
 * const { process: child, connection } = spawn({ command: 'python3', args: ['-u', 'worker.py'], serializer: 'pickle' });
 * ```
 */
export type SpawnCommand = SpawnOptions & {
  /** The program to run, e.g. `'python3'`. */
  command: string;
  /** Its arguments. Default: none. */
  args?: readonly string[];
};

/**
 * What {@link spawn} returns.
 *
 * @example
 * ```ts
 * const { process: child, connection }: Spawned = spawn('worker.js');
 * ```
 */
export interface Spawned {
  /** The child (the sentinel for `wait()`). */
  process: ChildProcess;
  /** The parent's end of the connection to the child. */
  connection: Connection;
}

/** Node's own spawn options (all but `stdio`, which is spawn()'s: fd 3 carries the connection), then ours. */
const SPAWN_OPTION_NAMES = [
  'cwd',
  'env',
  'argv0',
  'detached',
  'uid',
  'gid',
  'serialization',
  'shell',
  'windowsVerbatimArguments',
  'windowsHide',
  'signal',
  'timeout',
  'killSignal',
  'serializer',
  'maxMessageSize',
  'maxDepth',
  'command',
] as const;

/** The file descriptor the connection to the parent lives on in the child. */
const PARENT_FD = 3;

/**
 * Starts a child process with a duplex socket pair on its fd 3 and returns
 * the process (the sentinel for `wait()`) and the parent's end of the
 * connection. If the child dies, a pending `recv` settles at once:
 * `EOFError` at a message boundary, `ProtocolError` `ERR_TRUNCATED` inside one.
 *
 * - `spawn(modulePath, args, options)` runs `node modulePath ...args` (this
 *   Node, with its `execArgv`); the child gets its end with `parentConnection()`.
 * - `spawn(path, args, { command })` runs `command path ...args`;
 *   `spawn({ command, args })` runs `command ...args`. Any program whose
 *   fd 3 is the connection: a Python worker takes it with the standard
 *   library alone, `multiprocessing.connection.Connection(3)` (POSIX; on
 *   Windows fd 3 is a named pipe, which that class cannot use).
 *
 * A program that cannot be started (`ENOENT`) closes the connection, so a
 * pending `recv` rejects, and the ChildProcess emits `'error'` as Node's does;
 * `spawn` listens for it so that it does not crash the parent.
 *
 * @example
 * ```ts
 * const { process: child, connection } = spawn(new URL('./worker.js', import.meta.url).pathname);
 * await connection.send({ task: 1 });
 * console.log(await connection.recv());
 *
 * // worker.py: from multiprocessing.connection import Connection; conn = Connection(3)
 * const py = spawn({ command: 'python3', args: ['worker.py'], serializer: 'pickle' });
 * await py.connection.send(['square', 7]);
 * ```
 */
export function spawn(modulePath: string, args?: readonly string[], options?: SpawnOptions): Spawned;
export function spawn(command: SpawnCommand): Spawned;
export function spawn(
  first: string | SpawnCommand,
  args: readonly string[] = [],
  options?: SpawnOptions,
): Spawned {
  let program: string;
  let argv: string[];
  let opts: SpawnOptions;
  if (typeof first === 'object' && first !== null) {
    if (typeof first.command !== 'string' || first.command === '') {
      throw new TypeError(`spawn({ command, args }) needs command, a program name or path; got ${describe(first.command)}`);
    }
    checkSpawnOptions(first, [...SPAWN_OPTION_NAMES, 'args'], 'spawn({ command, args }) options');
    const { args: commandArgs = [], ...rest } = first;
    checkArgs(commandArgs, 'args');
    program = first.command;
    argv = [...commandArgs];
    opts = rest;
  } else {
    if (typeof first !== 'string') throw new TypeError(`modulePath must be a string, not ${describe(first)}`);
    checkArgs(args, 'args');
    opts = optionsOf(options, 'options');
    checkSpawnOptions(opts, SPAWN_OPTION_NAMES, 'spawn() options');
    const command = opts.command;
    if (command !== undefined && (typeof command !== 'string' || command === '')) {
      throw new TypeError(`command must be a program name or path, not ${describe(command)}`);
    }
    program = command ?? process.execPath;
    // A Node child inherits this Node's flags (a loader, --enable-source-maps); another program would not understand them.
    argv = command === undefined ? [...process.execArgv, first, ...args] : [first, ...args];
  }
  const { serializer, maxMessageSize, maxDepth, command: _command, ...spawnOptions } = opts;
  // Every connection option is checked before the child starts: a bad one must not leave it orphaned.
  const settings = new ConnectionSettings({ serializer, maxMessageSize, maxDepth });
  const child = spawnChild(program, argv, {
    ...spawnOptions,
    // 'pipe' beyond stdio 2 is a socketpair on POSIX (a duplex named pipe on Windows).
    stdio: ['inherit', 'inherit', 'inherit', 'pipe'],
  });
  const socket = child.stdio[PARENT_FD] as net.Socket;
  // Node emits 'error' (ENOENT, EACCES) on the child when the program cannot start, and an
  // unhandled 'error' would end the parent. The connection is ended instead, so whoever waits
  // on it hears of it; code that listens for 'error' itself still gets the event.
  child.on('error', (err) => socket.destroy(err));
  return { process: child, connection: new Connection(socket, settings) };
}

function checkSpawnOptions(opts: object, known: readonly string[], what: string): void {
  if (Object.prototype.hasOwnProperty.call(opts, 'stdio')) {
    throw new TypeError(`${what}: stdio is spawn()'s own (fd 3 carries the connection); leave it out`);
  }
  checkOptionNames(opts, known, what);
}

function checkArgs(args: unknown, what: string): void {
  if (!Array.isArray(args) || args.some((a) => typeof a !== 'string')) {
    throw new TypeError(`${what} must be an array of strings`);
  }
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
