import { fileURLToPath } from 'node:url';
import { expect } from 'chai';
import { collatzSteps } from '../examples/pool/collatz.js';
import { Pool, PoolNotRunningError, TaskError, WorkerDiedError } from '../examples/pool/pool.js';

const tasks = fileURLToPath(new URL('../examples/pool/tasks.js', import.meta.url));
const processAlive = (pid: number): boolean => {
  try {
    process.kill(pid, 0);
    return true;
  } catch {
    return false;
  }
};

async function collect<T>(iterator: AsyncIterable<T>): Promise<T[]> {
  const out: T[] = [];
  for await (const item of iterator) out.push(item);
  return out;
}

describe('examples/pool: the multiprocessing.Pool API from spawn, wait, send and recv', () => {
  let pool: Pool;
  afterEach(async () => {
    pool.terminate();
    await pool.join();
  });

  it('map: 1,000 inputs over 2 workers, in chunks, match the local computation in input order', async () => {
    pool = new Pool(tasks, { processes: 2 });
    const inputs = Array.from({ length: 1000 }, (_, i) => ((i * 7919) % 100_000) + 1);
    expect(await pool.map<number>('collatz', inputs)).to.deep.equal(inputs.map(collatzSteps));
    expect(await pool.map<number>('collatz', inputs, 7)).to.deep.equal(inputs.map(collatzSteps));
    expect(await pool.map('collatz', [])).to.deep.equal([]);
  });

  it('starmap spreads each argument list; apply calls once', async () => {
    pool = new Pool(tasks, { processes: 2 });
    expect(await pool.starmap<number>('add', [[1, 2], [3, 4], [10, -10]])).to.deep.equal([3, 7, 0]);
    expect(await pool.apply<number>('add', [40, 2])).to.equal(42);
  });

  it('imap yields in input order even when later tasks finish first; imapUnordered as they finish', async () => {
    pool = new Pool(tasks, { processes: 3 });
    // The first task sleeps longest, so the others are done before it.
    expect(await collect(pool.imap<number>('sleep', [300, 0, 20]))).to.deep.equal([300, 0, 20]);
    // A second's margin: the order the results finish in, even on a loaded machine.
    expect(await collect(pool.imapUnordered<number>('sleep', [1000, 0]))).to.deep.equal([0, 1000]);
    const chunked = await collect(pool.imap<number>('collatz', Array.from({ length: 50 }, (_, i) => i + 1), 8));
    expect(chunked).to.deep.equal(Array.from({ length: 50 }, (_, i) => collatzSteps(i + 1)));
  });

  it('imap throws a task error where the iteration reaches it, after the results before it', async () => {
    pool = new Pool(tasks, { processes: 2 });
    const got: number[] = [];
    const err = await (async () => {
      for await (const steps of pool.imap<number>('collatz', [1, 2, 'throw', 4])) got.push(steps);
    })().catch((e: unknown) => e);
    expect(got).to.deep.equal([0, 1]);
    expect(err).to.be.instanceOf(TaskError).with.property('message', 'task refused: "throw" is not a number');
  });

  it('rejects map with the message of the error a task threw in its worker, and goes on', async () => {
    pool = new Pool(tasks, { processes: 2 });
    const err = await pool.map('collatz', [1, 2, 'throw', 4]).catch((e: unknown) => e);
    expect(err).to.be.instanceOf(TaskError);
    expect((err as Error).message).to.equal('task refused: "throw" is not a number');
    expect(await pool.map<number>('collatz', [5, 6])).to.deep.equal([5, 8]);
    expect(await pool.apply('nope').catch((e: unknown) => (e as Error).message)).to.equal('the worker has no function "nope"');
  });

  it('runs the initializer once in every worker, replacements included, before any task', async () => {
    pool = new Pool(tasks, { processes: 2, initializer: 'setGreeting', initargs: ['hi'], maxTasksPerChild: 1 });
    const greetings = await pool.map<string>('greet', ['a', 'b', 'c', 'd', 'e'], 1);
    expect(greetings).to.deep.equal(['hi, a', 'hi, b', 'hi, c', 'hi, d', 'hi, e']);
  });

  it('a failing initializer fails the queued tasks with its error instead of restarting workers forever', async () => {
    pool = new Pool(tasks, { processes: 2, initializer: 'setGreeting', initargs: ['fail'] });
    const err = await pool.map('greet', ['a']).catch((e: unknown) => e);
    expect(err).to.be.instanceOf(TaskError).with.property('message', 'the initializer setGreeting() failed: cannot greet');
  });

  it('maxTasksPerChild: a fresh worker process after that many tasks', async () => {
    pool = new Pool(tasks, { processes: 1, maxTasksPerChild: 2 });
    const pids = await pool.starmap<number>('pid', Array.from({ length: 6 }, () => []), 1);
    expect(new Set(pids).size).to.equal(3);
    expect(pids[0]).to.equal(pids[1]);
    expect(pids[1]).not.to.equal(pids[2]);
  });

  it('under an injected worker crash: the worker is replaced, only its task fails, the rest match', async () => {
    pool = new Pool(tasks, { processes: 2 });
    const inputs: (number | string)[] = Array.from({ length: 1000 }, (_, i) => i + 1);
    inputs[500] = 'crash';
    const outcomes = await pool.mapSettled<number>('collatz', inputs);
    outcomes.forEach((outcome, i) => {
      if (i === 500) {
        expect(outcome.status).to.equal('rejected');
        expect((outcome as PromiseRejectedResult).reason).to.be.instanceOf(WorkerDiedError);
      } else {
        expect(outcome).to.deep.equal({ status: 'fulfilled', value: collatzSteps(inputs[i] as number) });
      }
    });
    expect(pool.pids).to.have.length(2);
  });

  it('survives a worker killed from outside in the middle of a map', async () => {
    pool = new Pool(tasks, { processes: 2 });
    const victim = pool.pids[0]!;
    const inputs = Array.from({ length: 1000 }, (_, i) => i + 1);
    const settled = pool.mapSettled<number>('collatz', inputs);
    setImmediate(() => process.kill(victim, 'SIGKILL'));
    const outcomes = await settled;
    const failed = outcomes.filter((o) => o.status === 'rejected');
    expect(failed).to.have.length(1);
    expect((failed[0] as PromiseRejectedResult).reason).to.be.instanceOf(WorkerDiedError);
    outcomes.forEach((o, i) => {
      if (o.status === 'fulfilled') expect(o.value).to.equal(collatzSteps(inputs[i]!));
    });
    expect(pool.pids).to.have.length(2);
    expect(pool.pids).to.not.include(victim);
  });

  it('close() then join(): queued tasks finish, the workers exit, new tasks are refused', async () => {
    pool = new Pool(tasks, { processes: 2 });
    const pids = pool.pids;
    const results = pool.map<number>('collatz', [27, 97, 871], 1);
    pool.close();
    await pool.join();
    expect(await results).to.deep.equal([111, 118, 178]);
    expect(pids.some(processAlive)).to.equal(false);
    const err = await pool.apply('collatz', [1]).catch((e: unknown) => e);
    expect(err).to.be.instanceOf(PoolNotRunningError).with.property('message', 'the pool is closed');
    expect(() => pool.imap('collatz', [1])).to.throw(PoolNotRunningError);
  });

  it('join() before close() or terminate() is an error, as in Python', async () => {
    pool = new Pool(tasks, { processes: 1 });
    const err = await pool.join().catch((e: unknown) => e);
    expect(err).to.be.instanceOf(PoolNotRunningError);
  });

  it('terminate() stops the workers at once: running and queued tasks reject, join() sees them exit', async () => {
    pool = new Pool(tasks, { processes: 2 });
    const pids = pool.pids;
    const running = pool.map('sleep', [10_000, 10_000, 10_000], 1).catch((e: unknown) => e);
    await new Promise((resolve) => setTimeout(resolve, 50));
    pool.terminate();
    await pool.join();
    expect(await running).to.be.instanceOf(PoolNotRunningError).with.property('message', 'the pool was terminated');
    expect(pids.some(processAlive)).to.equal(false);
  });

  it('await using terminates and joins at the end of the block, as Python\'s with Pool()', async () => {
    let pids: number[];
    {
      await using scoped = new Pool(tasks, { processes: 2 });
      pids = scoped.pids;
      expect(await scoped.apply('add', [1, 1])).to.equal(2);
      pool = scoped;
    }
    expect(pids.some(processAlive)).to.equal(false);
  });
});
