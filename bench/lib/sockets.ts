import { once } from 'node:events';
import net from 'node:net';
import type { BenchAddress, Transport } from './role.js';

/** A net.Server whose connections are handed out one at a time to whoever asks. */
export class ConnectionQueue {
  readonly server: net.Server;
  readonly #ready: net.Socket[] = [];
  readonly #waiting: ((s: net.Socket) => void)[] = [];

  constructor(transport: Transport) {
    this.server = net.createServer((socket) => {
      if (transport === 'tcp') socket.setNoDelay(true);
      const w = this.#waiting.shift();
      if (w !== undefined) w(socket);
      else this.#ready.push(socket);
    });
  }

  async listen(transport: Transport, address: BenchAddress | null): Promise<BenchAddress> {
    if (transport === 'unix') this.server.listen({ path: address as string, backlog: 511 });
    else this.server.listen({ host: '127.0.0.1', port: 0, backlog: 511 });
    await once(this.server, 'listening');
    const a = this.server.address();
    return typeof a === 'string' ? a : ['127.0.0.1', a!.port];
  }

  next(): Promise<net.Socket> {
    const s = this.#ready.shift();
    if (s !== undefined) return Promise.resolve(s);
    return new Promise((resolve) => this.#waiting.push(resolve));
  }

  close(): Promise<void> {
    return new Promise((resolve) => this.server.close(() => resolve()));
  }
}

export async function connectRaw(transport: Transport, address: BenchAddress): Promise<net.Socket> {
  const socket =
    transport === 'unix' ? net.connect({ path: address as string }) : net.connect({ host: (address as [string, number])[0], port: (address as [string, number])[1] });
  if (transport === 'tcp') socket.setNoDelay(true);
  await once(socket, 'connect');
  return socket;
}

/** Ends the socket and resolves once it is closed. */
export function endSocket(socket: net.Socket): Promise<void> {
  if (socket.closed) return Promise.resolve();
  return new Promise((resolve) => {
    socket.once('close', () => resolve());
    socket.end();
  });
}
