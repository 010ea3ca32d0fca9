/**
 * The `threading` primitives `SyncManager` serves: `Lock`, `RLock`,
 * `Semaphore`, `BoundedSemaphore`, `Condition`, `Event`, `Barrier`, with the
 * arguments Python's `AcquirerProxy`, `ConditionProxy`, `EventProxy` and
 * `BarrierProxy` send (`acquire(blocking, timeout)`, `wait(timeout)`,
 * `notify(n)` — or `notify()` with no `n` from CPython 3.6 — and
 * `__getattribute__('parties')`).
 *
 * Ownership (RLock, Condition) belongs to the caller: the client connection
 * serving the call (one Python thread's), or the Node program itself. When a
 * connection closes, its blocked calls give up without taking anything, and
 * the RLocks it still owns are released: a Python server thread keeps an
 * RLock past its client's death, which leaves every other client blocked for
 * good; a Node server frees it so that the others can go on. A `Lock` has no
 * owner and a `Semaphore` no holders, so what a departed client took of them
 * stays taken, as in Python.
 */
import { currentCall, LOCAL_OWNER, runInCall } from '../context.js';
import { raise } from './errors.js';
import { objectAddress } from './address.js';
import { asInt, bind, toSeconds, truthy, typeName } from './values.js';
import { caller, WaitQueue } from './wait.js';

/** `acquire(blocking=True, timeout=-1)` of `_thread.lock` / `_thread.RLock`: the timeout in seconds, `null` for forever. */
function lockTimeout(args: readonly unknown[]): { blocking: boolean; seconds: number | null } {
  const [blocking, timeout] = bind('acquire', args, [
    { name: 'blocking', default: true },
    { name: 'timeout', default: -1 },
  ]);
  const block = truthy(blocking);
  // AcquirerProxy leaves the timeout out when it is None; a raw call may still send None: forever.
  const t = timeout === null ? -1 : toSeconds(timeout, 'acquire')!;
  if (!block && t !== -1) throw raise.ValueError("can't specify a timeout for a non-blocking call");
  if (t < 0 && t !== -1) throw raise.ValueError('timeout value must be a non-negative number');
  return { blocking: block, seconds: t === -1 ? null : t };
}

/**
 * A lock with no owner (Python's `threading.Lock`): whoever holds it, any
 * caller may release it.
 *
 * @example
 * ```ts
 * const lock = new SharedLock();
 * if (await lock.acquire(true, 1.5)) {
 *   try { ... } finally { lock.release(); }
 * }
 * ```
 */
export class SharedLock {
  #locked = false;
  readonly #waiters = new WaitQueue<undefined, boolean>();

  /** `acquire(blocking=True, timeout=-1)`: whether the lock was taken. */
  async acquire(...args: unknown[]): Promise<boolean> {
    const { blocking, seconds } = lockTimeout(args);
    if (!this.#locked) {
      this.#locked = true;
      return true;
    }
    if (!blocking) return false;
    return this.#waiters.wait(undefined, seconds, caller().signal, false);
  }

