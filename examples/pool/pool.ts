// A process pool with the API of Python's multiprocessing.Pool, built only from
// mpconn's public API: spawn() starts workers with a connection each, wait()
// multiplexes their connections and their process sentinels, send()/recv()
// carry tasks and results.
//
// Python ships the function to run with each task (pickled by reference); here
// the worker script registers its functions by name (`runWorker({ square })`)
// and a task names one: `pool.map('square', xs)` is Python's
// `pool.map(square, xs)`. The worker may be any program that speaks the two
// messages below over its fd 3, e.g. a Python script (examples/python-worker).
import type { ChildProcess } from 'node:child_process';
import { once } from 'node:events';
import { availableParallelism } from 'node:os';
import { type Connection, EOFError, parentConnection, ProtocolError, spawn, type SpawnOptions, wait } from 'mpconn';

/** Parent to worker: call `fn` once per argument list, in order. One message is one chunk. */
export type TaskMessage = [id: number, fn: string, argsList: unknown[][]];
/** Worker to parent: the chunk's results in order, or the message of the error one call threw. */
export type ResultMessage = [id: number, ok: boolean, value: unknown];

/** Thrown for a task whose worker died while running it. */
export class WorkerDiedError extends Error {}

/** Thrown by a call to a pool after `close()` or `terminate()` (Python: `ValueError: Pool not running`). */
export class PoolNotRunningError extends Error {}

/** A task (or the initializer) as it failed in the worker: the worker's error message. */
export class TaskError extends Error {}

export interface PoolOptions extends SpawnOptions {
  /** Worker processes. Default: `os.availableParallelism()`, as Python's `os.cpu_count()`. */
  processes?: number;
  /** A function of the worker script that each worker calls once, before any task. */
  initializer?: string;
  /** Its arguments. */
  initargs?: unknown[];
  /** A worker exits after this many tasks (chunks) and a fresh one replaces it. Default: no limit. */
  maxTasksPerChild?: number;
}

interface Chunk {
  id: number;
  fn: string;
  argsList: unknown[][];
  resolve(values: unknown[]): void;
  reject(err: Error): void;
}

interface Worker {
  process: ChildProcess;
  connection: Connection;
  chunk: Chunk | null;
  /** The initializer is running: no task until it has succeeded. */
  initializing: boolean;
  done: number;
  retiring: boolean;
}

/**
 * `new Pool(script, { processes: 2 })`: worker processes running `script` (a
 * module that calls `runWorker({...})`, or with `command`, any program).
 * Results come back in input order; a worker that dies is replaced and the
 * tasks it was running fail with `WorkerDiedError`.
 */
export class Pool implements AsyncDisposable {
  readonly #script: string;
  readonly #spawnOptions: SpawnOptions;
  readonly #initializer: [string, unknown[]] | null;
  readonly #maxTasksPerChild: number;
  readonly #workers = new Set<Worker>();
  readonly #started: ChildProcess[] = [];
  readonly #queue: Chunk[] = [];
  #nextId = 0;
  #state: 'running' | 'closed' | 'terminated' = 'running';
  #broken: Error | null = null;
  #loop: Promise<void> | null = null;

  constructor(script: string, options: PoolOptions = {}) {
    const { processes = availableParallelism(), initializer, initargs = [], maxTasksPerChild, ...spawnOptions } = options;
    if (!Number.isInteger(processes) || processes < 1) throw new RangeError('processes must be at least 1');
    if (maxTasksPerChild !== undefined && (!Number.isInteger(maxTasksPerChild) || maxTasksPerChild < 1)) {
      throw new RangeError('maxTasksPerChild must be a positive integer');
    }
    this.#script = script;
    this.#spawnOptions = spawnOptions;
    this.#initializer = initializer === undefined ? null : [initializer, initargs];
    this.#maxTasksPerChild = maxTasksPerChild ?? Infinity;
    for (let i = 0; i < processes; i++) this.#startWorker();
  }

