/**
 * Blocking, the way a served call blocks: a promise that settles when the
 * object hands it what it waits for, when its timeout (in seconds, as Python
 * passes it) runs out, or rejects when its caller's connection closes.
 * Handing over is synchronous and an aborted waiter leaves the queue
 * synchronously, so an item or a lock never goes to a caller that has gone.
 */
import { currentCall, LOCAL_OWNER } from '../context.js';
import { Queue } from '../../core/queue.js';

/** setTimeout's longest delay; longer timeouts re-arm. */
const MAX_DELAY_MS = 2 ** 31 - 1;

/**
 * Who is calling: the client connection being served, or the Node program
 * itself. Read it before the method's first `await` (the server runs these
 * classes' methods with the caller known for their synchronous part only).
 */
export function caller(): { owner: object; signal: AbortSignal | undefined } {
  const call = currentCall();
  return call === undefined ? { owner: LOCAL_OWNER, signal: undefined } : { owner: call.owner, signal: call.signal };
}

/** One blocked call. */
export interface Waiter<D, T> {
  /** What the waiter brings (the item a `put` would add, the owner of an `acquire`). */
  readonly data: D;
  /** Settles the wait with `value`. */
  wake(value: T): void;
}

interface Entry<D, T> extends Waiter<D, T> {
  done: boolean;
}

function abortReason(signal: AbortSignal): unknown {
  return signal.reason ?? new Error('the caller went away');
}

/** Waiters in arrival order. */
export class WaitQueue<D = undefined, T = boolean> {
  readonly #entries = new Queue<Entry<D, T>>();

  get length(): number {
    return this.#entries.length;
  }

  /**
   * Waits until woken; resolves `onTimeout` once `seconds` have passed (`null`
   * waits forever); rejects when `signal` aborts, having taken nothing.
   */
  wait(data: D, seconds: number | null, signal: AbortSignal | undefined, onTimeout: T): Promise<T> {
    if (signal?.aborted === true) return Promise.reject(abortReason(signal));
    return new Promise<T>((resolve, reject) => {
      let timer: NodeJS.Timeout | undefined;
      const cleanup = (): void => {
        if (timer !== undefined) clearTimeout(timer);
        signal?.removeEventListener('abort', onAbort);
      };
      const entry: Entry<D, T> = {
        data,
        done: false,
        wake: (value: T) => {
          if (entry.done) return;
          entry.done = true;
          cleanup();
          resolve(value);
        },
      };
      const leave = (): void => {
        entry.done = true;
        cleanup();
        this.#entries.remove(entry);
      };
      function onAbort(): void {
        if (entry.done) return;
        leave();
        reject(abortReason(signal!));
      }
      if (seconds !== null) {
        const deadline = Date.now() + Math.max(0, seconds) * 1000;
        const arm = (): void => {
          const left = deadline - Date.now();
          if (left > MAX_DELAY_MS) {
            timer = setTimeout(arm, MAX_DELAY_MS);
            return;
          }
          timer = setTimeout(() => {
            if (entry.done) return;
            leave();
            resolve(onTimeout);
          }, Math.max(0, left));
        };
        arm();
      }
      signal?.addEventListener('abort', onAbort, { once: true });
      this.#entries.push(entry);
    });
  }

  /** Takes the longest-waiting waiter out of the queue (the caller then wakes it). */
  shift(): Waiter<D, T> | undefined {
    return this.#entries.shift();
  }

  /** Wakes the longest-waiting waiter with `value`; returns whether there was one. */
  wakeOne(value: T): boolean {
    const entry = this.#entries.shift();
    if (entry === undefined) return false;
    entry.wake(value);
    return true;
  }

  /** Wakes every waiter with `value`. */
  wakeAll(value: T): number {
    const all = this.#entries.drain();
    for (const entry of all) entry.wake(value);
    return all.length;
  }
}
