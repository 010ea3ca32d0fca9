// A process pool built only from mpconn's public API: spawn() starts workers
// with a connection each, wait() multiplexes their connections and their
// process sentinels, send()/recv() carry tasks and results.
import type { ChildProcess } from 'node:child_process';
import { type Connection, EOFError, parentConnection, ProtocolError, spawn, wait } from 'mpconn';

type TaskMessage = [id: number, input: unknown];
type ResultMessage = [id: number, ok: boolean, value: unknown];

interface Task {
  id: number;
  input: unknown;
  resolve(value: unknown): void;
  reject(err: Error): void;
}

interface Worker {
  process: ChildProcess;
  connection: Connection;
  task: Task | null;
  retiring: boolean;
}

/** Thrown for a task whose worker died while running it. */
export class WorkerDiedError extends Error {}

/**
 * `new Pool(workerScript, n)`: n worker processes running `workerScript`
 * (a module that calls `runWorker(fn)`). Results come back in input order; a
 * worker that dies is replaced and its task fails with `WorkerDiedError`.
 */
export class Pool {
  readonly #script: string;
  readonly #workers = new Set<Worker>();
  readonly #queue: Task[] = [];
  #nextId = 0;
  #closing = false;
  #loop: Promise<void> | null = null;

  constructor(script: string, processes = 2) {
    this.#script = script;
    for (let i = 0; i < processes; i++) this.#startWorker();
  }

  /** Pids of the live workers (for tests and demos that kill one). */
  get pids(): number[] {
    return [...this.#workers].map((w) => w.process.pid!);
  }

  /** Runs one task. */
  apply<T = unknown>(input: unknown): Promise<T> {
    if (this.#closing) return Promise.reject(new Error('the pool is closed'));
    return new Promise<T>((resolve, reject) => {
      const task: Task = { id: this.#nextId++, input, resolve: resolve as (v: unknown) => void, reject };
      const idle = [...this.#workers].find((w) => w.task === null && !w.retiring);
      if (idle !== undefined) this.#assign(idle, task);
      else this.#queue.push(task);
      this.#loop ??= this.#dispatch();
    });
  }

  /** Results in input order; rejects with the first task's error, as Python's Pool.map raises it. */
  map<T = unknown>(inputs: readonly unknown[]): Promise<T[]> {
    return Promise.all(inputs.map((input) => this.apply<T>(input)));
  }

  /** Every task's outcome in input order, failures included. */
  mapSettled<T = unknown>(inputs: readonly unknown[]): Promise<PromiseSettledResult<T>[]> {
    return Promise.allSettled(inputs.map((input) => this.apply<T>(input)));
  }

  /** Lets queued tasks finish, then stops the workers and waits for them to exit. */
  async close(): Promise<void> {
    this.#closing = true;
    for (const w of this.#workers) if (w.task === null) await this.#retire(w);
    this.#loop ??= this.#dispatch();
    await this.#loop;
  }

  #startWorker(): void {
    const { process, connection } = spawn(this.#script);
    const worker: Worker = { process, connection, task: null, retiring: false };
    this.#workers.add(worker);
    const next = this.#queue.shift();
    if (next !== undefined) this.#assign(worker, next);
  }

  #assign(worker: Worker, task: Task): void {
    worker.task = task;
    // A send to a dead worker fails; its death is handled when wait() reports it.
    worker.connection.send([task.id, task.input] satisfies TaskMessage).catch(() => {});
  }

  async #retire(worker: Worker): Promise<void> {
    worker.retiring = true;
    await worker.connection.close(); // the worker sees EOF and exits
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
        const task = worker.task!;
        worker.task = null;
        if (ok) task.resolve(value);
        else task.reject(new Error(String(value)));
        const next = this.#queue.shift();
        if (next !== undefined) this.#assign(worker, next);
        else if (this.#closing) await this.#retire(worker);
      }
    }
    this.#loop = null;
  }

  /** A worker is gone: fail its task, and replace it unless the pool is closing. */
  #bury(worker: Worker): void {
    this.#workers.delete(worker);
    void worker.connection.close();
    if (worker.task !== null) {
      const { pid, signalCode, exitCode } = worker.process;
      // The connection usually reports the death before the process sentinel does.
      const how = signalCode !== null ? ` (${signalCode})` : exitCode !== null ? ` (exit code ${exitCode})` : '';
      worker.task.reject(new WorkerDiedError(`worker ${pid} died${how} while running task ${worker.task.id}`));
      worker.task = null;
    }
    if (!this.#closing && !worker.retiring) this.#startWorker();
  }
}

/** The worker side: answers every task with `fn(input)` until the pool closes the connection. */
export async function runWorker(fn: (input: never) => unknown): Promise<void> {
  const conn = parentConnection();
  for await (const message of conn) {
    const [id, input] = message as TaskMessage;
    try {
      await conn.send([id, true, await fn(input as never)] satisfies ResultMessage);
    } catch (err) {
      await conn.send([id, false, err instanceof Error ? err.message : String(err)] satisfies ResultMessage);
    }
  }
  await conn.close();
}
