import { once } from 'node:events';
import { mkdtemp, rm } from 'node:fs/promises';
import net from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Connection, type ConnectionOptions } from '../connection/index.js';
import { checkOptionNames, ConnectionSettings, describe, options as optionsOf } from '../core/validate.js';
import { arbitraryAddress } from './address.js';

/**
 * Two connected ends of a real OS socket, in this process: Python's `Pipe()`.
 * With `duplex = false` the first end can only receive and the second can
 * only send, as in Python.
 *
 * Node has no `socketpair()`, so the pair is made by listening on a Unix socket
 * in a fresh private (0700) directory, connecting once, and removing both (a
 * named pipe on Windows).
 *
 * @example
 * ```ts
 * const [a, b] = await Pipe();
 * await a.send('ping');
 * console.log(await b.recv()); // 'ping'
 * ```
 */
export async function Pipe(duplex = true, options?: ConnectionOptions): Promise<[Connection, Connection]> {
  if (typeof duplex !== 'boolean') throw new TypeError(`duplex must be a boolean, not ${describe(duplex)}`);
  const opts = optionsOf(options, 'options');
  checkOptionNames(opts, ['serializer', 'maxMessageSize', 'maxDepth'], 'Pipe() options');
  const settings = new ConnectionSettings(opts);
  const [first, second] = await socketPair();
  return [
    new Connection(first, settings, { readable: true, writable: duplex }),
    new Connection(second, settings, { readable: duplex, writable: true }),
  ];
}

async function socketPair(): Promise<[net.Socket, net.Socket]> {
  const windows = process.platform === 'win32';
  const dir = windows ? null : await mkdtemp(join(tmpdir(), 'mpconn-pipe-'));
  const path = dir === null ? (arbitraryAddress('AF_PIPE') as string) : join(dir, 's');
  const server = net.createServer({ allowHalfOpen: true });
  try {
    server.listen(path);
    await once(server, 'listening');
    const accepted = once(server, 'connection') as Promise<[net.Socket]>;
    const client = net.connect({ path, allowHalfOpen: true });
    const [[serverSide]] = await Promise.all([accepted, once(client, 'connect')]);
    return [serverSide, client];
  } finally {
    server.close();
    if (dir !== null) await rm(dir, { recursive: true, force: true });
  }
}
