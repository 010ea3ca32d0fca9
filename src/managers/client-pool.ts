/**
 * Call connections of a manager client. A Python server serves each
 * connection with one thread, one call at a time, so a call that blocks there
 * (`get()` on an empty queue, `acquire()`) holds its connection until it
 * returns: every call in flight gets a connection of its own. `CallPool`
 * shares connections between unpinned proxies; a `PinnedLane` is the one
 * connection of one pinned proxy, whose calls go in order, as one Python
 * thread's would.
 */
import type { Connection } from '../connection/index.js';
import { untilAborted } from '../core/cancel.js';
import { ConnectionStateError } from '../core/errors.js';

/** Opens one call connection (authenticated, `accept_connection` answered). */
export type Opener = (signal: AbortSignal | undefined) => Promise<Connection>;

/** One exchange on a connection; a rejection means the connection can no longer be trusted. */
export type Exchange<T> = (conn: Connection) => Promise<T>;

export function clientClosedError(): ConnectionStateError {
  return new ConnectionStateError('ERR_CLOSED', 'the manager client is closed');
}

interface Waiter {
  /** A connection handed over, or `null`: a slot is free, open one. */
  resolve(conn: Connection | null): void;
  reject(err: unknown): void;
}

export class CallPool {
  readonly #open: Opener;
  readonly #max: number;
  readonly #idle: Connection[] = [];
  readonly #all = new Set<Connection>();
  readonly #waiters: Waiter[] = [];
  /** Connections open or being opened. */
  #count = 0;
  #closed = false;

  constructor(open: Opener, max: number) {
    this.#open = open;
    this.#max = max;
  }

  /** Runs `exchange` on a connection of its own; a failed exchange closes that connection. */
  run<T>(signal: AbortSignal | undefined, exchange: Exchange<T>): Promise<T> {
    // The common case, an idle connection at hand: taken at once, without a promise for the wait.
    if (!this.#closed && signal?.aborted !== true) {
      const idle = this.#idle.pop();
      if (idle !== undefined) return this.#runOn(idle, exchange);
    }
    return this.#acquire(signal).then((conn) => this.#runOn(conn, exchange));
  }

  #runOn<T>(conn: Connection, exchange: Exchange<T>): Promise<T> {
    let pending: Promise<T>;
    try {
      pending = exchange(conn);
    } catch (err) {
      this.#discard(conn);
      return Promise.reject(err);
    }
    // A `then` rather than an async function: one promise fewer per call.
    return pending.then(
      (result) => {
        this.#giveBack(conn);
        return result;
      },
      (err: unknown) => {
        this.#discard(conn);
        throw err;
      },
    );
  }

  /** Closes every connection; calls in flight reject, waiting calls too. */
  close(): void {
    if (this.#closed) return;
    this.#closed = true;
    const err = clientClosedError();
    for (const w of this.#waiters.splice(0)) w.reject(err);
    this.#idle.length = 0;
    for (const conn of this.#all) void conn.close();
    this.#all.clear();
  }

  async #acquire(signal: AbortSignal | undefined): Promise<Connection> {
    for (;;) {
      if (this.#closed) throw clientClosedError();
      signal?.throwIfAborted();
      const idle = this.#idle.pop();
      if (idle !== undefined) return idle;
      if (this.#count < this.#max) {
        this.#count++;
        let conn: Connection;
        try {
          conn = await this.#open(signal);
        } catch (err) {
          this.#count--;
          this.#wakeOne();
          throw err;
        }
        if (this.#closed) {
          void conn.close();
          throw clientClosedError();
        }
        this.#all.add(conn);
        return conn;
      }
      const handed = await this.#wait(signal);
      if (signal?.aborted) {
        // Aborted after being handed a connection or a slot: pass it on.
        if (handed !== null) this.#giveBack(handed);
        else this.#wakeOne();
        throw signal.reason;
      }
      if (handed !== null) return handed;
    }
  }

  #wait(signal: AbortSignal | undefined): Promise<Connection | null> {
    return new Promise<Connection | null>((resolve, reject) => {
      const onAbort = (): void => {
        const i = this.#waiters.indexOf(waiter);
        if (i >= 0) this.#waiters.splice(i, 1);
        reject(signal!.reason);
      };
      const waiter: Waiter = {
        resolve: (conn) => {
          signal?.removeEventListener('abort', onAbort);
          resolve(conn);
        },
        reject: (err) => {
          signal?.removeEventListener('abort', onAbort);
          reject(err);
        },
      };
      signal?.addEventListener('abort', onAbort, { once: true });
      this.#waiters.push(waiter);
    });
  }

  #giveBack(conn: Connection): void {
    if (this.#closed) {
      void conn.close();
      return;
    }
    const waiter = this.#waiters.shift();
    if (waiter !== undefined) waiter.resolve(conn);
    else this.#idle.push(conn);
  }

  #discard(conn: Connection): void {
    // Not close(): a request still queued (the call was aborted mid-send) must not reach the server.
    conn.destroy();
    if (!this.#all.delete(conn)) return;
    this.#count--;
    this.#wakeOne();
  }

  /** A slot came free: the first waiter opens a connection in it. */
  #wakeOne(): void {
    if (this.#count < this.#max) this.#waiters.shift()?.resolve(null);
  }
}

/**
 * The call connection of one pinned proxy. Calls run one at a time in call
 * order. A call aborted while it waits for its turn leaves the connection as
 * it is; one aborted on the wire closes it, and with it what the server
 * thread behind it owned (an RLock it acquired is then held by a thread that
 * nobody can reach); the next call opens a new connection.
 */
export class PinnedLane {
  readonly #open: Opener;
  #conn: Connection | null = null;
  #tail: Promise<void> = Promise.resolve();
  #closed = false;

  constructor(open: Opener) {
    this.#open = open;
  }

  run<T>(signal: AbortSignal | undefined, exchange: Exchange<T>): Promise<T> {
    const previous = this.#tail;
    let done!: () => void;
    this.#tail = new Promise<void>((resolve) => (done = resolve));
    const turn = async (): Promise<T> => {
      try {
        await untilAborted(previous, signal);
        if (this.#closed) throw clientClosedError();
        if (this.#conn === null) {
          const conn = await this.#open(signal);
          if (this.#closed) {
            void conn.close();
            throw clientClosedError();
          }
          this.#conn = conn;
        }
        const conn = this.#conn;
        try {
          return await exchange(conn);
        } catch (err) {
          conn.destroy();
          if (this.#conn === conn) this.#conn = null;
          throw err;
        }
      } finally {
        // The next call goes only after the one before this one, even when this one gave up early.
        void previous.then(done);
      }
    };
    return turn();
  }

  close(): void {
    this.#closed = true;
    if (this.#conn !== null) void this.#conn.close();
    this.#conn = null;
  }
}
