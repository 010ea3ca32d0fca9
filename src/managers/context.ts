/**
 * Who is calling a method of a served object. A `ManagerServer` runs each
 * method call inside `runInCall`; the objects it serves (locks, queues) read
 * `currentCall()` to learn which client connection owns a lock and when the
 * caller has gone (its signal aborts), so a blocked `get()` whose caller left
 * takes no item. Outside any call (the Node program using an object itself)
 * there is no context: the caller is the local program and never goes away.
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

const storage = new AsyncLocalStorage<CallContext>();

/** The owner that stands for the Node program itself, outside any served call. */
export const LOCAL_OWNER: object = Object.freeze({ name: 'local' });

/**
 * The call a `ManagerServer` is serving, or `undefined` outside one: which
 * client connection called (`owner`, as a Python server thread owns a lock)
 * and a `signal` that aborts when that connection closes.
 *
 * @example
 * ```ts
 * server.register('get_owner_lock', () => ({
 *   whoami: () => (currentCall()?.owner === undefined ? 'local' : 'a client connection'),
 * }));
 * ```
 */
export function currentCall(): CallContext | undefined {
  return storage.getStore();
}

/** Runs `fn` as (part of) the call `context`. */
export function runInCall<T>(context: CallContext, fn: () => T): T {
  return storage.run(context, fn);
}