  /** Pids of the live workers (for tests and demos that kill one). */
  get pids(): number[] {
    return [...this.#workers].filter((w) => !w.retiring).map((w) => w.process.pid!);
  }

  /** `fn(...args)` in a worker (Python's `apply`, or `apply_async(...).get()`). */
  async apply<T = unknown>(fn: string, args: readonly unknown[] = []): Promise<T> {
    const [value] = await this.#submit(fn, [[...args]], 1)[0]!;
    return value as T;
  }

  /**
   * `fn(item)` for each item, results in input order; rejects with the first
   * error, as Python's `map` raises it. Many small tasks go in chunks
   * (default: Python's, about four chunks per worker), one message each.
   */
  async map<T = unknown>(fn: string, iterable: Iterable<unknown>, chunksize?: number): Promise<T[]> {
    return this.starmap<T>(fn, [...iterable].map((item) => [item]), chunksize);
  }

  /** `fn(...args)` for each argument list (Python's `starmap`). */
  async starmap<T = unknown>(fn: string, iterable: Iterable<readonly unknown[]>, chunksize?: number): Promise<T[]> {
    const argsList = [...iterable].map((args) => [...args]);
    const chunks = this.#submit(fn, argsList, chunksize ?? this.#defaultChunksize(argsList.length));
    return (await Promise.all(chunks)).flat() as T[];
  }

  /**
   * `fn(item)` for each item, as an async iterator over the results in input
   * order (Python's `imap`): the first results are there while later tasks
   * still run. A task's error is thrown where the iteration reaches it.
   * Every task is queued at once, as Python's does.
   */
  imap<T = unknown>(fn: string, iterable: Iterable<unknown>, chunksize = 1): AsyncIterableIterator<T> {
    const chunks = this.#submit(fn, [...iterable].map((item) => [item]), chunksize);
    for (const chunk of chunks) chunk.catch(() => {}); // rethrown where the iteration gets to it
    return (async function* () {
      for (const chunk of chunks) yield* (await chunk) as T[];
    })();
  }

  /** As {@link imap}, in the order the results come (Python's `imap_unordered`). */
  imapUnordered<T = unknown>(fn: string, iterable: Iterable<unknown>, chunksize = 1): AsyncIterableIterator<T> {
    const pending = new Map<number, Promise<{ i: number; values?: unknown[]; error?: unknown }>>();
    this.#submit(fn, [...iterable].map((item) => [item]), chunksize).forEach((chunk, i) => {
      pending.set(i, chunk.then((values) => ({ i, values }), (error: unknown) => ({ i, error })));
    });
    return (async function* () {
      while (pending.size > 0) {
        const { i, values, error } = await Promise.race(pending.values());
        pending.delete(i);
        if (values === undefined) throw error;
        yield* values as T[];
      }
    })();
  }

  /** Every item's outcome in input order, failures included (one task per item). */
  mapSettled<T = unknown>(fn: string, iterable: Iterable<unknown>): Promise<PromiseSettledResult<T>[]> {
    return Promise.allSettled(
      this.#submit(fn, [...iterable].map((item) => [item]), 1).map(async (chunk) => (await chunk)[0] as T),
    );
  }

  /** No more tasks: the workers finish the queued ones, then exit. `join()` waits for that. */
  close(): void {
    if (this.#state !== 'running') return;
    this.#state = 'closed';
    for (const w of this.#workers) if (w.chunk === null && this.#queue.length === 0) this.#retire(w);
    this.#loop ??= this.#dispatch();
  }

  /** Stops the workers now (SIGTERM); tasks not finished reject. `join()` waits for them to exit. */
  terminate(): void {
    if (this.#state === 'terminated') return;
    this.#state = 'terminated';
    const err = new PoolNotRunningError('the pool was terminated');
    for (const chunk of this.#queue.splice(0)) chunk.reject(err);
    for (const w of this.#workers) {
      w.chunk?.reject(err);
      w.chunk = null;
      this.#retire(w);
      w.process.kill('SIGTERM');
    }
    this.#loop ??= this.#dispatch();
  }

  /** Waits until every worker has exited; only after `close()` or `terminate()`, as in Python. */
  async join(): Promise<void> {
    if (this.#state === 'running') throw new PoolNotRunningError('join() needs close() or terminate() first');
    await this.#loop;
    await Promise.all(
      this.#started.map((child) => (child.exitCode === null && child.signalCode === null ? once(child, 'exit') : null)),
    );
  }

  /** `await using pool = new Pool(...)`: as Python's `with Pool() as pool`, terminates at the end of the block. */
  async [Symbol.asyncDispose](): Promise<void> {
    this.terminate();
    await this.join();
  }

  /** Python's default chunksize for map: the items over four chunks per worker, rounded up. */
  #defaultChunksize(items: number): number {
    return Math.max(1, Math.ceil(items / (this.#workers.size * 4)));
  }

  #submit(fn: string, argsList: unknown[][], chunksize: number): Promise<unknown[]>[] {
    if (this.#broken !== null) throw this.#broken;
    if (this.#state !== 'running') throw new PoolNotRunningError('the pool is closed');
    if (!Number.isInteger(chunksize) || chunksize < 1) throw new RangeError('chunksize must be a positive integer');
    const promises: Promise<unknown[]>[] = [];
    for (let start = 0; start < argsList.length; start += chunksize) {
      promises.push(
        new Promise<unknown[]>((resolve, reject) => {
          if (this.#broken !== null) return reject(this.#broken);
          const chunk: Chunk = { id: this.#nextId++, fn, argsList: argsList.slice(start, start + chunksize), resolve, reject };
          const idle = [...this.#workers].find((w) => w.chunk === null && !w.retiring && !w.initializing);
          if (idle !== undefined) this.#assign(idle, chunk);
          else this.#queue.push(chunk);
        }),
      );
    }
    this.#loop ??= this.#dispatch();
    return promises;
  }

  #startWorker(): void {
    const { process, connection } = spawn(this.#script, [], this.#spawnOptions);
    this.#started.push(process);
    const worker: Worker = { process, connection, chunk: null, initializing: false, done: 0, retiring: false };
    this.#workers.add(worker);
    if (this.#initializer !== null) {
      const [fn, args] = this.#initializer;
      worker.initializing = true;
      this.#assign(worker, {
        id: this.#nextId++,
        fn,
        argsList: [args],
        resolve: () => {
          worker.initializing = false;
        },
        reject: (err) => this.#fail(new TaskError(`the initializer ${fn}() failed: ${err.message}`)),
      });
      return;
    }
    this.#next(worker);
  }

  #assign(worker: Worker, chunk: Chunk): void {
    worker.chunk = chunk;
    // A send to a dead worker fails; its death is handled when wait() reports it.
    worker.connection.send([chunk.id, chunk.fn, chunk.argsList] satisfies TaskMessage).catch(() => {});
  }

  /** The worker is free: its next chunk, or retirement when the pool is closing. */
  #next(worker: Worker): void {
    const chunk = this.#queue.shift();
    if (chunk !== undefined) this.#assign(worker, chunk);
    else if (this.#state !== 'running') this.#retire(worker);
  }

  #retire(worker: Worker): void {
    if (worker.retiring) return;
    worker.retiring = true;
    void worker.connection.close(); // the worker sees EOF and exits
  }

  /** The initializer failed: Python would start workers that fail again forever; this pool stops instead. */
  #fail(err: Error): void {
    this.#broken = err;
    for (const chunk of this.#queue.splice(0)) chunk.reject(err);
    this.terminate();
  }

  async #dispatch(): Promise<void> {
    while (this.#workers.size > 0) {
      const workers = [...this.#workers];
      // A retiring worker's connection is closed (so always "ready"): watch only its process.
      const connections = workers.filter((w) => !w.retiring).map((w) => w.connection);
      const ready = await wait([...connections, ...workers.map((w) => w.process)]);
      for (const object of ready) {
        const worker = workers.find((w) => w.connection === object || w.process === object)!;
        if (!this.#workers.has(worker)) continue;
        if (object === worker.process) {
          this.#bury(worker);
          continue;
        }
        if (worker.retiring) continue; // retired since wait() returned
        let message: ResultMessage;
        try {
          message = await worker.connection.recv<ResultMessage>();
        } catch (err) {
          if (err instanceof EOFError || err instanceof ProtocolError) {
            this.#bury(worker);
            continue;
          }
          throw err;
        }
        const [, ok, value] = message;
        const chunk = worker.chunk!;
        const wasInit = worker.initializing;
        worker.chunk = null;
        if (ok) chunk.resolve(value as unknown[]);
        else chunk.reject(new TaskError(String(value)));
        if (this.#state === 'terminated' || worker.retiring) continue;
        if (!wasInit && ++worker.done >= this.#maxTasksPerChild) {
          // Python's maxtasksperchild: a fresh process after so many tasks (frees what a leaky task kept).
          this.#retire(worker);
          if (this.#state === 'running' || this.#queue.length > 0) this.#startWorker();
          continue;
        }
        this.#next(worker);
      }
    }
    this.#loop = null;
  }

  /** A worker is gone: fail its chunk, and replace it unless the pool is closing. */
  #bury(worker: Worker): void {
    this.#workers.delete(worker);
    void worker.connection.close();
    if (worker.chunk !== null) {
      const { pid, signalCode, exitCode } = worker.process;
      // The connection usually reports the death before the process sentinel does.
      const how = signalCode !== null ? ` (${signalCode})` : exitCode !== null ? ` (exit code ${exitCode})` : '';
      worker.chunk.reject(new WorkerDiedError(`worker ${pid} died${how} while running task ${worker.chunk.id}`));
      worker.chunk = null;
    }
    if (!worker.retiring && (this.#state === 'running' || this.#queue.length > 0) && this.#broken === null) this.#startWorker();
  }
}

/**
 * The worker side: runs each task's calls of `functions[name]` until the pool
 * closes the connection. A function may return a promise.
 */
export async function runWorker(functions: Record<string, (...args: never[]) => unknown>): Promise<void> {
  const conn = parentConnection();
  for await (const message of conn) {
    const [id, name, argsList] = message as TaskMessage;
    const fn = functions[name];
    try {
      if (fn === undefined) throw new Error(`the worker has no function ${JSON.stringify(name)}`);
      const results: unknown[] = [];
      for (const args of argsList) results.push(await fn(...(args as never[])));
      await conn.send([id, true, results] satisfies ResultMessage);
    } catch (err) {
      await conn.send([id, false, err instanceof Error ? err.message : String(err)] satisfies ResultMessage);
    }
  }
  await conn.close();
}
