import { once } from 'node:events';
import net from 'node:net';
import { expect } from 'chai';
import { Client, type Connection, Listener, Pipe } from 'mpconn';
import { NO_PYTHON, pythons, runPython } from './helpers/python.js';
import { header, patterned, rawPeer, rejectionOf as rejection, writeRaw } from './helpers/wire.js';

describe('cancellation', () => {
  let pair: [Connection, Connection];
  beforeEach(async () => {
    pair = await Pipe();
  });
  afterEach(async () => {
    await Promise.all(pair.map((c) => c.close()));
  });

  describe('recv({ signal, timeout })', () => {
    it('an aborted recv rejects with the signal reason and the next recv gets the next message', async () => {
      const [a, b] = pair;
      const controller = new AbortController();
      const aborted = rejection(a.recv({ signal: controller.signal }));
      controller.abort(new Error('changed my mind'));
      expect(await aborted).to.have.property('message', 'changed my mind');
      await b.send('first');
      await b.send('second');
      expect(await a.recv()).to.equal('first');
      expect(await a.recv()).to.equal('second');
    });

    it('a timed-out recv rejects with a TimeoutError DOMException and loses no message', async () => {
      const [a, b] = pair;
      const err = await rejection(a.recv({ timeout: 20 }));
      expect(err).to.be.instanceOf(DOMException);
      expect((err as DOMException).name).to.equal('TimeoutError');
      await b.send('after the timeout');
      expect(await a.recv()).to.equal('after the timeout');
    });

    it('an already aborted signal rejects at once and consumes nothing', async () => {
      const [a, b] = pair;
      await b.send('kept');
      const err = await rejection(a.recv({ signal: AbortSignal.abort('nope') }));
      expect(err).to.equal('nope');
      expect(await a.recv()).to.equal('kept');
    });

    it('aborting one of several queued receives leaves the others in order', async () => {
      const [a, b] = pair;
      const controller = new AbortController();
      const first = a.recv();
      const second = rejection(a.recv({ signal: controller.signal }));
      const third = a.recv();
      controller.abort('second gives up');
      expect(await second).to.equal('second gives up');
      await b.send(1);
      await b.send(2);
      expect(await first).to.equal(1);
      expect(await third).to.equal(2);
    });

    it('AbortSignal.timeout() works as a signal', async () => {
      const [a, b] = pair;
      const err = await rejection(a.recv({ signal: AbortSignal.timeout(10) }));
      expect((err as DOMException).name).to.equal('TimeoutError');
      await b.send('still here');
      expect(await a.recv()).to.equal('still here');
    });

    it('rejects a bad signal or timeout with TypeError', async () => {
      const [a] = pair;
      expect(await rejection(a.recv({ signal: {} as AbortSignal }))).to.be.instanceOf(TypeError);
      expect(await rejection(a.recv({ timeout: 'soon' as unknown as number }))).to.be.instanceOf(TypeError);
    });
  });

  describe('recvBytes and recvBytesInto take the same options', () => {
    it('a timed-out recvBytes loses no message', async () => {
      const [a, b] = pair;
      const err = await rejection(a.recvBytes(undefined, { timeout: 20 }));
      expect((err as DOMException).name).to.equal('TimeoutError');
      await b.sendBytes(Buffer.from('next'));
      expect(String(await a.recvBytes(Infinity, { timeout: 5000 }))).to.equal('next');
    });

    it('a recvBytesInto aborted half-way through a large message keeps what arrived for the next receive', async () => {
      const peer = await rawPeer();
      try {
        const message = patterned(4 << 20, 7);
        const half = 2 << 20;
        const target = Buffer.alloc(message.length);
        const controller = new AbortController();
        const aborted = rejection(peer.conn.recvBytesInto(target, 0, { signal: controller.signal }));
        await writeRaw(peer.raw, Buffer.concat([header(message.length), message.subarray(0, half)]));
        // The payload is written straight into `target` as it arrives: wait until the first half is there.
        while (!target.subarray(half - 16, half).equals(message.subarray(half - 16, half))) {
          await new Promise((resolve) => setImmediate(resolve));
        }
        controller.abort(new Error('aborted half-way'));
        expect(await aborted).to.have.property('message', 'aborted half-way');
        await writeRaw(peer.raw, message.subarray(half));
        const whole = await peer.conn.recvBytes();
        expect(whole.equals(message)).to.equal(true);
        expect(target.subarray(half).every((byte) => byte === 0)).to.equal(true); // not written after the abort
      } finally {
        await peer.dispose();
      }
    });
  });

  describe('recvBytesInto filling directly, with another receive queued behind it', () => {
    it('cancelling the one behind, then the filling one, leaves the whole message to the next receive', async () => {
      const peer = await rawPeer();
      try {
        const message = patterned(1_300_000, 3);
        const half = 650_000;
        const target = Buffer.alloc(2 << 20);
        const fill = new AbortController();
        const behind = new AbortController();
        const filling = rejection(peer.conn.recvBytesInto(target, 0, { signal: fill.signal }));
        const queued = rejection(peer.conn.recvBytes(undefined, { signal: behind.signal }));
        await writeRaw(peer.raw, Buffer.concat([header(message.length), message.subarray(0, half)]));
        while (!target.subarray(half - 16, half).equals(message.subarray(half - 16, half))) {
          await new Promise((resolve) => setImmediate(resolve));
        }
        behind.abort(new Error('behind gives up'));
        expect(await queued).to.have.property('message', 'behind gives up');
        fill.abort(new Error('filler gives up'));
        expect(await filling).to.have.property('message', 'filler gives up');
        const next = peer.conn.recvBytes();
        await writeRaw(peer.raw, message.subarray(half));
        const whole = await next;
        expect(Buffer.isBuffer(whole)).to.equal(true);
        expect(whole.equals(message)).to.equal(true);
        expect(target.subarray(half).every((byte) => byte === 0)).to.equal(true);
      } finally {
        await peer.dispose();
      }
    });
  });

  describe('accept({ signal, timeout })', () => {
    it('an aborted accept loses no connection: the next accept gets it', async () => {
      const listener = await Listener.listen(['127.0.0.1', 0]);
      const controller = new AbortController();
      const aborted = rejection(listener.accept({ signal: controller.signal }));
      controller.abort(new Error('stop accepting'));
      expect(await aborted).to.have.property('message', 'stop accepting');
      const client = await Client(listener.address);
      const server = await listener.accept();
      await client.send('reached the next accept');
      expect(await server.recv()).to.equal('reached the next accept');
      await Promise.all([client.close(), server.close(), listener.close()]);
    });

    it('a timed-out accept rejects with TimeoutError, and a later connection is not lost', async () => {
      const listener = await Listener.listen(['127.0.0.1', 0]);
      const err = await rejection(listener.accept({ timeout: 20 }));
      expect((err as DOMException).name).to.equal('TimeoutError');
      const client = await Client(listener.address);
      const server = await listener.accept({ timeout: 5000 });
      await server.send('hi');
      expect(await client.recv()).to.equal('hi');
      await Promise.all([client.close(), server.close(), listener.close()]);
    });
  });

  describe('Client({ timeout, signal })', () => {
    it('an already aborted signal rejects with its reason before connecting', async () => {
      const listener = await Listener.listen(['127.0.0.1', 0]);
      let connected = false;
      listener.once('handshakeError', () => {});
      const err = await rejection(Client(listener.address, { signal: AbortSignal.abort('no') }));
      expect(err).to.equal('no');
      const accepted = await listener.accept({ timeout: 50 }).then(() => (connected = true), () => false);
      expect(accepted).to.equal(false);
      expect(connected).to.equal(false);
      await listener.close();
    });

    it('an abort during the handshake rejects with the reason and closes the socket', async () => {
      const server = net.createServer(); // accepts, never sends the challenge
      server.listen(0, '127.0.0.1');
      await once(server, 'listening');
      const { port } = server.address() as net.AddressInfo;
      const accepted = once(server, 'connection') as Promise<[net.Socket]>;
      const controller = new AbortController();
      const pending = rejection(Client(['127.0.0.1', port], { authkey: 'k', signal: controller.signal }));
      const [socket] = await accepted;
      controller.abort(new Error('user gave up'));
      expect(await pending).to.have.property('message', 'user gave up');
      await once(socket, 'end');
      socket.destroy();
      server.close();
    });

    const py = pythons().at(-1);
    if (py === undefined) {
      it(`a connect that hangs (full backlog) rejects with TimeoutError — ${NO_PYTHON}`);
    } else {
      it(`a connect that hangs (a CPython ${py.version} socket whose backlog is full) rejects with TimeoutError`, async () => {
        const peer = runPython(
          py,
          'import socket, sys\ns = socket.socket()\ns.bind(("127.0.0.1", 0))\ns.listen(0)\nprint(s.getsockname()[1])\nsys.stdin.read()',
        );
        const port = Number(await peer.line());
        const fillers: net.Socket[] = [];
        // With listen(0) and no accept(), the queue takes one connection; later SYNs go unanswered.
        for (let i = 0; i < 2; i++) fillers.push(net.connect(port, '127.0.0.1'));
        await once(fillers[0]!, 'connect');
        const err = await rejection(Client(['127.0.0.1', port], { timeout: 300 }));
        expect(err).to.be.instanceOf(DOMException);
        expect((err as DOMException).name).to.equal('TimeoutError');
        for (const s of fillers) s.destroy();
        peer.process.stdin!.end();
        await peer.exit();
      });
    }
  });
});
