/**
 * Who is calling a method of a served object. A `ManagerServer` runs each
 * method call inside `runInCall`; the objects it serves (locks, queues) read
 * `currentCall()` to learn which client connection owns a lock and when the
 * caller has gone (its signal aborts), so a blocked `get()` whose caller left
 * takes no item. Outside any call (the Node program using an object itself)
 * there is no context: the caller is the local program and never goes away.
 *
 * Two ways to be "inside a call", because they cost very differently: the
 * synchronous part of a method sees the call through a plain variable, set
 * for as long as the method runs; what the method does after an `await` sees
 * it through an `AsyncLocalStorage`, which on Node 20 installs promise hooks
 * that tax every promise of the process from the first call on. The
 * SyncManager classes read the caller only in their synchronous part (they
 * capture it there when they need it later), so the server runs their calls
 * with the variable alone (`runInCall`); every other object gets both
 * (`runInTrackedCall`), and may read `currentCall()` anywhere in its method —
 * a subclass of a SyncManager class too, whose overrides may await before
 * calling the base method.
 */
import { AsyncLocalStorage } from 'node:async_hooks';

/**
 * One method call as the served object sees it.
 *
 * @example
 * ```ts
 * class Inbox {
 *   #items: unknown[] = [];
 *   async take(): Promise<unknown> {
 *     const call = currentCall(); // undefined when the Node program calls it itself
 *     while (this.#items.length === 0) {
 *       if (call?.signal.aborted) throw new Error('the caller has gone');
 *       await new Promise((resolve) => setTimeout(resolve, 10));
 *     }
 *     return this.#items.shift();
 *   }
 * }
 * ```
 */
export interface CallContext {
  /** Stands for the client connection making the call (Python: the server thread serving it). */
  readonly owner: object;
  /** Aborts when that connection closes. */
  readonly signal: AbortSignal;
}

/** The call whose method is running synchronously right now. */
let current: CallContext | undefined;

/** The call a tracked method's continuations belong to (created on first use: it turns the promise hooks on). */
let storage: AsyncLocalStorage<CallContext> | undefined;

/** The owner that stands for the Node program itself, outside any served call. */
export const LOCAL_OWNER: object = Object.freeze({ name: 'local' });

/**
 * The call a `ManagerServer` is serving, or `undefined` outside one: which
 * client connection called (`owner`, as a Python server thread owns a lock)
 * and a `signal` that aborts when that connection closes. Valid anywhere in
 * the method of an object you registered, before and after its `await`s.
 *
 * @example
 * ```ts
 * server.register('get_owner_lock', () => ({
 *   whoami: () => (currentCall()?.owner === undefined ? 'local' : 'a client connection'),
 * }));
 * ```
 */
export function currentCall(): CallContext | undefined {
  return current ?? storage?.getStore();
}

/** The arguments of a closure run as a call (never changed: `Reflect.apply` only reads them). */
const NO_ARGS: unknown[] = [];

/**
 * Runs `fn` as the call `context`, for `fn`'s synchronous part only: after
 * an `await`, `currentCall()` no longer names it. For the SyncManager
 * classes, which read the caller before they first await.
 */
export function runInCall<T>(context: CallContext, fn: () => T): T {
  return applyInCall(context, fn, undefined, NO_ARGS) as T;
}

/**
 * `fn.apply(self, args)` as the call `context`, as `runInCall` runs a
 * closure: a manager server calls every method this way, without making one.
 */
export function applyInCall(context: CallContext, fn: (...args: unknown[]) => unknown, self: unknown, args: unknown[]): unknown {
  const outer = current;
  current = context;
  try {
    return Reflect.apply(fn, self, args);
  } finally {
    current = outer;
  }
}

/** `applyInCall`, and what the method goes on to do after an `await` too (as `runInTrackedCall`). */
export function applyInTrackedCall(context: CallContext, fn: (...args: unknown[]) => unknown, self: unknown, args: unknown[]): unknown {
  storage ??= new AsyncLocalStorage<CallContext>();
  return storage.run(context, applyInCall, context, fn, self, args);
}

/** Runs `fn` as the call `context`, and what it goes on to do after an `await` too. */
export function runInTrackedCall<T>(context: CallContext, fn: () => T): T {
  return applyInTrackedCall(context, fn, undefined, NO_ARGS) as T;
}
