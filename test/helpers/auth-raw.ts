/**
 * A peer made of a bare `node:net` socket that speaks CPython's framing by
 * hand (4-byte big-endian signed length, then the payload), so tests can
 * send exactly the bytes a broken or hostile peer would.
 */
import { createHmac } from 'node:crypto';
import { once } from 'node:events';
import net from 'node:net';
import { frame, header } from './wire.js';

export const CHALLENGE = Buffer.from('#CHALLENGE#');
export const WELCOME = Buffer.from('#WELCOME#');
export const FAILURE = Buffer.from('#FAILURE#');

/** The digests CPython 3.12+ may name in a challenge, and the length of each one's MAC. */
export const DIGESTS = ['md5', 'sha256', 'sha384', 'sha3_256', 'sha3_384'] as const;
export const MAC_LENGTH: Record<string, number> = { md5: 16, sha256: 32, sha384: 48, sha3_256: 32, sha3_384: 48 };

/** Python digest name → Node hash name. */
const NODE_HASH: Record<string, string> = {
  md5: 'md5',
  sha256: 'sha256',
  sha384: 'sha384',
  sha3_256: 'sha3-256',
  sha3_384: 'sha3-384',
};

export function hmac(digest: string, key: Uint8Array | string, message: Uint8Array): Buffer {
  return createHmac(NODE_HASH[digest] ?? digest, typeof key === 'string' ? Buffer.from(key) : key)
    .update(message)
    .digest();
}

/** The modern reply to `challenge` (the bytes after `#CHALLENGE#`), as CPython 3.12+ computes it. */
export function modernReply(key: Uint8Array | string, challenge: Buffer): Buffer {
  const close = challenge.indexOf('}');
  const digest = challenge.toString('latin1', 1, close);
  return Buffer.concat([Buffer.from(`{${digest}}`), hmac(digest, key, challenge)]);
}

export interface FloodingListener {
  port: number;
  /** Bytes of the flood written so far (after the header and `first`). */
  written(): number;
  close(): void;
}

/**
 * A fake listener on 127.0.0.1 that announces a handshake message of `length`
 * bytes (the header says at most 0x7fffffff), writes `first`, then streams
 * the rest 1 MiB at a time, as fast as the client reads, until it is all out
 * or the client hung up.
 */
export async function floodingListener(length: number, first: Uint8Array = Buffer.alloc(0)): Promise<FloodingListener> {
  let written = 0;
  const server = net.createServer((socket) => {
    socket.on('error', () => {});
    const chunk = Buffer.alloc(1 << 20, 0x41);
    const pump = (): void => {
      while (!socket.destroyed && written < length) {
        written += chunk.length;
        if (!socket.write(chunk)) return void socket.once('drain', pump);
      }
    };
    socket.write(Buffer.concat([header(Math.min(length, 0x7fffffff)), first]));
    pump();
  });
  server.listen(0, '127.0.0.1');
  await once(server, 'listening');
  return {
    port: (server.address() as net.AddressInfo).port,
    written: () => written,
    close: () => server.close(),
  };
}

export class RawPeer {
  readonly socket: net.Socket;
  #buffered = Buffer.alloc(0);
  #wake: (() => void) | null = null;
  #ended = false;
  /** Resolves when the socket is fully closed (by either side). */
  readonly closed: Promise<void>;
  /** Resolves when the other side ended or the socket closed. */
  readonly ended: Promise<void>;

  private constructor(socket: net.Socket) {
    this.socket = socket;
    socket.on('data', (chunk: Buffer) => {
      this.#buffered = Buffer.concat([this.#buffered, chunk]);
      this.#wake?.();
    });
    const end = (): void => {
      this.#ended = true;
      this.#wake?.();
    };
    socket.on('end', end);
    socket.on('close', end);
    socket.on('error', () => {}); // a reset is an expected outcome here
    this.closed = new Promise((resolve) => socket.once('close', () => resolve()));
    this.ended = new Promise((resolve) => {
      socket.once('end', () => resolve());
      socket.once('close', () => resolve());
    });
  }

  static async connect(address: unknown): Promise<RawPeer> {
    const socket =
      typeof address === 'string'
        ? net.connect({ path: address, allowHalfOpen: true })
        : net.connect({ host: (address as [string, number])[0], port: (address as [string, number])[1], allowHalfOpen: true });
    const peer = new RawPeer(socket);
    await once(socket, 'connect');
    return peer;
  }

  /** Wraps a socket a test server accepted. */
  static accepted(socket: net.Socket): RawPeer {
    return new RawPeer(socket);
  }

  async #need(n: number): Promise<boolean> {
    while (this.#buffered.length < n) {
      if (this.#ended) return false;
      await new Promise<void>((resolve) => (this.#wake = resolve));
      this.#wake = null;
    }
    return true;
  }

  /** Bytes received and not read yet. */
  get bufferedLength(): number {
    return this.#buffered.length;
  }

  /** The next frame's payload, or null at a clean end of stream. */
  async readFrame(): Promise<Buffer | null> {
    if (!(await this.#need(4))) {
      if (this.#buffered.length === 0) return null;
      throw new Error(`stream ended inside a header (${this.#buffered.length} bytes)`);
    }
    const length = this.#buffered.readInt32BE(0);
    if (length < 0) throw new Error(`unexpected length ${length}`);
    if (!(await this.#need(4 + length))) throw new Error('stream ended inside a frame');
    const payload = this.#buffered.subarray(4, 4 + length);
    this.#buffered = this.#buffered.subarray(4 + length);
    return Buffer.from(payload);
  }

  /** Reads every frame up to the end of the stream. */
  async readAll(): Promise<Buffer[]> {
    const frames: Buffer[] = [];
    for (;;) {
      const f = await this.readFrame();
      if (f === null) return frames;
      frames.push(f);
    }
  }

  /** The payload of the next frame, which must start with `#CHALLENGE#`; returns what follows it. */
  async readChallenge(): Promise<Buffer> {
    const f = await this.readFrame();
    if (f === null || !f.subarray(0, CHALLENGE.length).equals(CHALLENGE)) {
      throw new Error(`expected a challenge, got ${f === null ? 'end of stream' : JSON.stringify(f.toString('latin1'))}`);
    }
    return f.subarray(CHALLENGE.length);
  }

  sendFrame(payload: Uint8Array | string): void {
    this.socket.write(frame(payload));
  }

  sendRaw(bytes: Uint8Array): void {
    this.socket.write(bytes);
  }

  destroy(): void {
    this.socket.destroy();
  }
}

/**
 * A TCP server on 127.0.0.1 whose every connection is handed to `handle` as
 * a RawPeer: a fake Listener for testing the Client side.
 */
export async function rawServer(
  handle: (peer: RawPeer) => void | Promise<void>,
  options: { path?: string } = {},
): Promise<{
  address: [string, number] | string;
  close(): Promise<void>;
}> {
  const sockets = new Set<net.Socket>();
  const server = net.createServer({ allowHalfOpen: true }, (socket) => {
    sockets.add(socket);
    socket.on('close', () => sockets.delete(socket));
    void Promise.resolve(handle(RawPeer.accepted(socket))).catch(() => socket.destroy());
  });
  if (options.path !== undefined) server.listen(options.path);
  else server.listen(0, '127.0.0.1');
  await once(server, 'listening');
  const bound = server.address();
  return {
    address: typeof bound === 'string' ? bound : ['127.0.0.1', (bound as net.AddressInfo).port],
    async close() {
      for (const s of sockets) s.destroy();
      await new Promise<void>((resolve) => server.close(() => resolve()));
    },
  };
}
