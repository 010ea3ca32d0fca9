import { execFile } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';
import { expect } from 'chai';
import { collatzSteps } from '../examples/pool/collatz.js';
import { newestPython, NO_PYTHON } from './helpers/python.js';
import { forEachPython, type Python } from './helpers/python.js';

const run = promisify(execFile);
const example = (path: string): string => fileURLToPath(new URL(`../examples/${path}`, import.meta.url));

async function output(path: string, env: NodeJS.ProcessEnv = {}): Promise<string[]> {
  const { stdout } = await run(process.execPath, [example(path)], { timeout: 30_000, env: { ...process.env, ...env } });
  return stdout.trimEnd().split('\n');
}

describe('examples (each one runs, its output is checked)', () => {
  it('quickstart: the client prints the list, hello, 8 and the Int32Array', async () => {
    const lines = await output('quickstart/listener.js');
    expect(lines[0]).to.match(/^listener: listening on 127\.0\.0\.1:\d+$/);
    expect(lines).to.include.members([
      "client: recv()           => [ 2.25, null, 'junk' ]",
      'client: recvBytes()      => hello',
      'client: recvBytesInto()  => 8',
      'client: arr              => Int32Array(5) [ 42, 1729, 0, 0, 0 ]',
    ]);
    expect(lines.some((l) => /^listener: connection accepted from \[ '127\.0\.0\.1', \d+ \]$/.test(l))).to.equal(true);
  });

  it('wait-readers: forty messages, ten from each of four writers, each writer in order', async () => {
    const lines = await output('wait-readers/main.js');
    expect(lines.at(-1)).to.equal('received 40 messages');
    const messages = lines.slice(0, -1).map((l) => JSON.parse(l.replace(/'/g, '"')) as [number, string]);
    expect(messages).to.have.length(40);
    for (let w = 0; w < 4; w++) {
      const fromWriter = messages.filter(([, name]) => name === `writer-${w}`).map(([i]) => i);
      expect(fromWriter).to.deep.equal([0, 1, 2, 3, 4, 5, 6, 7, 8, 9]);
    }
  });

  it('pool: map, starmap, imap, imapUnordered, apply with an initializer, a task that throws, a crash, close/join, maxTasksPerChild', async () => {
    const lines = await output('pool/main.js');
    const steps = (ns: number[]): string => ns.map(collatzSteps).join(' ');
    expect(lines[0]).to.equal(`collatz steps of 1..20: ${steps(Array.from({ length: 20 }, (_, i) => i + 1))}`);
    expect(lines[1]).to.equal('starmap add: 3 7 11');
    expect(lines[2]).to.equal(`imap, in input order: ${steps([27, 97, 871])}`);
    expect(lines[3]).to.equal('imapUnordered, as they finish: 0 500');
    expect(lines[4]).to.equal('apply with the initializer: hello, pool');
    expect(lines[5]).to.equal('a task threw: task refused: "throw" is not a number');
    expect(lines[6]).to.equal(`task 0: ${collatzSteps(27)}`);
    expect(lines[7]).to.match(/^task 1: failed \(worker \d+ died( \(SIGKILL\))? while running task \d+\)$/);
    expect(lines[8]).to.equal(`task 2: ${collatzSteps(97)}`);
    expect(lines[9]).to.equal(`after the crash, still 2 workers; map again: ${steps([6, 7, 8])}`);
    expect(lines[10]).to.equal('pool closed and joined');
    expect(lines[11]).to.equal('6 tasks, maxTasksPerChild 2: worker processes used: 3');
  });

  const python = newestPython();
  if (python === undefined) it(`remote-queue (Python manager server): ${NO_PYTHON}`);
  else {
    it(`remote-queue: a Node producer and consumer share the queue of a CPython ${python.version} manager`, async () => {
      const lines = await output('remote-queue/run-python-server.js', { MPCONN_PYTHON: python.executable });
      expect(lines[0]).to.match(/^python: serving on 127\.0\.0\.1:\d+$/);
      expect(lines.slice(1)).to.have.members([
        'producer: put 3 items',
        'consumer: got hello',
        'consumer: got 42',
        "consumer: done with [ 'hello', 42 ]",
      ]);
    });
  }

  if (python === undefined) it(`remote-queue (Node manager server): ${NO_PYTHON}`);
  else {
    it(`remote-queue: CPython ${python.version} producer and consumer share a queue the Node ManagerServer holds`, async () => {
      const lines = await output('remote-queue/node-server.js', { MPCONN_PYTHON: python.executable });
      expect(lines[0], lines.join('\n')).to.match(/^node: serving on 127\.0\.0\.1:\d+$/);
      expect(lines.slice(1, -1), lines.join('\n')).to.have.members([
        'producer: put 5 items',
        "consumer: got 'hello'",
        'consumer: got (1, 2.5)',
        "consumer: got {'from': 'python'}",
      ]);
      expect(lines.at(-1)).to.equal('node: got for node (0 left)');
    });
  }

  describe('python-worker: a Node parent farming tasks to two Python workers over pickle', () => {
    forEachPython(undefined, (py: Python) => {
      it(`with CPython ${py.version}: big ints, a dict with a set, the initializer, a Python exception, imap, both workers used`, async () => {
        const lines = await output('python-worker/main.js', { PYTHON: py.executable });
        const factorial = (n: number): bigint => (n <= 1 ? 1n : BigInt(n) * factorial(n - 1));
        const shown = [5, 10, 20, 25].map((n) => `${factorial(n)} (${factorial(n) <= BigInt(Number.MAX_SAFE_INTEGER) ? 'number' : 'bigint'})`);
        expect(lines).to.deep.equal([
          `factorials: ${shown.join(', ')}`,
          'stats: n=8 mean=3.875 distinct=1,2,3,4,5,6,9 label=from the initializer',
          "a task raised in Python: ValueError: unknown function: 'sing'",
          'imap: 1 2 6 24',
          'python workers used: 2 of 2',
          'pool closed and joined',
        ]);
      });
    });
  });
});
