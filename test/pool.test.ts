import { fileURLToPath } from 'node:url';
import { expect } from 'chai';
import { collatzSteps } from '../examples/pool/collatz.js';
import { Pool, WorkerDiedError } from '../examples/pool/pool.js';

const tasks = fileURLToPath(new URL('../examples/pool/tasks.js', import.meta.url));
const processAlive = (pid: number): boolean => {
  try {
    process.kill(pid, 0);
    return true;
  } catch {
    return false;
  }
};

describe('examples/pool: a process pool built from spawn, wait, send and recv', () => {
  let pool: Pool;
  afterEach(async () => {
    await pool.close();
  });

  it('maps 1,000 inputs over 2 workers to the local computation, in input order', async () => {
    pool = new Pool(tasks, 2);
    const inputs = Array.from({ length: 1000 }, (_, i) => (i * 7919) % 100_000 + 1);
    expect(await pool.map<number>(inputs)).to.deep.equal(inputs.map(collatzSteps));
  });

  it('rejects map with the message of the error a task threw in its worker', async () => {
    pool = new Pool(tasks, 2);
    const err = await pool.map([1, 2, 'throw', 4]).catch((e: unknown) => e);
    expect(err).to.be.instanceOf(Error);
    expect((err as Error).message).to.equal('task refused: "throw" is not a number');
    expect(await pool.map<number>([5, 6])).to.deep.equal([5, 8]);
  });

  it('under an injected worker crash: the worker is replaced, only its task fails, the rest match', async () => {
    pool = new Pool(tasks, 2);
    const inputs: (number | string)[] = Array.from({ length: 1000 }, (_, i) => i + 1);
    inputs[500] = 'crash';
    const outcomes = await pool.mapSettled<number>(inputs);
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
    pool = new Pool(tasks, 2);
    const victim = pool.pids[0]!;
    const inputs = Array.from({ length: 1000 }, (_, i) => i + 1);
    const settled = pool.mapSettled<number>(inputs);
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

  it('close() lets queued tasks finish and waits for the workers to exit', async () => {
    pool = new Pool(tasks, 2);
    const pids = pool.pids;
    const results = pool.map<number>([27, 97, 871]);
    await pool.close();
    expect(await results).to.deep.equal([111, 118, 178]);
    expect(pids.some(processAlive)).to.equal(false);
    const err = await pool.apply(1).catch((e: unknown) => e);
    expect(err).to.have.property('message', 'the pool is closed');
  });
});
