import { once } from 'node:events';
import net from 'node:net';
import { expect } from 'chai';
import { Client, type Connection, Pipe } from 'mpconn';
import { newestPython, NO_PYTHON, runPython } from './helpers/python.js';
import { header, patterned, rawPeer, rejectionOf as rejection, writeRaw } from './helpers/wire.js';

describe('cancellation', () => {
  let pair: [Connection, Connection];
  beforeEach(async () => {
    pair = await Pipe();
  });
  afterEach(async () => {
    await Promise.all(pair.map((c) => c.close()));
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

  describe('Client({ timeout, signal })', () => {
    const py = newestPython();
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
