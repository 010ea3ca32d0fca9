/**
 * The README never rots: every code block marked `<!-- runnable: NAME -->` is
 * run here, each Python block against its Node partner, with the ports they
 * name (6000, 6001) replaced by free ones. The printed lines the README
 * promises in its comments are checked.
 */
import { spawn } from 'node:child_process';
import { once } from 'node:events';
import { mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import net from 'node:net';
import { fileURLToPath } from 'node:url';
import { expect } from 'chai';
import { newestPython, NO_PYTHON } from './helpers/python.js';

const root = fileURLToPath(new URL('../../', import.meta.url));
const readme = readFileSync(`${root}README.md`, 'utf8');

function runnableBlocks(): Map<string, { lang: string; code: string }> {
  const blocks = new Map<string, { lang: string; code: string }>();
  const pattern = /<!-- runnable: ([\w-]+) -->\s*```(\w+)\n([\s\S]*?)```/g;
  for (const [, name, lang, code] of readme.matchAll(pattern)) blocks.set(name!, { lang: lang!, code: code! });
  return blocks;
}

async function freePort(): Promise<number> {
  const server = net.createServer().listen(0, '127.0.0.1');
  await once(server, 'listening');
  const { port } = server.address() as net.AddressInfo;
  server.close();
  return port;
}

/** Waits until something listens on 127.0.0.1:port, without connecting to it (that would be a client). */
async function listening(port: number): Promise<void> {
  const hex = port.toString(16).toUpperCase().padStart(4, '0');
  for (let i = 0; i < 500; i++) {
    const table = readFileSync('/proc/net/tcp', 'utf8');
    if (table.split('\n').some((line) => line.includes(`:${hex} `) && / 0A /.test(line))) return;
    await new Promise((resolve) => setTimeout(resolve, 20));
  }
  throw new Error(`nothing listens on port ${port}`);
}

interface Ran {
  code: number | null;
  stdout: string;
  stderr: string;
}

function run(command: string, args: string[]): { done: Promise<Ran> } {
  const child = spawn(command, args, { cwd: root, stdio: ['ignore', 'pipe', 'pipe'] });
  let stdout = '';
  let stderr = '';
  child.stdout.on('data', (d: Buffer) => (stdout += d.toString()));
  child.stderr.on('data', (d: Buffer) => (stderr += d.toString()));
  const timer = setTimeout(() => child.kill('SIGKILL'), 30_000);
  return {
    done: new Promise((resolve) =>
      child.on('close', (code) => {
        clearTimeout(timer);
        resolve({ code, stdout, stderr });
      }),
    ),
  };
}

describe('README runnable blocks', () => {
  const blocks = runnableBlocks();
  const dir = `${root}dist/readme/`;
  mkdirSync(dir, { recursive: true });

  /** Writes a block with its ports replaced; Node blocks go inside the package so `import 'mpconn'` resolves. */
  function file(name: string, ports: Record<number, number>): string {
    const block = blocks.get(name);
    if (block === undefined) throw new Error(`README has no runnable block named ${name}`);
    let code = block.code;
    for (const [from, to] of Object.entries(ports)) code = code.replaceAll(from, String(to));
    const path = `${dir}${name}.${block.lang === 'python' ? 'py' : 'mjs'}`;
    writeFileSync(path, code);
    return path;
  }

  it('finds the blocks it runs', () => {
    expect([...blocks.keys()]).to.include.members([
      'python-listener',
      'node-client-of-python-listener',
      'node-listener',
      'python-client-of-node-listener',
      'batches',
    ]);
  });

  it('the batches example prints what the README says', async () => {
    const node = await run(process.execPath, [file('batches', {})]).done;
    expect(node.stderr).to.equal('');
    expect(node.code).to.equal(0);
    expect(node.stdout.trim()).to.equal('1000');
  });

  const py = newestPython();
  if (py === undefined) {
    it(`Python interop blocks — ${NO_PYTHON}`);
    return;
  }

  it(`Python listener (CPython ${py.version}) and the Node client print what the README says`, async () => {
    const port = await freePort();
    const python = run(py.executable, [file('python-listener', { 6000: port })]);
    await listening(port);
    const node = await run(process.execPath, [file('node-client-of-python-listener', { 6000: port })]).done;
    const pyOut = await python.done;
    expect(node.stderr).to.equal('');
    expect(node.code).to.equal(0);
    expect(node.stdout.split('\n')).to.include.members([
      'hello from Python',
      '{ answer: 42, items: [ 1, 2.5, null ], raw: Uint8Array(2) [ 0, 1 ] }',
    ]);
    expect(pyOut.code, pyOut.stderr).to.equal(0);
    expect(pyOut.stdout).to.match(/^connection from \('127\.0\.0\.1', \d+\)$/m);
    expect(pyOut.stdout).to.include("b'hello from Node'");
    expect(pyOut.stdout).to.include("{'from': 'node', 'ok': True, 'n': 100000000000000000000}");
  });

  it(`Node listener and the Python client (CPython ${py.version}) print what the README says`, async () => {
    const port = await freePort();
    const node = run(process.execPath, [file('node-listener', { 6001: port })]);
    await listening(port);
    const pyOut = await run(py.executable, [file('python-client-of-node-listener', { 6001: port })]).done;
    const nodeOut = await node.done;
    expect(pyOut.code, pyOut.stderr).to.equal(0);
    expect(pyOut.stdout.trim()).to.equal("b'pong'");
    expect(nodeOut.code, nodeOut.stderr).to.equal(0);
    expect(nodeOut.stdout.trim()).to.equal('ping');
  });
});
