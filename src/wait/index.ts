/** `wait()`: block until any of several connections, listeners, processes or sockets is ready. */
import { ChildProcess } from 'node:child_process';
import net from 'node:net';
import { Worker } from 'node:worker_threads';
import type { Connection } from '../connection/index.js';
import type { Listener } from '../listener/index.js';
import { readiness, type HasReadiness, type Readiness } from '../core/readiness.js';
import { describe, timeoutMs } from '../core/validate.js';

/**
 * What `wait()` can wait on.
 *
 * @example
 * ```ts
 * const objects: Waitable[] = [conn, listener, child];
 * for (const ready of await wait(objects, 1_000)) console.log('ready:', ready);
 * ```
 */
export type Waitable = Connection | Listener | ChildProcess | Worker | net.Socket;

/**
 * Waits until at least one object is ready and resolves with the ready ones,
 * in input order (`[]` on timeout). Ready means: a Connection has a complete
 * message buffered or its peer closed (so the next `recv` does not wait); a
 * Listener has a connection to accept; a ChildProcess or Worker has exited; a
 * Socket has data to read or has ended. `timeout` is in milliseconds:
 * `undefined` (or `null`) waits forever, a negative value counts as 0.
 *
 * The result has the type of the input's items: `wait(connections)` resolves
 * to `Connection[]`, with no cast.
 *
 * Each call subscribes to the objects and unsubscribes before it resolves, so
 * calling it in a loop leaks nothing.
 *
 * @example
 * ```ts
 * while (readers.length > 0) {
 *   for (const r of await wait(readers)) {
 *     try { console.log(await r.recv()); }   // readers: Connection[], so r is a Connection
 *     catch (err) { if (err instanceof EOFError) readers.splice(readers.indexOf(r), 1); else throw err; }
 *   }
 * }
 * ```
 */
export function wait<T extends Waitable>(objects: Iterable<T>, timeout?: number | null): Promise<T[]> {
  let list: T[];
  let probes: Readiness[];
  let ms: number | undefined;
  try {
    if (objects === null || typeof objects !== 'object' || !(Symbol.iterator in objects)) {
      throw new TypeError(`objects must be an array of waitable objects, not ${describe(objects)}`);
    }
    list = [...objects];
    probes = list.map(probe);
    ms = timeoutMs(timeout);
  } catch (err) {
    return Promise.reject(err);
  }
  const readyNow = (): T[] => list.filter((_, i) => probes[i]!.ready());
  const now = readyNow();
  if (now.length > 0 || ms === 0) return Promise.resolve(now);
  return new Promise<T[]>((resolve) => {
    let collecting = false;
    const finish = (result: T[]): void => {
      for (const unsubscribe of unsubscribes) unsubscribe();
      if (timer !== undefined) clearTimeout(timer);
      resolve(result);
    };
    // Several objects often become ready in the same tick: collect them together.
    const collect = (): void => {
      collecting = false;
      const ready = readyNow();
      if (ready.length > 0) finish(ready);
    };
    const onChange = (): void => {
      if (collecting) return;
      collecting = true;
      queueMicrotask(collect);
    };
    const unsubscribes = probes.map((p) => p.subscribe(onChange));
    const timer = ms === undefined || ms === Infinity ? undefined : setTimeout(() => finish(readyNow()), ms);
  });
}

function probe(object: Waitable): Readiness {
  if (object !== null && typeof object === 'object' && readiness in object) {
    return (object as HasReadiness)[readiness]();
  }
  if (object instanceof ChildProcess) {
    return eventProbe(object, ['exit'], () => object.exitCode !== null || object.signalCode !== null);
  }
  if (object instanceof Worker) {
    return eventProbe(object, ['exit'], () => object.threadId === -1);
  }
  if (object instanceof net.Socket) {
    return eventProbe(
      object,
      ['readable', 'end', 'close'],
      () => object.readableLength > 0 || object.readableEnded || object.destroyed,
    );
  }
  throw new TypeError(
    `wait() takes Connection, Listener, ChildProcess, Worker or net.Socket objects, not ${describe(object)}`,
  );
}

function eventProbe(
  emitter: NodeJS.EventEmitter,
  events: string[],
  ready: () => boolean,
): Readiness {
  return {
    ready,
    subscribe(listener) {
      for (const event of events) emitter.on(event, listener);
      return () => {
        for (const event of events) emitter.off(event, listener);
      };
    },
    subscribers: () => emitter.listenerCount(events[0]!),
  };
}
