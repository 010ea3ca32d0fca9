import net from 'node:net';

/** What a socket's bytes are handed to: each chunk is the reader's to keep. */
export type ChunkSink = (chunk: Buffer) => void;

/** The buffer the socket reads into: the size of the reads Node makes by default. */
const READ_BUFFER = 64 * 1024;
/**
 * A read at least this long is handed over as a view of the read buffer
 * (which is then replaced); a shorter one is copied out of it. A kept view
 * then holds at most twice its bytes, and a small read costs a copy from
 * Node's pool instead of a 64 KiB buffer of its own.
 */
const HAND_OVER = 32 * 1024;

/**
 * The reads of a socket a Client makes, through `net.connect`'s `onread`:
 * the socket reads into one buffer of ours and calls back with the byte
 * count, with no `'data'` event, readable-stream bookkeeping or buffer
 * made per read. The handshake and then the Connection take the chunks in
 * turn ({@link attach}). The frame decoder and the inbox keep views of what
 * they are given, so every chunk handed on is the reader's own: a copy of a
 * short read, or the read buffer itself after a long one.
 *
 * Flow control is the socket's: `pause()` stops reading, `resume()` starts
 * it again; `'end'`, `'error'` and `'close'` are emitted as usual.
 */
export class SocketReads {
  #socket!: net.Socket;
  #buffer = Buffer.allocUnsafe(READ_BUFFER);
  #sink: ChunkSink | null = null;
  /** What arrived while no one was attached (or was put back), in order. */
  #held: Buffer[] = [];
  /** Reading was stopped because no one was attached. */
  #stalled = false;

  /** A socket connecting with `options`, and its reads. */
  static connect(options: net.NetConnectOpts): [net.Socket, SocketReads] {
    // Made first: the socket asks for its buffer inside `net.connect`.
    const reads = new SocketReads();
    const socket = net.connect({
      ...options,
      onread: {
        // Asked for once the socket has a handle, and after every read: the buffer for the next read.
        buffer: () => reads.#buffer,
        callback: (nread: number, buf: Uint8Array) => reads.#read(nread, buf as Buffer),
      },
    } as net.NetConnectOpts);
    reads.#socket = socket;
    return [socket, reads];
  }

  private constructor() {}

  /**
   * From now on the chunks go to `sink`, first those that arrived while no
   * one was attached (or were put back with {@link unshift}).
   */
  attach(sink: ChunkSink): void {
    this.#sink = sink;
    if (this.#stalled) {
      this.#stalled = false;
      this.#socket.resume();
    }
    while (this.#held.length > 0 && this.#sink === sink) sink(this.#held.shift()!);
  }

  /** Chunks that arrive from now on are held for the next {@link attach}. */
  detach(): void {
    this.#sink = null;
  }

  /** `chunk` (the reader's, as given) is handed again, first, to the next {@link attach}. */
  unshift(chunk: Buffer): void {
    this.#held.unshift(chunk);
  }

  #read(nread: number, buf: Buffer): boolean {
    let chunk: Buffer;
    if (nread >= HAND_OVER) {
      chunk = buf.subarray(0, nread);
      this.#buffer = Buffer.allocUnsafe(READ_BUFFER);
    } else {
      chunk = Buffer.allocUnsafe(nread);
      buf.copy(chunk, 0, 0, nread);
    }
    const sink = this.#sink;
    if (sink === null) {
      this.#held.push(chunk);
      this.#stalled = true;
      return false;
    }
    sink(chunk);
    return true;
  }
}
