/**
 * How `wait()` and `poll()` learn that an object is ready without reaching
 * into its internals: Connection and Listener implement this under a symbol.
 */
export const readiness = Symbol('mpconn.readiness');

export interface Readiness {
  /** Whether the object is ready now (the `wait()` readiness rules in the README). */
  ready(): boolean;
  /** Calls `listener` whenever the object may have become ready; returns the unsubscribe function. */
  subscribe(listener: () => void): () => void;
  /** How many listeners are subscribed now (lets tests prove `wait()` leaks none). */
  subscribers(): number;
}

export interface HasReadiness {
  [readiness](): Readiness;
}

/** A set of listeners notified together; cheap to add to and remove from. */
export class Notifier {
  #listeners = new Set<() => void>();
  readonly #onChange: (() => void) | undefined;

  /** `onChange` runs after every subscribe and unsubscribe. */
  constructor(onChange?: () => void) {
    this.#onChange = onChange;
  }

  subscribe(listener: () => void): () => void {
    this.#listeners.add(listener);
    this.#onChange?.();
    return () => {
      if (this.#listeners.delete(listener)) this.#onChange?.();
    };
  }

  get size(): number {
    return this.#listeners.size;
  }

  /** What `[readiness]()` returns for an object that is ready when `ready()` says so and notifies through this set. */
  readiness(ready: () => boolean): Readiness {
    return {
      ready,
      subscribe: (listener) => this.subscribe(listener),
      subscribers: () => this.size,
    };
  }

  notify(): void {
    if (this.#listeners.size === 0) return;
    for (const listener of [...this.#listeners]) listener();
  }
}
