import { spawn as spawnChild, type ChildProcess } from 'node:child_process';
import { once } from 'node:events';
import { existsSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { expect } from 'chai';
import { EOFError, ProtocolError, spawn, Tuple, wait } from 'mpconn';
import { forEachPython, type Python } from './helpers/python.js';

const fixture = (name: string): string => fileURLToPath(new URL(`./fixtures/${name}.js`, import.meta.url));

async function exited(child: ChildProcess): Promise<void> {
  if (child.exitCode === null && child.signalCode === null) await once(child, 'exit');
}

describe('spawn() and parentConnection()', () => {
  it('gives parent and child the two ends of one connection', async () => {
    const { process: child, connection } = spawn(fixture('child-echo'));
    for (const value of ['hello', 42, [1, 2, { three: 3 }], null]) {
      await connection.send(value);
      expect(await connection.recv()).to.deep.equal(value);
    }
    const big = Buffer.alloc(3 << 20, 0xab);
    await connection.send(big);
    expect(Buffer.from((await connection.recv()) as Uint8Array).equals(big)).to.equal(true);
    await connection.close();
    await exited(child);
    expect(child.exitCode).to.equal(0);
  });

  it('passes the connection options to the parent end', async () => {
    const { process: child, connection } = spawn(fixture('child-echo'), ['json'], { serializer: 'json' });
    await connection.send({ sent: 'as json' });
    const raw = await connection.recvBytes();
    expect(JSON.parse(raw.toString())).to.deep.equal({ sent: 'as json' });
    await connection.close();
    await exited(child);
  });

  it('lets a child that sent its results and returned exit without closing', async () => {
    const { process: child, connection } = spawn(fixture('child-send-and-return'));
    expect(await connection.recv()).to.deep.equal(['done', child.pid]);
    await exited(child);
    expect(child.exitCode).to.equal(0);
    const err = await connection.recv().catch((e: unknown) => e);
    expect(err).to.be.instanceOf(EOFError);
    await connection.close();
  });

  it('makes the ChildProcess the sentinel for wait()', async () => {
    const { process: child, connection } = spawn(fixture('child-wait-for-kill'));
    expect(await connection.recv()).to.equal('ready');
    expect(await wait([child], 20)).to.deep.equal([]);
    const ready = wait([child]);
    child.kill('SIGKILL');
    expect(await ready).to.deep.equal([child]);
    await connection.close();
  });

  describe('a child that dies', () => {
    // The 1-second timeouts are the bound: the recv rejects with a
    // TimeoutError (and the test fails) if the death is not noticed by then.
    it('before sending anything: the pending recv rejects with EOFError', async () => {
      const { process: child, connection } = spawn(fixture('child-crash'), ['at-once']);
      const err = await connection.recv({ timeout: 1000 }).catch((e: unknown) => e);
      expect(err).to.be.instanceOf(EOFError);
      await exited(child);
      expect(child.signalCode).to.equal('SIGKILL');
      await connection.close();
    });

    it('in the middle of a message: the pending recv rejects with ProtocolError ERR_TRUNCATED', async () => {
      const { process: child, connection } = spawn(fixture('child-crash'), ['mid-frame']);
      const err = await connection.recv({ timeout: 1000 }).catch((e: unknown) => e);
      expect(err).to.be.instanceOf(ProtocolError);
      expect((err as ProtocolError).code).to.equal('ERR_TRUNCATED');
      await exited(child);
      await connection.close();
    });

    it('while the parent waits: SIGKILL from outside settles the recv with EOFError', async () => {
      const { process: child, connection } = spawn(fixture('child-wait-for-kill'));
      expect(await connection.recv()).to.equal('ready');
      const pending = connection.recv({ timeout: 5000 }).catch((e: unknown) => e);
      child.kill('SIGKILL');
      const err = await pending;
      expect(err).to.be.instanceOf(EOFError);
      await connection.close();
    });
  });

  it('parentConnection() outside a spawned process throws an error that says so', async () => {
    const child = spawnChild(process.execPath, [fixture('not-spawned')], { stdio: ['ignore', 'pipe', 'inherit'] });
    let out = '';
    child.stdout!.on('data', (d: Buffer) => (out += d.toString()));
    await exited(child);
    expect(out).to.match(/^Error: parentConnection\(\) works in a process started by mpconn's spawn\(\)/);
  });

  describe('any program, with the connection on its fd 3 (a Python worker, standard library only)', () => {
    let dir: string;
    let script: string;
    const started: ChildProcess[] = [];
    before(() => {
      dir = mkdtempSync(join(tmpdir(), 'mpconn-spawn-'));
      script = join(dir, 'worker.py');
      // Echoes each value back with its Python type name and the argv it got; 'die' exits mid-way.
      writeFileSync(
        script,
        `import os, sys
from multiprocessing.connection import Connection
conn = Connection(3)
while True:
    try:
        value = conn.recv()
    except EOFError:
        break
    if value == 'die':
        os._exit(3)
    conn.send((type(value).__name__, value, sys.argv[1:]))
`,
      );
    });
    afterEach(() => {
      for (const child of started.splice(0)) if (child.exitCode === null && child.signalCode === null) child.kill('SIGKILL');
    });
    after(() => rmSync(dir, { recursive: true, force: true }));

    forEachPython(undefined, (py: Python) => {
      it(`CPython ${py.version}: spawn({ command, args }) and spawn(script, args, { command }) both talk pickle over fd 3`, async () => {
        const a = spawn({ command: py.executable, args: [script, 'one'], serializer: 'pickle', timeout: 20_000 });
        const b = spawn(script, ['two', 'three'], { command: py.executable, serializer: 'pickle', timeout: 20_000 });
        started.push(a.process, b.process);
        await a.connection.send(new Tuple(1, 'x'));
        await b.connection.send({ big: 2n ** 70n, set: new Set([1]) });
        expect(await a.connection.recv()).to.deep.equal(['tuple', [1, 'x'], ['one']]);
        expect(await b.connection.recv()).to.deep.equal(['dict', { big: 2n ** 70n, set: new Set([1]) }, ['two', 'three']]);
        // the parent closing the connection is EOF for the worker, which then exits by itself
        await a.connection.close();
        await exited(a.process);
        expect(a.process.exitCode).to.equal(0);
        // a worker that dies settles the pending recv, and is the sentinel for wait()
        const pending = b.connection.recv({ timeout: 10_000 }).catch((e: unknown) => e);
        await b.connection.send('die');
        expect(await pending).to.be.instanceOf(EOFError);
        expect(await wait([b.process], 10_000)).to.deep.equal([b.process]);
        expect(b.process.exitCode).to.equal(3);
        await b.connection.close();
      });
    });

    it('a program that cannot be started: the pending recv rejects and the parent does not crash', async () => {
      const { process: child, connection } = spawn({ command: join(dir, 'no-such-program') });
      const error = once(child, 'error');
      const err = await connection.recv({ timeout: 5000 }).catch((e: unknown) => e);
      expect(err).to.be.instanceOf(EOFError);
      expect(((await error)[0] as NodeJS.ErrnoException).code).to.equal('ENOENT');
      await connection.close();
    });

    it('runs a Node module with this Node when no command is given, as before', async () => {
      const { process: child, connection } = spawn(fixture('child-echo'), [], {});
      expect(child.spawnargs[0]).to.equal(process.execPath);
      await connection.send('node');
      expect(await connection.recv()).to.equal('node');
      await connection.close();
      await exited(child);
    });
  });

  it('rejects bad arguments with TypeError', () => {
    expect(() => spawn({} as unknown as { command: string })).to.throw(TypeError, /command/);
    expect(() => spawn({ command: 'python3', args: 'x' as unknown as string[] })).to.throw(TypeError, /args/);
    expect(() => spawn('x.py', [], { command: 42 as unknown as string })).to.throw(TypeError, /command/);
    expect(() => spawn(42 as unknown as string)).to.throw(TypeError);
    expect(() => spawn(fixture('child-echo'), 'x' as unknown as string[])).to.throw(TypeError);
    expect(() => spawn(fixture('child-echo'), [], { serializer: 'yaml' as 'json' })).to.throw(TypeError);
  });

  it('checks every connection option before starting the child, so a bad one starts nothing', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'mpconn-spawn-'));
    try {
      const marker = join(dir, 'started');
      const script = join(dir, 'child.cjs');
      writeFileSync(script, `require('fs').writeFileSync(${JSON.stringify(marker)}, 'x');`);
      for (const bad of [{ maxDepth: 0 }, { maxMessageSize: -1 }, { serializer: 'yaml' as 'json' }]) {
        expect(() => spawn(script, [], bad)).to.throw();
      }
      // a good spawn of the same script does create the marker, so its absence above means something
      const { process: child, connection } = spawn(script);
      await exited(child);
      await connection.close();
      expect(existsSync(marker)).to.equal(true);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });
});