  /** Releases the lock (handing it to the longest waiter); RuntimeError when it is not locked. */
  release(...args: unknown[]): void {
    bind('release', args, []);
    if (!this.#locked) throw raise.RuntimeError('release unlocked lock');
    if (!this.#waiters.wakeOne(true)) this.#locked = false;
  }

  locked(): boolean {
    return this.#locked;
  }

  __repr__(): string {
    return `<${this.#locked ? 'locked' : 'unlocked'} _thread.lock object at ${objectAddress(this)}>`;
  }

  toString(): string {
    return this.__repr__();
  }

  /** Condition support: a plain lock is "owned" by anyone while it is locked, as Python's `Condition._is_owned` finds. */
  _is_owned(): boolean {
    return this.#locked;
  }

  _release_save(): unknown {
    this.release();
    return null;
  }

  _acquire_restore(_saved: unknown): Promise<boolean> {
    return this.acquire();
  }
}

/**
 * A reentrant lock (Python's `threading.RLock`): owned by the caller that
 * acquired it (a client connection, as a Python server thread, or the Node
 * program), which may acquire it again and must release it as many times.
 *
 * @example
 * ```ts
 * const rlock = new SharedRLock();
 * await rlock.acquire();
 * await rlock.acquire(); // the Node program owns it already
 * rlock.release();
 * rlock.release();
 * ```
 */
export class SharedRLock {
  #owner: object | null = null;
  #count = 0;
  readonly #waiters = new WaitQueue<{ owner: object; count: number; signal: AbortSignal | undefined }, boolean>();
  /** Releases the lock when its owner's connection closes; removed when the owner releases it. */
  #watch: { signal: AbortSignal; listener: () => void } | undefined;

  /** `acquire(blocking=True, timeout=-1)`: whether the lock was taken. */
  async acquire(...args: unknown[]): Promise<boolean> {
    const { blocking, seconds } = lockTimeout(args);
    return this.#acquire(blocking, seconds, 1);
  }

  /** Releases one level; RuntimeError when the caller does not own the lock. */
  release(...args: unknown[]): void {
    bind('release', args, []);
    if (this.#owner !== caller().owner) throw raise.RuntimeError('cannot release un-acquired lock');
    if (--this.#count === 0) this.#handOver();
  }

  __repr__(): string {
    const state = this.#owner === null ? 'unlocked' : 'locked';
    return `<${state} _thread.RLock object owner=${this.#owner === null ? 0 : 1} count=${this.#count} at ${objectAddress(this)}>`;
  }

  toString(): string {
    return this.__repr__();
  }

  _is_owned(): boolean {
    return this.#owner === caller().owner;
  }

  /** Releases every level the caller holds (Condition.wait); returns how many to restore. */
  _release_save(): unknown {
    if (!this._is_owned()) throw raise.RuntimeError('cannot release un-acquired lock');
    const count = this.#count;
    this.#handOver();
    return count;
  }

  _acquire_restore(saved: unknown): Promise<boolean> {
    return this.#acquire(true, null, typeof saved === 'number' ? saved : 1);
  }

  async #acquire(blocking: boolean, seconds: number | null, levels: number): Promise<boolean> {
    const { owner, signal } = caller();
    if (this.#owner === owner) {
      this.#count += levels;
      return true;
    }
    if (this.#owner === null) {
      this.#take(owner, levels, signal);
      return true;
    }
    if (!blocking) return false;
    return this.#waiters.wait({ owner, count: levels, signal }, seconds, signal, false);
  }

  #take(owner: object, count: number, signal: AbortSignal | undefined): void {
    this.#owner = owner;
    this.#count = count;
    // A client that goes away while it owns the lock must not block every other client for good.
    if (signal !== undefined && owner !== LOCAL_OWNER) {
      const listener = (): void => {
        if (this.#owner === owner) this.#handOver();
      };
      signal.addEventListener('abort', listener, { once: true });
      this.#watch = { signal, listener };
    }
  }

  #handOver(): void {
    if (this.#watch !== undefined) {
      this.#watch.signal.removeEventListener('abort', this.#watch.listener);
      this.#watch = undefined;
    }
    this.#owner = null;
    this.#count = 0;
    const next = this.#waiters.shift();
    if (next === undefined) return;
    this.#take(next.data.owner, next.data.count, next.data.signal);
    next.wake(true);
  }
}

/** `Semaphore.acquire(blocking=True, timeout=None)` as threading.py checks it. */
function semaphoreTimeout(args: readonly unknown[]): { blocking: boolean; seconds: number | null } {
  const [blocking, timeout] = bind('acquire', args, [
    { name: 'blocking', default: true },
    { name: 'timeout', default: null },
  ]);
  const block = truthy(blocking);
  const seconds = toSeconds(timeout, 'acquire');
  if (!block && seconds !== null) throw raise.ValueError("can't specify timeout for non-blocking acquire");
  return { blocking: block, seconds };
}

function counter(v: unknown, fname: string): number {
  const n = asInt(v);
  if (n === null) throw raise.TypeError(`${fname}: '${typeName(v)}' object cannot be interpreted as an integer`);
  return Number(n);
}

/**
 * A counting semaphore (Python's `threading.Semaphore(value=1)`).
 *
 * @example
 * ```ts
 * const slots = new SharedSemaphore(3);
 * await slots.acquire();
 * slots.release();
 * ```
 */
export class SharedSemaphore {
  protected value: number;
  readonly #waiters = new WaitQueue<undefined, boolean>();

  constructor(...args: unknown[]) {
    const [value] = bind('Semaphore', args, [{ name: 'value', default: 1 }]);
    this.value = counter(value, 'Semaphore()');
    if (this.value < 0) throw raise.ValueError('semaphore initial value must be >= 0');
  }

  /** `acquire(blocking=True, timeout=None)`: whether a unit was taken. */
  async acquire(...args: unknown[]): Promise<boolean> {
    const { blocking, seconds } = semaphoreTimeout(args);
    if (this.value > 0) {
      this.value--;
      return true;
    }
    if (!blocking || (seconds !== null && seconds <= 0)) return false;
    return this.#waiters.wait(undefined, seconds, caller().signal, false);
  }

  /** `release(n=1)` (the `n` of CPython 3.9+): gives back `n` units, waking as many waiters. */
  release(...args: unknown[]): void {
    const [n] = bind('release', args, [{ name: 'n', default: 1 }]);
    const count = counter(n, 'release()');
    if (count < 1) throw raise.ValueError('n must be one or more');
    this.check(count);
    for (let i = 0; i < count; i++) {
      if (!this.#waiters.wakeOne(true)) this.value++;
    }
  }

  /** Hook for BoundedSemaphore. */
  protected check(_n: number): void {}

  __repr__(): string {
    return `<threading.${this.constructor === SharedBoundedSemaphore ? 'BoundedSemaphore' : 'Semaphore'} at ${objectAddress(this)}: value=${this.value}>`;
  }

  toString(): string {
    return this.__repr__();
  }
}

/**
 * A semaphore that refuses to be released above its initial value (Python's
 * `threading.BoundedSemaphore`): ValueError "Semaphore released too many times".
 *
 * @example
 * ```ts
 * const one = new SharedBoundedSemaphore(1);
 * one.release(); // throws the ValueError record: it was never acquired
 * ```
 */
export class SharedBoundedSemaphore extends SharedSemaphore {
  readonly #initial: number;

  constructor(...args: unknown[]) {
    super(...args);
    this.#initial = this.value;
  }

  protected override check(n: number): void {
    if (this.value + n > this.#initial) throw raise.ValueError('Semaphore released too many times');
  }
}

type ConditionLock = SharedLock | SharedRLock;

/**
 * A condition variable (Python's `threading.Condition`), over a new
 * `SharedRLock` or the `SharedLock`/`SharedRLock` given.
 *
 * @example
 * ```ts
 * const ready = new SharedCondition();
 * await ready.acquire();
 * const notified = await ready.wait(5); // releases the lock while it waits
 * ready.release();
 * ```
 */
export class SharedCondition {
  readonly #lock: ConditionLock;
  readonly #waiters = new WaitQueue<undefined, boolean>();

  constructor(...args: unknown[]) {
    const [lock] = bind('Condition', args, [{ name: 'lock', default: null }]);
    if (lock === null) this.#lock = new SharedRLock();
    else if (lock instanceof SharedLock || lock instanceof SharedRLock) this.#lock = lock;
    else {
      throw raise.TypeError(
        `Condition(lock) takes a Lock or RLock of this process, not a '${typeName(lock)}' (pass none to get an RLock)`,
      );
    }
  }

  acquire(...args: unknown[]): Promise<boolean> {
    return this.#lock.acquire(...args);
  }

  release(...args: unknown[]): void {
    this.#lock.release(...args);
  }

  /** `wait(timeout=None)`: releases the lock, waits for a notify (or the timeout), takes the lock back; whether notified. */
  async wait(...args: unknown[]): Promise<boolean> {
    const [timeout] = bind('wait', args, [{ name: 'timeout', default: null }]);
    const seconds = toSeconds(timeout, 'wait');
    if (!this.#lock._is_owned()) throw raise.RuntimeError('cannot wait on un-acquired lock');
    const { signal } = caller();
    // The caller is known only until the first await: the re-acquire below runs as it again.
    const call = currentCall();
    const saved = this.#lock._release_save();
    let notified: boolean;
    try {
      // threading.Condition waits only for a positive timeout; otherwise it just looks (and was not notified).
      notified = seconds !== null && seconds <= 0 ? false : await this.#waiters.wait(undefined, seconds, signal, false);
    } finally {
      // A caller that has gone does not take the lock back (the re-acquire sees its aborted signal).
      if (signal?.aborted !== true) {
        const restore = (): Promise<boolean> => this.#lock._acquire_restore(saved);
        await (call === undefined ? restore() : runInCall(call, restore));
      }
    }
    return notified;
  }

  /** `notify(n=1)`: wakes up to `n` waiters (CPython 3.6's proxy sends no `n`). */
  notify(...args: unknown[]): void {
    const [n] = bind('notify', args, [{ name: 'n', default: 1 }]);
    if (!this.#lock._is_owned()) throw raise.RuntimeError('cannot notify on un-acquired lock');
    const count = counter(n, 'notify()');
    for (let i = 0; i < count && this.#waiters.wakeOne(true); i++);
  }

  notify_all(...args: unknown[]): void {
    bind('notify_all', args, []);
    if (!this.#lock._is_owned()) throw raise.RuntimeError('cannot notify on un-acquired lock');
    this.#waiters.wakeAll(true);
  }

  __repr__(): string {
    return `<Condition(${this.#lock.__repr__()}, ${this.#waiters.length})>`;
  }

  toString(): string {
    return this.__repr__();
  }
}

/**
 * A flag that callers wait for (Python's `threading.Event`).
 *
 * @example
 * ```ts
 * const started = new SharedEvent();
 * setTimeout(() => started.set(), 100);
 * await started.wait(); // true
 * ```
 */
export class SharedEvent {
  #flag = false;
  readonly #waiters = new WaitQueue<undefined, boolean>();

  is_set(...args: unknown[]): boolean {
    bind('is_set', args, []);
    return this.#flag;
  }

  set(...args: unknown[]): void {
    bind('set', args, []);
    this.#flag = true;
    this.#waiters.wakeAll(true);
  }

  clear(...args: unknown[]): void {
    bind('clear', args, []);
    this.#flag = false;
  }

  /** `wait(timeout=None)`: the flag once it is set, or `false` when the timeout runs out first. */
  async wait(...args: unknown[]): Promise<boolean> {
    const [timeout] = bind('wait', args, [{ name: 'timeout', default: null }]);
    const seconds = toSeconds(timeout, 'wait');
    if (this.#flag) return true;
    if (seconds !== null && seconds <= 0) return false;
    return this.#waiters.wait(undefined, seconds, caller().signal, false);
  }

  __repr__(): string {
    return `<threading.Event at ${objectAddress(this)}: ${this.#flag ? 'set' : 'unset'}>`;
  }

  toString(): string {
    return this.__repr__();
  }
}

const BROKEN = -1;

/**
 * A barrier for `parties` callers (Python's `threading.Barrier(parties,
 * action=None, timeout=None)`; an `action` cannot run here). A waiter whose
 * caller goes away leaves the barrier, which keeps waiting for a full set.
 *
 * @example
 * ```ts
 * const barrier = new SharedBarrier(2);
 * const [a, b] = await Promise.all([barrier.wait(), barrier.wait()]); // 0 and 1
 * ```
 */
export class SharedBarrier {
  readonly parties: number;
  readonly #timeout: number | null;
  #broken = false;
  readonly #waiters = new WaitQueue<undefined, number>();

  constructor(...args: unknown[]) {
    const [parties, action, timeout] = bind('Barrier', args, [
      { name: 'parties' },
      { name: 'action', default: null },
      { name: 'timeout', default: null },
    ]);
    this.parties = counter(parties, 'Barrier()');
    if (this.parties <= 0) throw raise.ValueError('parties must be > 0');
    if (action !== null) throw raise.TypeError('Barrier(action=...) cannot run a Python callable in this server');
    this.#timeout = toSeconds(timeout, 'Barrier');
  }

  /** `wait(timeout=None)`: this caller's index (0 … parties-1) once all have arrived; BrokenBarrierError otherwise. */
  async wait(...args: unknown[]): Promise<number> {
    const [timeout] = bind('wait', args, [{ name: 'timeout', default: null }]);
    const seconds = timeout === null ? this.#timeout : toSeconds(timeout, 'wait');
    if (this.#broken) throw raise.BrokenBarrierError();
    const index = this.#waiters.length;
    if (index + 1 === this.parties) {
      // The last to arrive releases the others, each with the index it arrived with.
      let i = 0;
      for (let w = this.#waiters.shift(); w !== undefined; w = this.#waiters.shift()) w.wake(i++);
      return index;
    }
    if (seconds !== null && seconds <= 0) {
      this.#break();
      throw raise.BrokenBarrierError();
    }
    const result = await this.#waiters.wait(undefined, seconds, caller().signal, BROKEN - 1);
    if (result === BROKEN - 1) {
      this.#break(); // a timeout breaks the barrier for everyone, as in Python
      throw raise.BrokenBarrierError();
    }
    if (result === BROKEN) throw raise.BrokenBarrierError();
    return result;
  }

  /** Breaks the barrier: current and future waiters get BrokenBarrierError until `reset()`. */
  abort(...args: unknown[]): void {
    bind('abort', args, []);
    this.#break();
  }

  /** Back to the empty state; callers waiting now get BrokenBarrierError. */
  reset(...args: unknown[]): void {
    bind('reset', args, []);
    this.#waiters.wakeAll(BROKEN);
    this.#broken = false;
  }

  get n_waiting(): number {
    return this.#waiters.length;
  }

  get broken(): boolean {
    return this.#broken;
  }

  /** BarrierProxy reads `parties`, `n_waiting` and `broken` through `__getattribute__`. */
  __getattribute__(...args: unknown[]): unknown {
    const [name] = bind('__getattribute__', args, [{ name: 'name' }]);
    if (name === 'parties') return this.parties;
    if (name === 'n_waiting') return this.n_waiting;
    if (name === 'broken') return this.#broken;
    if (typeof name !== 'string') {
      throw raise.TypeError(`attribute name must be string, not '${typeName(name)}'`);
    }
    throw raise.AttributeError(`'Barrier' object has no attribute '${name}'`);
  }

  __repr__(): string {
    if (this.#broken) return `<threading.Barrier at ${objectAddress(this)}: broken>`;
    return `<threading.Barrier at ${objectAddress(this)}: waiters=${this.n_waiting}/${this.parties}>`;
  }

  toString(): string {
    return this.__repr__();
  }

  #break(): void {
    this.#broken = true;
    this.#waiters.wakeAll(BROKEN);
  }
}
