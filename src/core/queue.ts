import { armCancel } from './cancel.js';

/** A FIFO with O(1) push and shift (an array with a moving head). */
export class Queue<T> {
  #items: (T | undefined)[] = [];
  #head = 0;

  get length(): number {
    return this.#items.length - this.#head;
  }

  peek(): T | undefined {
    return this.#items[this.#head];
  }

  push(item: T): void {
    this.#items.push(item);
  }

  /** Puts `item` back in front (what was just shifted and turned out not to be taken). */
  unshift(item: T): void {
    if (this.#head > 0) this.#items[--this.#head] = item;
    else this.#items.unshift(item);
  }

  shift(): T | undefined {
    if (this.#head >= this.#items.length) return undefined;
    const item = this.#items[this.#head];
    this.#items[this.#head++] = undefined;
    if (this.#head >= 1024 && this.#head * 2 >= this.#items.length) {
      this.#items = this.#items.slice(this.#head);
      this.#head = 0;
    }
    return item;
  }

  /** Removes one item wherever it is; returns whether it was there. */
  remove(item: T): boolean {
    const i = this.#items.indexOf(item, this.#head);
    if (i < 0) return false;
    this.#items.splice(i, 1);
    return true;
  }

  /** Removes and returns every item. */
  drain(): T[] {
    const all = this.#items.slice(this.#head) as T[];
    this.#items = [];
    this.#head = 0;
    return all;
  }
}

/** A call waiting in a {@link WaitQueue}: how to settle it, and how to disarm its signal and timeout. */
export interface Waiter<T = unknown> {
  resolve(value: T): void;
  reject(reason: unknown): void;
  disarm: (() => void) | null;
}

/**
 * Calls waiting for what arrives (receives waiting for messages, accepts
 * waiting for connections), served oldest first. One that is aborted or
 * times out leaves the line before it rejects, so it takes nothing with it:
 * what arrives next goes to the next in line.
 */
export class WaitQueue<W extends Waiter<never>> {
  readonly #waiting = new Queue<W>();
  readonly #what: string;
  readonly #onCancel: ((waiter: W) => void) | undefined;

  /**
   * `what` names the call in a timeout's message; `onCancel` runs once a
   * waiter has left the line and rejected.
   */
  constructor(what: string, onCancel?: (waiter: W) => void) {
    this.#what = what;
    this.#onCancel = onCancel;
  }

  get length(): number {
    return this.#waiting.length;
  }

  /** The oldest waiter, still in line. */
  peek(): W | undefined {
    return this.#waiting.peek();
  }

  /** Puts `waiter` last in line; `signal` and `timeout` take it out and reject it with their reason. */
  add(waiter: W, signal: AbortSignal | undefined, timeout: number | undefined): void {
    this.#waiting.push(waiter);
    if (signal !== undefined || timeout !== undefined) {
      waiter.disarm = armCancel(signal, timeout, this.#what, (reason) => {
        if (!this.#waiting.remove(waiter)) return;
        waiter.reject(reason);
        this.#onCancel?.(waiter);
      });
    }
  }

  /** Takes the oldest waiter out of line and disarms it: the caller settles it. */
  shift(): W | undefined {
    const waiter = this.#waiting.shift();
    waiter?.disarm?.();
    return waiter;
  }

  /** Takes every waiter out of line, disarmed, oldest first: the caller settles them. */
  drain(): W[] {
    const all = this.#waiting.drain();
    for (const waiter of all) waiter.disarm?.();
    return all;
  }
}

/**
 * What `for await` over a Connection or a Listener yields: `next()` until it
 * rejects with an error `isEnd` says is the end (closed, end of stream).
 */
export async function* untilEnd<T>(next: () => Promise<T>, isEnd: (err: unknown) => boolean): AsyncGenerator<T, void> {
  for (;;) {
    let item: T;
    try {
      item = await next();
    } catch (err) {
      if (isEnd(err)) return;
      throw err;
    }
    yield item;
  }
}
