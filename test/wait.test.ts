import { spawn as spawnChild, type ChildProcess } from 'node:child_process';
import { once } from 'node:events';
import net from 'node:net';
import { Worker } from 'node:worker_threads';
import { expect } from 'chai';
import { Client, type Connection, Listener, Pipe, wait, type Waitable } from 'mpconn';
import { readiness, type HasReadiness } from '../src/internal.js';

function subscribers(object: Connection | Listener): number {
  return (object as unknown as HasReadiness)[readiness]().subscribers();
}

const sleepers = new Set<ChildProcess>();

/** A process that lives until it is killed (at the latest after each test, pass or fail). */
function sleeper(): ChildProcess {
  const child = spawnChild(process.execPath, ['-e', 'setInterval(() => {}, 1000)'], { stdio: 'ignore' });
  sleepers.add(child);
  return child;
}

async function exited(child: ChildProcess): Promise<void> {
  if (child.exitCode === null && child.signalCode === null) await once(child, 'exit');
}

describe('wait()', () => {
  afterEach(() => {
    for (const child of sleepers) child.kill('SIGKILL');
    sleepers.clear();
  });
  let pairs: [Connection, Connection][] = [];
  const pipe = async (): Promise<[Connection, Connection]> => {
    const pair = await Pipe();
    pairs.push(pair);
    return pair;
  };
  afterEach(async () => {
    await Promise.all(pairs.flat().map((c) => c.close()));
    pairs = [];
  });

  describe('readiness of a Connection', () => {
    it('is not ready while nothing is buffered', async () => {
      const [a] = await pipe();
      expect(await wait([a], 0)).to.deep.equal([]);
      expect(await wait([a], 20)).to.deep.equal([]);
    });

    it('is ready when a whole message is buffered, and the message is still there', async () => {
      const [a, b] = await pipe();
      await b.send('hello');
      expect(await wait([a])).to.deep.equal([a]);
      expect(await a.recv()).to.equal('hello');
    });

    it('is not ready while only part of a frame has arrived', async () => {
      const listener = await Listener.listen(['127.0.0.1', 0]);
      const [host, port] = listener.address as [string, number];
      const raw = net.connect(port, host);
      await once(raw, 'connect');
      const conn = await listener.accept();
      const header = Buffer.alloc(4);
      header.writeInt32BE(10);
      raw.write(Buffer.concat([header, Buffer.from('abc')]));
      expect(await wait([conn], 50)).to.deep.equal([]);
      const becomesReady = wait([conn]);
      raw.write(Buffer.from('defghij'));
      expect(await becomesReady).to.deep.equal([conn]);
      expect((await conn.recvBytes()).toString()).to.equal('abcdefghij');
      raw.destroy();
      await conn.close();
      await listener.close();
    });

    it('is ready when the peer has closed, so the next recv does not wait', async () => {
      const [a, b] = await pipe();
      const ready = wait([a]);
      await b.close();
      expect(await ready).to.deep.equal([a]);
      const err = await a.recv().catch((e: unknown) => e);
      expect(err).to.have.property('name', 'EOFError');
    });

    it('wakes up a wait that started before the message was sent', async () => {
      const [a, b] = await pipe();
      const ready = wait([a]);
      setTimeout(() => void b.send(1), 20);
      expect(await ready).to.deep.equal([a]);
    });
  });

  describe('readiness of a Listener', () => {
    it('is ready when a connection is waiting to be accepted', async () => {
      const listener = await Listener.listen(['127.0.0.1', 0]);
      expect(await wait([listener], 0)).to.deep.equal([]);
      const ready = wait([listener]);
      const client = await Client(listener.address);
      expect(await ready).to.deep.equal([listener]);
      const server = await listener.accept();
      expect(await wait([listener], 0)).to.deep.equal([]);
      await Promise.all([client.close(), server.close(), listener.close()]);
    });

    it('with an authkey, becomes ready only once the peer is authenticated', async () => {
      const listener = await Listener.listen(['127.0.0.1', 0], { authkey: 'k', authTimeout: 2000 });
      const [host, port] = listener.address as [string, number];
      const silent = net.connect(port, host); // connects, never answers the challenge
      await once(silent, 'connect');
      expect(await wait([listener], 100)).to.deep.equal([]);
      const ready = wait([listener]);
      const client = await Client(listener.address, { authkey: 'k' });
      expect(await ready).to.deep.equal([listener]);
      const server = await listener.accept();
      await server.send('welcome');
      expect(await client.recv()).to.equal('welcome');
      silent.destroy();
      await Promise.all([client.close(), server.close(), listener.close()]);
    });
  });

  describe('readiness of a ChildProcess, a Worker and a Socket', () => {
    it('a ChildProcess is ready once it has exited', async () => {
      const child = sleeper();
      expect(await wait([child], 20)).to.deep.equal([]);
      const ready = wait([child]);
      child.kill('SIGKILL');
      expect(await ready).to.deep.equal([child]);
      expect(child.signalCode).to.equal('SIGKILL');
      expect(await wait([child], 0)).to.deep.equal([child]);
    });

    it('a Worker is ready once it has exited', async () => {
      const worker = new Worker('require("node:worker_threads").parentPort.once("message", () => process.exit(0))', {
        eval: true,
      });
      await once(worker, 'online');
      expect(await wait([worker], 20)).to.deep.equal([]);
      const ready = wait([worker]);
      worker.postMessage('stop');
      expect(await ready).to.deep.equal([worker]);
    });

    it('a Socket is ready when it has data to read, and when it has ended', async () => {
      const server = net.createServer();
      server.listen(0, '127.0.0.1');
      await once(server, 'listening');
      const { port } = server.address() as net.AddressInfo;
      const connection = once(server, 'connection') as Promise<[net.Socket]>;
      const client = net.connect(port, '127.0.0.1');
      await once(client, 'connect');
      const [accepted] = await connection;
      expect(await wait([client], 20)).to.deep.equal([]);
      const readable = wait([client]);
      accepted.write('ping');
      expect(await readable).to.deep.equal([client]);
      expect(String(client.read())).to.equal('ping');
      const ended = wait([client]);
      accepted.end();
      expect(await ended).to.deep.equal([client]);
      client.destroy();
      server.close();
    });
  });

  describe('results and timeouts', () => {
    it('returns every ready object in input order, not in the order they became ready', async () => {
      const [a1, b1] = await pipe();
      const [a2, b2] = await pipe();
      const [a3, b3] = await pipe();
      await b3.send(3);
      await b1.send(1);
      await wait([a1]);
      await wait([a3]);
      expect(await wait([a1, a2, a3])).to.deep.equal([a1, a3]);
      expect(await wait([a3, a2, a1])).to.deep.equal([a3, a1]);
      await b2.send(2);
      await wait([a2]);
      expect(await wait([a2, a3, a1])).to.deep.equal([a2, a3, a1]);
    });

    it('returns [] when the timeout passes with nothing ready', async () => {
      const [a] = await pipe();
      expect(await wait([a], 30)).to.deep.equal([]);
    });

    it('counts a negative timeout as 0', async () => {
      const [a, b] = await pipe();
      expect(await wait([a], -5)).to.deep.equal([]);
      await b.send('x');
      await wait([a]);
      expect(await wait([a], -5)).to.deep.equal([a]);
    });

    it('waits forever when the timeout is undefined, null or Infinity', async () => {
      for (const timeout of [undefined, null, Infinity]) {
        const [a, b] = await pipe();
        const ready = wait([a], timeout);
        const outcome = await Promise.race([ready, new Promise((r) => setTimeout(() => r('still waiting'), 50))]);
        expect(outcome).to.equal('still waiting');
        await b.send('late');
        expect(await ready).to.deep.equal([a]);
      }
    });

    it('returns [] at once for an empty list with a timeout', async () => {
      expect(await wait([], 0)).to.deep.equal([]);
      expect(await wait([], 10)).to.deep.equal([]);
    });

    it('rejects objects it cannot wait on with a TypeError', async () => {
      for (const bad of [[{}], [42], ['path'], [null]]) {
        const err = await wait(bad as unknown as Waitable[], 0).catch((e: unknown) => e);
        expect(err).to.be.instanceOf(TypeError);
      }
      const err = await wait(42 as unknown as Waitable[], 0).catch((e: unknown) => e);
      expect(err).to.be.instanceOf(TypeError);
    });

    it('rejects a non-numeric timeout with a TypeError', async () => {
      const [a] = await pipe();
      const err = await wait([a], '10' as unknown as number).catch((e: unknown) => e);
      expect(err).to.be.instanceOf(TypeError);
    });
  });

  describe('in a loop', () => {
    it('leaks no listeners after ten thousand calls on the same objects', async () => {
      const [a, b] = await pipe();
      const [c] = await pipe();
      const listener = await Listener.listen(['127.0.0.1', 0]);
      const child = sleeper();
      const worker = new Worker('setInterval(() => {}, 1000)', { eval: true });
      const server = net.createServer();
      server.listen(0, '127.0.0.1');
      await once(server, 'listening');
      const socket = net.connect((server.address() as net.AddressInfo).port, '127.0.0.1');
      await once(socket, 'connect');
      const before = {
        child: child.listenerCount('exit'),
        worker: worker.listenerCount('exit'),
        socket: socket.listenerCount('readable') + socket.listenerCount('end') + socket.listenerCount('close'),
      };
      const objects: Waitable[] = [a, c, listener, child, worker, socket];
      let received = 0;
      for (let i = 0; i < 10_000; i++) {
        const ready = wait(objects);
        await b.sendBytes(Buffer.of(i & 0xff));
        expect(await ready).to.deep.equal([a]);
        const bytes = await a.recvBytes();
        expect(bytes[0]).to.equal(i & 0xff);
        received++;
      }
      for (let i = 0; i < 50; i++) expect(await wait(objects, 1)).to.deep.equal([]);
      expect(received).to.equal(10_000);
      expect(subscribers(a)).to.equal(0);
      expect(subscribers(c)).to.equal(0);
      expect(subscribers(listener)).to.equal(0);
      expect(child.listenerCount('exit')).to.equal(before.child);
      expect(worker.listenerCount('exit')).to.equal(before.worker);
      expect(socket.listenerCount('readable') + socket.listenerCount('end') + socket.listenerCount('close')).to.equal(
        before.socket,
      );
      child.kill('SIGKILL');
      await exited(child);
      await worker.terminate();
      socket.destroy();
      server.close();
      await listener.close();
    });

    it('finds the one ready connection among a thousand', async () => {
      const listener = await Listener.listen(['127.0.0.1', 0]);
      const clients: Connection[] = [];
      const servers: Connection[] = [];
      for (let i = 0; i < 1000; i++) {
        clients.push(await Client(listener.address));
        servers.push(await listener.accept());
      }
      for (const i of [999, 0, 500]) {
        const ready = wait(servers);
        await clients[i]!.send(i);
        expect(await ready).to.deep.equal([servers[i]]);
        expect(await servers[i]!.recv()).to.equal(i);
      }
      expect(servers.every((s) => subscribers(s) === 0)).to.equal(true);
      await Promise.all([...clients, ...servers].map((conn) => conn.close()));
      await listener.close();
    });
  });
});
