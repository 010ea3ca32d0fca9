/**
 * `Queue` and `JoinableQueue`: Python's `queue.Queue`, which `SyncManager`
 * serves under both typeids. Clients reach it through `AutoProxy`, which
 * forwards the arguments as the Python program wrote them, so every method
 * takes Python's positional and keyword forms (`get(True, 1.0)`,
 * `get(timeout=1.0)`).
 */
import { Queue } from '../../core/queue.js';
import { raise } from './errors.js';
import { bind, toIndex, toSeconds, truthy } from './values.js';
import { caller, WaitQueue } from './wait.js';
import { objectAddress } from './address.js';

const TIMED_OUT = Symbol('timed out');
const SHUT_DOWN = Symbol('shut down');

/**
 * A FIFO queue shared with Python clients (Python's `queue.Queue`). Blocking
 * calls return promises and block only their caller; timeouts are in
 * seconds. `get()` raises `queue.Empty` and `put()` `queue.Full` as Python
 * records (`PyObject`), as the Python proxy expects.
 *
 * @example
 * ```ts
 * const queue = new SharedQueue();
 * server.register('get_queue', () => queue);   // Python: m.get_queue().put('job')
 * const job = await queue.get();                // waits for a Python producer
 * ```
 */
export class SharedQueue {
  /** At most this many items (0 or less: no limit), as `queue.Queue(maxsize)`. */
  readonly maxsize: number;
  readonly #items = new Queue<unknown>();
  readonly #getters = new WaitQueue<undefined, unknown>();
  readonly #putters = new WaitQueue<unknown, boolean | typeof SHUT_DOWN>();
  readonly #joiners = new WaitQueue<undefined, boolean>();
  #unfinished = 0;
  #shutDown = false;

  /** Python's `Queue(maxsize=0)`. */
  constructor(...args: unknown[]) {
    const [maxsize] = bind('Queue', args, [{ name: 'maxsize', default: 0 }]);
    this.maxsize = toIndex(maxsize, (t) => `'<' not supported between instances of 'int' and '${t}'`);
  }

  /** The number of items (`qsize()`). */
  qsize(): number {
    return this.#items.length;
  }

  empty(): boolean {
    return this.#items.length === 0;
  }

  full(): boolean {
    return this.maxsize > 0 && this.#items.length >= this.maxsize;
  }

  /** `put(item, block=True, timeout=None)`; raises `queue.Full` when it cannot. */
  async put(...args: unknown[]): Promise<void> {
    const [item, block, timeout] = bind('put', args, [
      { name: 'item' },
      { name: 'block', default: true },
      { name: 'timeout', default: null },
    ]);
    if (this.#shutDown) throw raise.ShutDown();
    const seconds = checkTimeout(block, timeout, 'put');
    if (!this.full()) {
      this.#deliver(item);
      return;
    }
    if (!truthy(block)) throw raise.Full();
    const { signal } = caller();
    // A putter that is let in gets its item delivered by the get() that made room, before it wakes.
    const admitted = await this.#putters.wait(item, seconds, signal, false);
    if (admitted === SHUT_DOWN) throw raise.ShutDown();
    if (!admitted) throw raise.Full();
  }

  /** `get(block=True, timeout=None)`; raises `queue.Empty` when it cannot. */
  async get(...args: unknown[]): Promise<unknown> {
    const [block, timeout] = bind('get', args, [
      { name: 'block', default: true },
      { name: 'timeout', default: null },
    ]);
    if (this.#shutDown && this.#items.length === 0) throw raise.ShutDown();
    const seconds = checkTimeout(block, timeout, 'get');
    if (this.#items.length > 0) return this.#take();
    if (!truthy(block)) throw raise.Empty();
    const { signal } = caller();
    const item = await this.#getters.wait(undefined, seconds, signal, TIMED_OUT);
    if (item === TIMED_OUT) throw raise.Empty();
    if (item === SHUT_DOWN) throw raise.ShutDown();
    return item;
  }

  /**
   * `shutdown(immediate=False)` (CPython 3.13): from now on `put()` raises
   * `queue.ShutDown`, and `get()` too once the queue is empty; `immediate`
   * drops the items left (counting them done for `join()`). Blocked callers
   * wake up with `queue.ShutDown`.
   */
  shutdown(...args: unknown[]): void {
    const [immediate] = bind('shutdown', args, [{ name: 'immediate', default: false }]);
    this.#shutDown = true;
    if (truthy(immediate)) {
      for (let n = this.#items.drain().length; n > 0 && this.#unfinished > 0; n--) this.#unfinished--;
      if (this.#unfinished === 0) this.#joiners.wakeAll(true);
    }
    // Waiting getters mean an empty queue, and waiting putters can no longer put.
    this.#getters.wakeAll(SHUT_DOWN);
    this.#putters.wakeAll(SHUT_DOWN);
  }

  /** `put_nowait(item)`: `put(item, False)`. */
  put_nowait(...args: unknown[]): Promise<void> {
    const [item] = bind('put_nowait', args, [{ name: 'item' }]);
    return this.put(item, false);
  }

  /** `get_nowait()`: `get(False)`. */
  get_nowait(...args: unknown[]): Promise<unknown> {
    bind('get_nowait', args, []);
    return this.get(false);
  }

  /** Marks one item as processed; raises ValueError when more than were put. */
  task_done(...args: unknown[]): void {
    bind('task_done', args, []);
    if (this.#unfinished <= 0) throw raise.ValueError('task_done() called too many times');
    this.#unfinished--;
    if (this.#unfinished === 0) this.#joiners.wakeAll(true);
  }

  /** Waits until every item put has been marked `task_done()`. */
  async join(...args: unknown[]): Promise<void> {
    bind('join', args, []);
    if (this.#unfinished === 0) return;
    await this.#joiners.wait(undefined, null, caller().signal, false);
  }

  /** Python's `str()`/`repr()` of a `queue.Queue`. */
  __repr__(): string {
    return `<queue.Queue object at ${objectAddress(this)}>`;
  }

  toString(): string {
    return this.__repr__();
  }

  #deliver(item: unknown): void {
    this.#unfinished++;
    // Waiting getters mean the queue is empty: the first one takes the item at once.
    if (!this.#getters.wakeOne(item)) this.#items.push(item);
  }

  #take(): unknown {
    const item = this.#items.shift();
    const putter = this.#putters.shift();
    if (putter !== undefined) {
      this.#unfinished++;
      this.#items.push(putter.data);
      putter.wake(true);
    }
    return item;
  }
}

/**
 * Python's `JoinableQueue` typeid: the same `queue.Queue` (`task_done()`,
 * `join()`), under its own name.
 *
 * @example
 * ```ts
 * const jobs = new SharedJoinableQueue();
 * await jobs.put('job');
 * await jobs.join(); // until a worker calls task_done()
 * ```
 */
export class SharedJoinableQueue extends SharedQueue {}

/** The timeout of a blocking put/get in seconds (`null`: forever), checked as `queue.Queue` checks it. */
function checkTimeout(block: unknown, timeout: unknown, fname: string): number | null {
  if (!truthy(block)) return null;
  const seconds = toSeconds(timeout, fname);
  if (seconds !== null && seconds < 0) throw raise.ValueError("'timeout' must be a non-negative number");
  return seconds;
}
