import { execFile } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';
import { expect } from 'chai';
import { collatzSteps } from '../examples/pool/collatz.js';

const run = promisify(execFile);
const example = (path: string): string => fileURLToPath(new URL(`../examples/${path}`, import.meta.url));

async function output(path: string): Promise<string[]> {
  const { stdout } = await run(process.execPath, [example(path)], { timeout: 30_000 });
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

  it('pool: map, a task that throws, a worker crash, and a clean close', async () => {
    const lines = await output('pool/main.js');
    const steps = Array.from({ length: 20 }, (_, i) => collatzSteps(i + 1)).join(' ');
    expect(lines[0]).to.equal(`collatz steps of 1..20: ${steps}`);
    expect(lines[1]).to.equal('a task threw: task refused: "throw" is not a number');
    expect(lines[2]).to.equal(`task 0: ${collatzSteps(27)}`);
    expect(lines[3]).to.match(/^task 1: failed \(worker \d+ died( \(SIGKILL\))? while running task \d+\)$/);
    expect(lines[4]).to.equal(`task 2: ${collatzSteps(97)}`);
    expect(lines[5]).to.equal(`after the crash, still 2 workers; map again: ${[6, 7, 8].map(collatzSteps).join(' ')}`);
    expect(lines[6]).to.equal('pool closed');
  });
});
