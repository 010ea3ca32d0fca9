import { spawn as spawnChild, type ChildProcess } from 'node:child_process';
import { once } from 'node:events';
import { fileURLToPath } from 'node:url';
import { expect } from 'chai';
import { EOFError, ProtocolError, spawn, wait } from 'mpconn';

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

  it('rejects bad arguments with TypeError', () => {
    expect(() => spawn(42 as unknown as string)).to.throw(TypeError);
    expect(() => spawn(fixture('child-echo'), 'x' as unknown as string[])).to.throw(TypeError);
    expect(() => spawn(fixture('child-echo'), [], { serializer: 'yaml' as 'json' })).to.throw(TypeError);
  });
});
