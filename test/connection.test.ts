import { encode as msgpackEncode } from '@msgpack/msgpack';
import { expect } from 'chai';
import { once } from 'node:events';
import { fstatSync } from 'node:fs';
import { Duplex } from 'node:stream';
import {
  BufferTooShort,
  Client,
  Connection,
  EOFError,
  Listener,
  MpconnError,
  Pipe,
} from 'mpconn';
import { expectProtocol, expectState } from './helpers/connections.js';
import {
  countLoopTurns,
  endRaw,
  frame,
  header,
  patterned,
  rawPeer,
  rejectionOf,
  stillPending,
  tick,
  until,
  within,
  writeRaw,
  type RawPeer,
} from './helpers/wire.js';

const KiB = 1024;
const MiB = 1024 * 1024;

/** Everything a test opens, closed after it. */
const open: { close(): Promise<void> }[] = [];

async function pipe(duplex = true, options?: Parameters<typeof Pipe>[1]): Promise<[Connection, Connection]> {
  const pair = await Pipe(duplex, options);
  open.push(...pair);
  return pair;
}

async function peer(options?: Parameters<typeof rawPeer>[0], tcp = false): Promise<RawPeer> {
  const p = await rawPeer(options, tcp);
  open.push({ close: () => p.dispose() });
  return p;
}

/** Resolves once the peer's end of stream reached `socket` (every chunk before it has been handled). */
function ended(socket: NodeJS.EventEmitter): Promise<unknown> {
  return once(socket, 'end');
}

describe('Connection', () => {
  afterEach(async () => {
    await Promise.all(open.splice(0).map((c) => c.close().catch(() => {})));
  });

  describe('send and recv', () => {
    it('send(obj) puts serializer.encode(obj) on the wire as one message (msgpack by default)', async () => {
      const [a, b] = await pipe();
      const value = [2.25, null, 'junk', { n: 1 }];
      await a.send(value);
      const bytes = await b.recvBytes();
      expect(Buffer.compare(bytes, Buffer.from(msgpackEncode(value)))).to.equal(0);
    });

    it('recv() decodes a message sent as raw msgpack bytes (what a Python peer does with send_bytes(packb(x)))', async () => {
      const [a, b] = await pipe();
      await a.sendBytes(msgpackEncode({ hello: ['world', 42] }));
      expect(await b.recv()).to.deep.equal({ hello: ['world', 42] });
    });

    it('round-trips values both ways', async () => {
      const [a, b] = await pipe();
      await a.send({ ping: 1 });
      expect(await b.recv()).to.deep.equal({ ping: 1 });
      await b.send(['pong', true, 3.5]);
      expect(await a.recv()).to.deep.equal(['pong', true, 3.5]);
    });

    it('rejects when the serializer cannot encode the value, and sends nothing', async () => {
      const [a, b] = await pipe(true, { serializer: 'json' });
      expect(await rejectionOf(a.send(undefined))).to.be.instanceOf(TypeError);
      await a.send('after');
      expect(await b.recv()).to.equal('after');
    });
  });

  describe('sendBytes', () => {
    it('sends the bytes of any view: an Int32Array goes as its 8 bytes', async () => {
      const [a, b] = await pipe();
      const ints = new Int32Array([42, 1729]);
      await a.sendBytes(ints);
      const got = await b.recvBytes();
      expect(got.length).to.equal(8);
      expect(Buffer.compare(got, Buffer.from(ints.buffer))).to.equal(0);
    });

    it('counts offset and size in bytes of the view, whatever its element type', async () => {
      const [a, b] = await pipe();
      const ints = new Int32Array([1, 2, 3, 4]);
      const bytes = Buffer.from(ints.buffer);
      await a.sendBytes(ints, 4, 8); // elements 1 and 2
      expect(Buffer.compare(await b.recvBytes(), bytes.subarray(4, 12))).to.equal(0);
      await a.sendBytes(ints, 2, 3); // mid-element: bytes 2..5
      expect(Buffer.compare(await b.recvBytes(), bytes.subarray(2, 5))).to.equal(0);
      await a.sendBytes(ints, 12); // size defaults to the rest
      expect(Buffer.compare(await b.recvBytes(), bytes.subarray(12))).to.equal(0);
    });

    it('uses only the bytes of the view, not the rest of its ArrayBuffer', async () => {
      const [a, b] = await pipe();
      const backing = new ArrayBuffer(32);
      new Uint8Array(backing).set(patterned(32, 7));
      const view = new Int16Array(backing, 8, 4); // bytes 8..16
      await a.sendBytes(view, 2, 4);
      expect(Buffer.compare(await b.recvBytes(), Buffer.from(backing, 10, 4))).to.equal(0);
    });

    it('accepts an ArrayBuffer, a DataView and a Buffer', async () => {
      const [a, b] = await pipe();
      const data = patterned(10, 1);
      const ab = new ArrayBuffer(10);
      new Uint8Array(ab).set(data);
      await a.sendBytes(ab, 1, 2);
      await a.sendBytes(new DataView(ab, 3, 4));
      await a.sendBytes(data);
      expect(Buffer.compare(await b.recvBytes(), data.subarray(1, 3))).to.equal(0);
      expect(Buffer.compare(await b.recvBytes(), data.subarray(3, 7))).to.equal(0);
      expect(Buffer.compare(await b.recvBytes(), data)).to.equal(0);
    });

    it('sends an empty message for offset == length, and for an empty buffer', async () => {
      const [a, b] = await pipe();
      await a.sendBytes(new Uint8Array(4), 4);
      await a.sendBytes(new Uint8Array(0));
      await a.sendBytes(new Uint8Array(4), 1, 0);
      for (let i = 0; i < 3; i++) expect((await b.recvBytes()).length).to.equal(0);
    });

    describe('validates offset and size as Python does, with RangeError', () => {
      const ints = new Int32Array(4); // 16 bytes
      const cases: [string, number | undefined, number | undefined][] = [
        ['a negative offset', -1, undefined],
        ['an offset past the end (in bytes, not elements)', 17, undefined],
        ['a negative size', 0, -1],
        ['offset + size past the end', 8, 9],
        ['a size past the end', 0, 17],
        ['a fractional offset', 1.5, undefined],
        ['a fractional size', 0, 2.5],
      ];
      for (const [what, offset, size] of cases) {
        it(`rejects ${what} and sends nothing`, async () => {
          const [a, b] = await pipe();
          expect(await rejectionOf(a.sendBytes(ints, offset, size))).to.be.instanceOf(RangeError);
          await a.sendBytes(Buffer.from('next'));
          expect((await b.recvBytes()).toString()).to.equal('next');
        });
      }
      it('accepts offset and size that end exactly at the last byte', async () => {
        const [a, b] = await pipe();
        await a.sendBytes(ints, 8, 8);
        expect((await b.recvBytes()).length).to.equal(8);
      });
    });

    describe('rejects the wrong kind of argument with TypeError', () => {
      const bad: [string, unknown[]][] = [
        ['a string buffer', ['text']],
        ['a number buffer', [42]],
        ['a plain array', [[1, 2, 3]]],
        ['null', [null]],
        ['a string offset', [new Uint8Array(4), '1']],
        ['a string size', [new Uint8Array(4), 0, '2']],
      ];
      for (const [what, args] of bad) {
        it(`rejects ${what}`, async () => {
          const [a] = await pipe();
          const send = a.sendBytes as (...args: unknown[]) => Promise<void>;
          const err = await rejectionOf(send.apply(a, args));
          expect(err).to.be.instanceOf(TypeError);
        });
      }
    });

    for (const size of [100, 20 * KiB, 2 * MiB]) {
      it(`lets the caller reuse a ${size}-byte buffer as soon as the send resolves`, async () => {
        const [a, b] = await pipe();
        const buf = patterned(size, size);
        const original = Buffer.from(buf);
        await a.sendBytes(buf);
        buf.fill(0xee);
        const got = await b.recvBytes();
        expect(got.equals(original)).to.equal(true);
      });
    }
  });

  describe('recvBytes', () => {
    it('resolves with the message as a Buffer', async () => {
      const [a, b] = await pipe();
      await a.sendBytes(Buffer.from('hello'));
      const got = await b.recvBytes();
      expect(Buffer.isBuffer(got)).to.equal(true);
      expect(got.toString()).to.equal('hello');
    });

    it('accepts a message of exactly maxlength bytes', async () => {
      const [a, b] = await pipe();
      await a.sendBytes(Buffer.from('12345'));
      await a.sendBytes(Buffer.alloc(0));
      expect((await b.recvBytes(5)).toString()).to.equal('12345');
      expect((await b.recvBytes(0)).length).to.equal(0);
    });

    for (const when of ['already buffered', 'arriving after the call'] as const) {
      it(`rejects a message over maxlength (${when}) with ERR_MESSAGE_TOO_LONG, then the connection is no longer readable`, async () => {
        const [a, b] = await pipe();
        let pending: Promise<Buffer>;
        if (when === 'already buffered') {
          await a.sendBytes(Buffer.from('too long'));
          await b.poll(Infinity);
          pending = b.recvBytes(3);
        } else {
          pending = b.recvBytes(3);
          await tick();
          await a.sendBytes(Buffer.from('too long'));
        }
        const queued = b.recvBytes(); // behind it: no longer readable either
        const err = await rejectionOf(pending);
        expectProtocol(err, 'ERR_MESSAGE_TOO_LONG');
        expect(err.message).to.match(/\b8\b/);
        expectState(await rejectionOf(queued), 'ERR_NOT_READABLE');
        expect(b.readable).to.equal(false);
        await a.sendBytes(Buffer.from('later'));
        expectState(await rejectionOf(b.recvBytes()), 'ERR_NOT_READABLE');
        expectState(await rejectionOf(b.recv()), 'ERR_NOT_READABLE');
        expectState(await rejectionOf(b.recvBytesInto(new Uint8Array(10))), 'ERR_NOT_READABLE');
        expectState(await rejectionOf(b.poll()), 'ERR_NOT_READABLE');
        // Still writable, as in Python.
        expect(b.writable).to.equal(true);
        await b.sendBytes(Buffer.from('still sending'));
        expect((await a.recvBytes()).toString()).to.equal('still sending');
      });
    }

    it('rejects a negative maxlength with RangeError and a non-number with TypeError, consuming nothing', async () => {
      const [a, b] = await pipe();
      await a.sendBytes(Buffer.from('kept'));
      expect(await rejectionOf(b.recvBytes(-1))).to.be.instanceOf(RangeError);
      expect(await rejectionOf(b.recvBytes('10' as unknown as number))).to.be.instanceOf(TypeError);
      expect((await b.recvBytes()).toString()).to.equal('kept');
      expect(b.readable).to.equal(true);
    });

    describe('maxMessageSize option', () => {
      it('accepts messages up to maxMessageSize', async () => {
        const [a, b] = await pipe(true, { maxMessageSize: 10 });
        await a.sendBytes(Buffer.alloc(10, 1));
        expect((await b.recvBytes()).length).to.equal(10);
      });

      it('delivers the messages before a longer one, rejects it with ERR_MESSAGE_TOO_LONG, then ERR_NOT_READABLE', async () => {
        const [a, b] = await pipe(true, { maxMessageSize: 10 });
        await a.sendBytes(Buffer.from('first'));
        await a.sendBytes(Buffer.alloc(11));
        await a.sendBytes(Buffer.from('never'));
        expect((await b.recvBytes()).toString()).to.equal('first');
        const err = await rejectionOf(b.recvBytes());
        expectProtocol(err, 'ERR_MESSAGE_TOO_LONG');
        expect(err.message).to.include('11');
        expectState(await rejectionOf(b.recvBytes()), 'ERR_NOT_READABLE');
        expect(b.readable).to.equal(false);
        expect(b.writable).to.equal(true);
      });

      it('rejects the first pending receive with ERR_MESSAGE_TOO_LONG and the others with ERR_NOT_READABLE', async () => {
        const [a, b] = await pipe(true, { maxMessageSize: 4 });
        const first = b.recv();
        const second = b.recvBytes();
        await a.sendBytes(Buffer.alloc(5));
        expectProtocol(await rejectionOf(first), 'ERR_MESSAGE_TOO_LONG');
        expectState(await rejectionOf(second), 'ERR_NOT_READABLE');
      });

      it('never waits for the payload of a frame whose header is already too long', async () => {
        const p = await peer({ maxMessageSize: 100 });
        const pending = p.conn.recvBytes();
        await writeRaw(p.raw, header(1 << 30)); // and nothing more
        expectProtocol(await within(rejectionOf(pending), 5000, 'recvBytes'), 'ERR_MESSAGE_TOO_LONG');
      });

      it('is validated: a negative or non-integer size is a RangeError', async () => {
        expect(await rejectionOf(Pipe(true, { maxMessageSize: -1 }))).to.be.instanceOf(RangeError);
        expect(await rejectionOf(Pipe(true, { maxMessageSize: 1.5 }))).to.be.instanceOf(RangeError);
      });
    });
  });

  describe('recvBytesInto', () => {
    it('made after a frame\'s header was read, still gets the payload written straight into its buffer', async () => {
      const p = await peer();
      const message = patterned(40 * KiB, 11);
      const half = 20 * KiB;
      // One write: a small message, then the big one's header and first half.
      await writeRaw(p.raw, Buffer.concat([frame(Buffer.from('first')), header(message.length), message.subarray(0, half)]));
      expect(String(await p.conn.recvBytes())).to.equal('first');
      const target = Buffer.alloc(message.length);
      const received = p.conn.recvBytesInto(target);
      // What had arrived is in the caller's buffer while the receive still waits for the rest.
      await until(() => target.subarray(0, half).equals(message.subarray(0, half)), 5000, 'first half in the buffer');
      expect(await stillPending(received, 20)).to.equal(true);
      await writeRaw(p.raw, message.subarray(half));
      expect(await received).to.equal(message.length);
      expect(target.equals(message)).to.equal(true);
    });

    it('writes the message into the view from its start and resolves with the byte count', async () => {
      const [a, b] = await pipe();
      await a.sendBytes(new Int32Array([42, 1729]));
      const arr = new Int32Array(5);
      expect(await b.recvBytesInto(arr)).to.equal(8);
      expect([...arr]).to.deep.equal([42, 1729, 0, 0, 0]);
    });

    it('counts offset in bytes of the view', async () => {
      const [a, b] = await pipe();
      await a.sendBytes(new Int32Array([42, 1729]));
      const arr = new Int32Array(5);
      expect(await b.recvBytesInto(arr, 4)).to.equal(8);
      expect([...arr]).to.deep.equal([0, 42, 1729, 0, 0]);
      await a.sendBytes(Buffer.from([1, 2, 3]));
      const bytes = new Uint8Array(8);
      const view = new Uint16Array(bytes.buffer, 2, 3); // bytes 2..8
      expect(await b.recvBytesInto(view, 1)).to.equal(3);
      expect([...bytes]).to.deep.equal([0, 0, 0, 1, 2, 3, 0, 0]);
    });

    it('accepts an ArrayBuffer and a DataView and writes nothing outside the view', async () => {
      const [a, b] = await pipe();
      await a.sendBytes(Buffer.from('abcd'));
      await a.sendBytes(Buffer.from('xy'));
      const ab = new ArrayBuffer(6);
      expect(await b.recvBytesInto(ab, 2)).to.equal(4);
      expect(Buffer.from(ab).toString('latin1')).to.equal('\0\0abcd');
      const backing = new Uint8Array(8).fill(9);
      expect(await b.recvBytesInto(new DataView(backing.buffer, 3, 2))).to.equal(2);
      expect([...backing]).to.deep.equal([9, 9, 9, 0x78, 0x79, 9, 9, 9]);
    });

    it('fits a message that ends exactly at the end of the view, and an empty message anywhere', async () => {
      const [a, b] = await pipe();
      await a.sendBytes(Buffer.from('wxyz'));
      await a.sendBytes(Buffer.alloc(0));
      const buf = new Uint8Array(6);
      expect(await b.recvBytesInto(buf, 2)).to.equal(4);
      expect(await b.recvBytesInto(buf, 6)).to.equal(0);
    });

    for (const when of ['already buffered', 'arriving after the call'] as const) {
      it(`rejects with BufferTooShort and hands over the whole message (${when}); the next message is unaffected`, async () => {
        const [a, b] = await pipe();
        const message = patterned(40 * KiB, 3);
        const buf = new Uint8Array(64 * KiB).fill(7);
        let pending: Promise<number>;
        if (when === 'already buffered') {
          await a.sendBytes(message);
          await b.poll(Infinity);
          pending = b.recvBytesInto(buf, 30 * KiB);
        } else {
          pending = b.recvBytesInto(buf, 30 * KiB);
          await tick();
          await a.sendBytes(message);
        }
        const err = await rejectionOf(pending);
        expect(err).to.be.instanceOf(BufferTooShort);
        expect(err).to.be.instanceOf(MpconnError);
        expect(err.code).to.equal('ERR_BUFFER_TOO_SHORT');
        expect(Buffer.isBuffer(err.data)).to.equal(true);
        expect((err.data as Buffer).equals(message)).to.equal(true);
        expect(buf.every((x) => x === 7)).to.equal(true);
        expect(b.readable).to.equal(true);
        await a.sendBytes(Buffer.from('next'));
        expect((await b.recvBytes()).toString()).to.equal('next');
      });
    }

    it('receives a large message straight into the view, intact', async () => {
      const [a, b] = await pipe();
      const message = patterned(3 * MiB + 5, 11);
      const buf = new Uint8Array(4 * MiB);
      const pending = b.recvBytesInto(buf, 100);
      await a.sendBytes(message);
      expect(await pending).to.equal(message.length);
      expect(Buffer.from(buf.buffer, 100, message.length).equals(message)).to.equal(true);
    });

    it('never writes into the caller’s buffer after the receive settled (closed in the middle of a message)', async () => {
      const p = await peer();
      p.raw.pause(); // the far side reads nothing for now, so close() has frames to flush and data keeps arriving
      const buf = new Uint8Array(2 * MiB);
      const pending = rejectionOf(p.conn.recvBytesInto(buf));
      const wire = frame(Buffer.alloc(MiB + 1, 0x55));
      await writeRaw(p.raw, wire.subarray(0, 200 * KiB));
      await until(() => p.near.bytesRead >= 200 * KiB, 5000, 'first part read');
      void p.conn.sendBytes(Buffer.alloc(8 * MiB)).catch(() => {});
      const closing = p.conn.close();
      expectState(await pending, 'ERR_CLOSED');
      const snapshot = Buffer.from(buf);
      await writeRaw(p.raw, wire.subarray(200 * KiB));
      await until(() => p.near.bytesRead >= wire.length, 5000, 'rest read');
      expect(Buffer.from(buf).equals(snapshot)).to.equal(true);
      p.raw.resume();
      await within(closing, 10_000, 'close');
    });

    it('rejects an offset past the end or a negative offset with RangeError, consuming nothing', async () => {
      const [a, b] = await pipe();
      await a.sendBytes(Buffer.from('kept'));
      const ints = new Int32Array(2);
      expect(await rejectionOf(b.recvBytesInto(ints, 9))).to.be.instanceOf(RangeError);
      expect(await rejectionOf(b.recvBytesInto(ints, -1))).to.be.instanceOf(RangeError);
      expect(await rejectionOf(b.recvBytesInto('nope' as unknown as Uint8Array))).to.be.instanceOf(TypeError);
      expect((await b.recvBytes()).toString()).to.equal('kept');
    });
  });

  describe('end of stream', () => {
    it('rejects with EOFError when the peer closed at a message boundary, pending and later receives alike', async () => {
      const [a, b] = await pipe();
      const pending = b.recv();
      await a.close();
      const err = await rejectionOf(pending);
      expect(err).to.be.instanceOf(EOFError);
      expect(err).to.be.instanceOf(MpconnError);
      expect(err.code).to.equal('ERR_EOF');
      expect(await rejectionOf(b.recvBytes())).to.be.instanceOf(EOFError);
      expect(await rejectionOf(b.recvBytesInto(new Uint8Array(4)))).to.be.instanceOf(EOFError);
    });

    it('delivers the messages received before the peer closed first, then EOFError', async () => {
      const [a, b] = await pipe();
      for (const m of ['one', 'two', 'three']) void a.sendBytes(Buffer.from(m));
      await a.close();
      expect((await b.recvBytes()).toString()).to.equal('one');
      expect((await b.recvBytes()).toString()).to.equal('two');
      expect((await b.recvBytes()).toString()).to.equal('three');
      expect(await rejectionOf(b.recvBytes())).to.be.instanceOf(EOFError);
    });

    const truncations: [string, Buffer][] = [
      ['inside a header', header(10).subarray(0, 3)],
      ['inside a payload', Buffer.concat([header(10), Buffer.from('abc')])],
      ['after a header with no payload', header(10)],
    ];
    for (const [where, bytes] of truncations) {
      it(`rejects with ProtocolError ERR_TRUNCATED when the peer closed ${where}, after the whole messages before it`, async () => {
        const p = await peer();
        await writeRaw(p.raw, Buffer.concat([frame(Buffer.from('whole')), bytes]));
        await endRaw(p.raw);
        expect((await p.conn.recvBytes()).toString()).to.equal('whole');
        expectProtocol(await rejectionOf(p.conn.recvBytes()), 'ERR_TRUNCATED');
      });
    }

    it('settles a pending receive with ERR_TRUNCATED when the peer closes mid-frame', async () => {
      const p = await peer();
      const pending = p.conn.recv();
      await writeRaw(p.raw, Buffer.concat([header(100), Buffer.alloc(50)]));
      await tick();
      await endRaw(p.raw);
      expectProtocol(await within(rejectionOf(pending), 5000, 'recv'), 'ERR_TRUNCATED');
    });

    it('settles a pending receive when the peer resets the connection (EOFError at a boundary)', async () => {
      const p = await peer(undefined, true);
      const pending = p.conn.recvBytes();
      await writeRaw(p.raw, frame(Buffer.from('x')));
      expect((await pending).toString()).to.equal('x');
      const next = p.conn.recvBytes();
      p.raw.resetAndDestroy();
      expect(await within(rejectionOf(next), 5000, 'recvBytes')).to.be.instanceOf(EOFError);
    });

    it('settles a pending receive with ERR_TRUNCATED when the peer resets mid-frame', async () => {
      const p = await peer(undefined, true);
      const pending = p.conn.recvBytes();
      await writeRaw(p.raw, Buffer.concat([header(100), Buffer.alloc(10)]));
      await tick();
      p.raw.resetAndDestroy();
      expectProtocol(await within(rejectionOf(pending), 5000, 'recvBytes'), 'ERR_TRUNCATED');
    });

    it('can still send after the peer ended its side (half-close)', async () => {
      const p = await peer();
      await endRaw(p.raw);
      expect(await rejectionOf(p.conn.recv())).to.be.instanceOf(EOFError);
      const got = once(p.raw, 'data');
      await p.conn.sendBytes(Buffer.from('still there?'));
      const [chunk] = (await got) as [Buffer];
      expect(chunk.equals(frame(Buffer.from('still there?')))).to.equal(true);
    });

    it('rejects a frame with a negative length other than -1 with ProtocolError ERR_BAD_LENGTH', async () => {
      const p = await peer();
      await writeRaw(p.raw, Buffer.concat([frame(Buffer.from('ok')), header(-7), Buffer.alloc(20)]));
      expect((await p.conn.recvBytes()).toString()).to.equal('ok');
      expectProtocol(await rejectionOf(p.conn.recvBytes()), 'ERR_BAD_LENGTH');
      expectState(await rejectionOf(p.conn.recvBytes()), 'ERR_NOT_READABLE');
    });
  });

  describe('read-only, write-only and closed ends', () => {
    it('Pipe(false) gives [readOnly, writeOnly], and the write end sends to the read end', async () => {
      const [r, w] = await pipe(false);
      expect(r.readable).to.equal(true);
      expect(r.writable).to.equal(false);
      expect(w.readable).to.equal(false);
      expect(w.writable).to.equal(true);
      await w.send('one way');
      expect(await r.recv()).to.equal('one way');
    });

    it('rejects sends on a read-only end with ERR_READ_ONLY', async () => {
      const [r] = await pipe(false);
      expectState(await rejectionOf(r.send(1)), 'ERR_READ_ONLY');
      expectState(await rejectionOf(r.sendBytes(new Uint8Array(1))), 'ERR_READ_ONLY');
      expectState(await rejectionOf(r.send_bytes(new Uint8Array(1))), 'ERR_READ_ONLY');
    });

    it('rejects receives and poll on a write-only end with ERR_WRITE_ONLY', async () => {
      const [, w] = await pipe(false);
      expectState(await rejectionOf(w.recv()), 'ERR_WRITE_ONLY');
      expectState(await rejectionOf(w.recvBytes()), 'ERR_WRITE_ONLY');
      expectState(await rejectionOf(w.recvBytesInto(new Uint8Array(4))), 'ERR_WRITE_ONLY');
      expectState(await rejectionOf(w.poll()), 'ERR_WRITE_ONLY');
    });

    it('rejects every call with ERR_CLOSED once closed on this side', async () => {
      const [a] = await pipe();
      await a.close();
      expect(a.closed).to.equal(true);
      expectState(await rejectionOf(a.send(1)), 'ERR_CLOSED');
      expectState(await rejectionOf(a.sendBytes(new Uint8Array(1))), 'ERR_CLOSED');
      expectState(await rejectionOf(a.recv()), 'ERR_CLOSED');
      expectState(await rejectionOf(a.recvBytes()), 'ERR_CLOSED');
      expectState(await rejectionOf(a.recvBytesInto(new Uint8Array(1))), 'ERR_CLOSED');
      expectState(await rejectionOf(a.poll()), 'ERR_CLOSED');
      let thrown: unknown;
      try {
        a.fileno();
      } catch (err) {
        thrown = err;
      }
      expectState(thrown, 'ERR_CLOSED');
    });

    it('ERR_CLOSED wins over the direction of a one-way end', async () => {
      const [r, w] = await pipe(false);
      await r.close();
      await w.close();
      expectState(await rejectionOf(r.send(1)), 'ERR_CLOSED');
      expectState(await rejectionOf(w.recv()), 'ERR_CLOSED');
    });
  });

  describe('aborted and timed-out receives', () => {
    it('rejects with the signal’s reason and loses no message', async () => {
      const [a, b] = await pipe();
      const controller = new AbortController();
      const reason = new Error('changed my mind');
      const aborted = b.recv({ signal: controller.signal });
      controller.abort(reason);
      expect(await rejectionOf(aborted)).to.equal(reason);
      await a.send('kept');
      expect(await b.recv()).to.equal('kept');
    });

    it('rejects at once when the signal is already aborted, consuming nothing', async () => {
      const [a, b] = await pipe();
      await a.send('buffered');
      await b.poll(Infinity);
      const reason = new Error('too late');
      expect(await rejectionOf(b.recv({ signal: AbortSignal.abort(reason) }))).to.equal(reason);
      expect(await b.recv()).to.equal('buffered');
    });

    it('rejects with a DOMException named TimeoutError after timeout ms and loses no message', async () => {
      const [a, b] = await pipe();
      const err = await rejectionOf(b.recv({ timeout: 10 }));
      expect(err).to.be.instanceOf(DOMException);
      expect(err.name).to.equal('TimeoutError');
      await a.send('after the timeout');
      expect(await b.recv()).to.equal('after the timeout');
    });

    it('waits for a timeout longer than setTimeout can hold (2**31 ms and more) instead of firing at once', async () => {
      const [a, b] = await pipe();
      const later = b.recv({ timeout: 2 ** 31 + 1000 });
      expect(await stillPending(later)).to.equal(true);
      await a.send('in time');
      expect(await later).to.equal('in time');
    });

    it('accepts AbortSignal.timeout() and rejects with its TimeoutError', async () => {
      const [a, b] = await pipe();
      const err = await rejectionOf(b.recv({ signal: AbortSignal.timeout(10) }));
      expect(err.name).to.equal('TimeoutError');
      await a.send('still here');
      expect(await b.recv()).to.equal('still here');
    });

    it('removes an aborted receive from the middle of the queue; the others keep their order', async () => {
      const [a, b] = await pipe();
      const controller = new AbortController();
      const first = b.recv();
      const second = b.recv({ signal: controller.signal });
      const third = b.recv();
      controller.abort(new Error('second gives up'));
      await rejectionOf(second);
      await a.send(1);
      await a.send(2);
      expect(await first).to.equal(1);
      expect(await third).to.equal(2);
    });

    it('loses no message when a receive is aborted while its message is half received', async () => {
      const p = await peer();
      const message = patterned(200 * KiB, 5);
      const controller = new AbortController();
      const aborted = p.conn.recv({ signal: controller.signal });
      const into = new Uint8Array(300 * KiB);
      const next = p.conn.recvBytesInto(into, 10);
      const wire = frame(message);
      await writeRaw(p.raw, wire.subarray(0, 100 * KiB));
      await tick();
      controller.abort(new Error('stop'));
      await rejectionOf(aborted);
      await writeRaw(p.raw, wire.subarray(100 * KiB));
      expect(await next).to.equal(message.length);
      expect(Buffer.from(into.buffer, 10, message.length).equals(message)).to.equal(true);
    });

    it('gives a message to the next receive when the one before it timed out just before it arrived', async () => {
      const p = await peer();
      const timedOut = rejectionOf(p.conn.recvBytes(undefined, { timeout: 5 }));
      // The next receive is queued as soon as the first one rejects, before the loop reads the socket again.
      const next = timedOut.then(() => p.conn.recvBytes());
      await tick(); // from the check phase, the loop runs its timers before it next reads a socket
      p.raw.write(frame(Buffer.from('for next'))); // into the kernel at once: the socket is idle
      // Held past the timeout with the message already there: the timer fires first, then the message is read.
      const heldUntil = Date.now() + 30;
      while (Date.now() < heldUntil);
      expect((await timedOut).name).to.equal('TimeoutError');
      expect((await next).toString()).to.equal('for next');
      await writeRaw(p.raw, frame(Buffer.from('and the one after')));
      expect((await p.conn.recvBytes()).toString()).to.equal('and the one after');
    });

    it('validates its options: a non-signal is a TypeError, NaN timeout a RangeError', async () => {
      const [, b] = await pipe();
      expect(await rejectionOf(b.recv({ signal: 'x' as unknown as AbortSignal }))).to.be.instanceOf(TypeError);
      expect(await rejectionOf(b.recv({ signal: {} as AbortSignal }))).to.be.instanceOf(TypeError);
      expect(await rejectionOf(b.recv({ timeout: Number.NaN }))).to.be.instanceOf(RangeError);
      expect(await rejectionOf(b.recv({ timeout: '5' as unknown as number }))).to.be.instanceOf(TypeError);
    });
  });

  describe('concurrent sends and receives', () => {
    it('never interleaves frames of many concurrent sendBytes of different sizes (up to > 64 KiB)', async () => {
      const [a, b] = await pipe();
      const sizes = [0, 1, 100, 16 * KiB - 4, 16 * KiB, 16 * KiB + 1, 64 * KiB - 1, 64 * KiB, 64 * KiB + 1, 200 * KiB, MiB + 3];
      const messages = Array.from({ length: 120 }, (_, i) => patterned(sizes[i % sizes.length]!, i + 1));
      const sends = messages.map((m) => a.sendBytes(m));
      const received: Buffer[] = [];
      for (let i = 0; i < messages.length; i++) received.push(await b.recvBytes());
      await Promise.all(sends);
      received.forEach((r, i) => {
        expect(r.length, `message ${i} length`).to.equal(messages[i]!.length);
        expect(r.equals(messages[i]!), `message ${i}`).to.equal(true);
      });
    });

    it('keeps call order across send() and sendBytes() issued together', async () => {
      const [a, b] = await pipe();
      const big = patterned(100 * KiB, 9);
      await Promise.all([a.send('first'), a.sendBytes(big), a.send({ third: 3 }), a.sendBytes(Buffer.from('fourth'))]);
      expect(await b.recv()).to.equal('first');
      expect((await b.recvBytes()).equals(big)).to.equal(true);
      expect(await b.recv()).to.deep.equal({ third: 3 });
      expect((await b.recvBytes()).toString()).to.equal('fourth');
    });

    it('serves concurrent receives in call order, one message each, whatever their kind', async () => {
      const [a, b] = await pipe();
      const into = new Uint8Array(16);
      const calls = [b.recvBytes(), b.recv(), b.recvBytesInto(into), b.recv({ timeout: 60_000 }), b.recvBytes()];
      await a.sendBytes(Buffer.from('m0'));
      await a.send('m1');
      await a.sendBytes(Buffer.from('m2'));
      await a.send('m3');
      await a.sendBytes(Buffer.from('m4'));
      const results = await Promise.all(calls);
      expect(String(results[0])).to.equal('m0');
      expect(results[1]).to.equal('m1');
      expect(results[2]).to.equal(2);
      expect(Buffer.from(into.subarray(0, 2)).toString()).to.equal('m2');
      expect(results[3]).to.equal('m3');
      expect(String(results[4])).to.equal('m4');
    });

    it('serves receives in call order when the messages were already buffered', async () => {
      const [a, b] = await pipe();
      for (let i = 0; i < 50; i++) void a.send(i);
      await a.send('end');
      await b.poll(Infinity);
      const got = await Promise.all(Array.from({ length: 51 }, () => b.recv()));
      expect(got).to.deep.equal([...Array.from({ length: 50 }, (_, i) => i), 'end']);
    });
  });

  describe('backpressure and fairness', () => {
    for (const size of [KiB, MiB]) {
      it(`a send of ${size} bytes to a peer that does not read eventually waits, and resolves once the peer reads`, async () => {
        const [a, b] = await pipe();
        const payload = patterned(size, 1);
        const limit = 128 * MiB;
        let sent = 0;
        let blocked: Promise<void> | null = null;
        while (sent < limit) {
          const p = a.sendBytes(payload);
          sent += size;
          if (await stillPending(p, size === KiB ? 20 : 100)) {
            blocked = p;
            break;
          }
        }
        expect(blocked, `every send resolved although nobody read ${sent} bytes`).to.not.equal(null);
        let received = 0;
        const count = sent / size;
        for (let i = 0; i < count; i++) {
          const m = await b.recvBytes();
          expect(m.length).to.equal(size);
          received++;
        }
        await within(blocked!, 10_000, 'the blocked send');
        expect(received).to.equal(count);
      });
    }

    it('a loop of awaited sends lets the event loop run (other timers are not starved)', async () => {
      const [a, b] = await pipe();
      const loopTurns = countLoopTurns();
      const one = Buffer.from('x');
      for (let i = 0; i < 20_000; i++) await a.sendBytes(one);
      expect(loopTurns.stop()).to.be.greaterThan(0);
      for (let i = 0; i < 20_000; i++) await b.recvBytes();
    });

    it('a loop of awaited receives over buffered messages lets the event loop run', async () => {
      const p = await peer();
      const n = 10_000;
      const wire = Buffer.concat(Array.from({ length: n }, () => frame(Buffer.from('y'))));
      const end = ended(p.near);
      await writeRaw(p.raw, wire);
      await endRaw(p.raw);
      await end; // every frame is in the connection's inbox now
      const loopTurns = countLoopTurns();
      for (let i = 0; i < n; i++) await p.conn.recvBytes();
      expect(loopTurns.stop()).to.be.greaterThan(0);
      expect(await rejectionOf(p.conn.recvBytes())).to.be.instanceOf(EOFError);
    });

    for (const transport of ['Unix socket', 'TCP'] as const) {
      it(`sending to a peer that closed rejects eventually instead of succeeding forever (${transport})`, async () => {
        let a: Connection;
        let b: Connection;
        if (transport === 'TCP') {
          const listener = await Listener.listen(['127.0.0.1', 0]);
          open.push(listener);
          [a, b] = await Promise.all([Client(listener.address), listener.accept()]);
          open.push(a, b);
        } else {
          [a, b] = await pipe();
        }
        await b.close();
        const payload = Buffer.alloc(KiB);
        const loop = (async () => {
          for (let i = 0; i < 1_000_000; i++) await a.sendBytes(payload);
          return 'still succeeding after a million sends';
        })();
        const outcome = await within(
          loop.then(
            (v) => v,
            (err: unknown) => err,
          ),
          20_000,
          'sending to a closed peer',
        );
        expect(outcome).to.be.instanceOf(Error);
        expect(a.closed).to.equal(false);
      });
    }
  });

  describe('poll', () => {
    it('poll() and poll(0) answer at once: false with nothing buffered, true with a message, which stays there', async () => {
      const [a, b] = await pipe();
      expect(await b.poll()).to.equal(false);
      expect(await b.poll(0)).to.equal(false);
      await a.send('here');
      expect(await b.poll(Infinity)).to.equal(true);
      expect(await b.poll()).to.equal(true);
      expect(await b.poll(0)).to.equal(true);
      expect(await b.recv()).to.equal('here');
      expect(await b.poll()).to.equal(false);
    });

    it('poll(ms) resolves false when nothing arrives in time', async () => {
      const [, b] = await pipe();
      expect(await within(b.poll(20), 5000, 'poll(20)')).to.equal(false);
    });

    it('poll(ms) resolves true when a message arrives meanwhile', async () => {
      const [a, b] = await pipe();
      const polled = b.poll(30_000);
      await tick();
      await a.send('soon');
      expect(await within(polled, 10_000, 'poll(30000)')).to.equal(true);
    });

    it('poll(Infinity) and poll(null) wait until a message is ready', async () => {
      const [a, b] = await pipe();
      const inf = b.poll(Infinity);
      const none = b.poll(null as unknown as number);
      expect(await stillPending(inf, 20)).to.equal(true);
      await a.send('ready');
      expect(await inf).to.equal(true);
      expect(await none).to.equal(true);
    });

    it('is true once the peer has closed, so the next receive does not wait', async () => {
      const [a, b] = await pipe();
      const polled = b.poll(Infinity);
      await a.close();
      expect(await polled).to.equal(true);
      expect(await b.poll()).to.equal(true);
      expect(await rejectionOf(b.recv())).to.be.instanceOf(EOFError);
    });

    it('is not made true by a partial frame', async () => {
      const p = await peer();
      await writeRaw(p.raw, Buffer.concat([header(10), Buffer.from('abc')]));
      expect(await p.conn.poll(20)).to.equal(false);
      await writeRaw(p.raw, Buffer.from('defghij'));
      expect(await p.conn.poll(Infinity)).to.equal(true);
    });

    it('counts a negative timeout as 0 and validates the argument', async () => {
      const [, b] = await pipe();
      expect(await b.poll(-5)).to.equal(false);
      expect(await rejectionOf(b.poll('1' as unknown as number))).to.be.instanceOf(TypeError);
      expect(await rejectionOf(b.poll(Number.NaN))).to.be.instanceOf(RangeError);
    });

    it('rejects a pending poll with ERR_CLOSED when this side closes', async () => {
      const [, b] = await pipe();
      const polled = rejectionOf(b.poll(Infinity));
      await tick();
      await b.close();
      expectState(await polled, 'ERR_CLOSED');
    });
  });

  describe('fileno', () => {
    it('returns the OS socket descriptor of Pipe ends and TCP connections', async () => {
      const [a, b] = await pipe();
      for (const c of [a, b]) {
        const fd = c.fileno();
        expect(Number.isInteger(fd) && fd >= 0).to.equal(true);
        expect(fstatSync(fd).isSocket()).to.equal(true);
      }
      expect(a.fileno()).to.not.equal(b.fileno());
      const listener = await Listener.listen(['127.0.0.1', 0]);
      open.push(listener);
      const [client, server] = await Promise.all([Client(listener.address), listener.accept()]);
      open.push(client, server);
      expect(fstatSync(client.fileno()).isSocket()).to.equal(true);
      expect(fstatSync(server.fileno()).isSocket()).to.equal(true);
    });

    it('throws an MpconnError for a stream without a descriptor', () => {
      const [left] = memoryPair();
      const conn = Connection.fromStream(left);
      open.push(conn);
      expect(() => conn.fileno()).to.throw(MpconnError);
    });
  });

  describe('close', () => {
    it('is idempotent', async () => {
      const [a] = await pipe();
      const first = a.close();
      const second = a.close();
      await Promise.all([first, second]);
      await a.close();
      expect(a.closed).to.equal(true);
    });

    it('flushes frames still queued, then the peer sees end of stream', async () => {
      const [a, b] = await pipe();
      const big = patterned(3 * MiB, 2);
      const sends = [a.sendBytes(Buffer.from('small')), a.sendBytes(big), a.send({ last: true })];
      const closing = a.close();
      expect((await b.recvBytes()).toString()).to.equal('small');
      expect((await b.recvBytes()).equals(big)).to.equal(true);
      expect(await b.recv()).to.deep.equal({ last: true });
      expect(await rejectionOf(b.recv())).to.be.instanceOf(EOFError);
      await closing;
      await Promise.all(sends);
    });

    it('finishes when both ends close with unread data queued both ways (each side drops what it will never read)', async () => {
      const [a, b] = await pipe();
      const big = Buffer.alloc(8 * MiB, 1);
      const sends = [a.sendBytes(big), a.sendBytes(big), b.sendBytes(big), b.sendBytes(big)].map((p) => p.catch(() => {}));
      await Promise.all([a.poll(Infinity), b.poll(Infinity)]); // data is flowing both ways, and nobody reads
      await within(Promise.all([a.close(), b.close()]), 10_000, 'closing both ends');
      await within(Promise.all(sends), 10_000, 'the sends');
    });

    it('finishes after a message too long left the connection unreadable, with the peer still sending', async () => {
      const [a, b] = await pipe();
      await a.sendBytes(Buffer.alloc(100));
      expectProtocol(await rejectionOf(b.recvBytes(10)), 'ERR_MESSAGE_TOO_LONG');
      const big = Buffer.alloc(8 * MiB, 2);
      const sends = [a.sendBytes(big), b.sendBytes(big), b.sendBytes(big)].map((p) => p.catch(() => {}));
      await within(Promise.all([a.close(), b.close()]), 10_000, 'closing both ends');
      await within(Promise.all(sends), 10_000, 'the sends');
    });

    it('rejects this side’s pending receives with ERR_CLOSED', async () => {
      const [a] = await pipe();
      const pending = [a.recv(), a.recvBytes(), a.recvBytesInto(new Uint8Array(8))].map(rejectionOf);
      await a.close();
      for (const p of pending) expectState(await p, 'ERR_CLOSED');
    });

    it('reports closed, readable and writable', async () => {
      const [a] = await pipe();
      expect(a.closed).to.equal(false);
      expect(a.readable).to.equal(true);
      expect(a.writable).to.equal(true);
      await a.close();
      expect(a.closed).to.equal(true);
    });
  });

  describe('Connection.fromStream', () => {
    it('wraps a connected socket', async () => {
      const p = await peer();
      await writeRaw(p.raw, frame(Buffer.from('from raw')));
      expect((await p.conn.recvBytes()).toString()).to.equal('from raw');
      const got = once(p.raw, 'data');
      await p.conn.sendBytes(Buffer.from('to raw'));
      const [chunk] = (await got) as [Buffer];
      expect(chunk.equals(frame(Buffer.from('to raw')))).to.equal(true);
    });

    it('writes a small frame as one buffer, header and payload together', async () => {
      const p = await peer(undefined, true);
      const got = once(p.raw, 'data');
      await p.conn.sendBytes(Buffer.from('together'));
      const [chunk] = (await got) as [Buffer];
      expect(chunk.length).to.equal(4 + 'together'.length);
    });

    it('wraps any Duplex, with end of stream mapped to EOFError', async () => {
      const [left, right] = memoryPair();
      const a = Connection.fromStream(left);
      const b = Connection.fromStream(right, { serializer: 'json' });
      open.push(a, b);
      await a.sendBytes(Buffer.from('"over memory"'));
      expect(await b.recv()).to.equal('over memory');
      await a.close();
      expect(await rejectionOf(b.recv())).to.be.instanceOf(EOFError);
    });

    it('rejects something that is not a stream with TypeError', () => {
      expect(() => Connection.fromStream({} as Duplex)).to.throw(TypeError);
      expect(() => Connection.fromStream(null as unknown as Duplex)).to.throw(TypeError);
    });
  });

  describe('async iteration', () => {
    it('for await yields each message until the peer closes', async () => {
      const [a, b] = await pipe();
      for (const m of [1, 'two', { three: 3 }]) void a.send(m);
      void a.close();
      const got: unknown[] = [];
      for await (const m of b) got.push(m);
      expect(got).to.deep.equal([1, 'two', { three: 3 }]);
    });

    it('ends when this side is closed inside the loop', async () => {
      const [a, b] = await pipe();
      await a.send('only');
      const got: unknown[] = [];
      const loop = (async () => {
        for await (const m of b) {
          got.push(m);
          await b.close();
        }
      })();
      await within(loop, 5000, 'for await');
      expect(got).to.deep.equal(['only']);
    });

    it('throws a truncation instead of ending quietly', async () => {
      const p = await peer();
      await writeRaw(p.raw, Buffer.concat([frame(msgpackEncode('ok')), header(5)]));
      await endRaw(p.raw);
      const got: unknown[] = [];
      const err = await rejectionOf(
        (async () => {
          for await (const m of p.conn) got.push(m);
        })(),
      );
      expect(got).to.deep.equal(['ok']);
      expectProtocol(err, 'ERR_TRUNCATED');
    });
  });

  describe('Symbol.asyncDispose', () => {
    it('closes the connection at the end of an await using block', async () => {
      const [a, b] = await pipe();
      {
        await using conn = a;
        await conn.send('in block');
      }
      expect(a.closed).to.equal(true);
      expect(await b.recv()).to.equal('in block');
      expect(await rejectionOf(b.recv())).to.be.instanceOf(EOFError);
    });
  });

  describe('Python-compatible names', () => {
    it('send_bytes, recv_bytes and recv_bytes_into behave as sendBytes, recvBytes and recvBytesInto', async () => {
      const [a, b] = await pipe();
      await a.send_bytes(new Int32Array([7, 8, 9]), 4, 4);
      const got = await b.recv_bytes();
      expect(got.readInt32LE(0)).to.equal(8);
      expect(await rejectionOf(a.send_bytes(new Int32Array(1), 5))).to.be.instanceOf(RangeError);
      await a.send_bytes(Buffer.from('abc'));
      const into = new Uint8Array(5);
      expect(await b.recv_bytes_into(into, 2)).to.equal(3);
      expect(Buffer.from(into).toString('latin1')).to.equal('\0\0abc');
      await a.send_bytes(Buffer.from('toolong'));
      expectProtocol(await rejectionOf(b.recv_bytes(3)), 'ERR_MESSAGE_TOO_LONG');
    });
  });
});

/** Two in-memory Duplex streams wired to each other (no OS descriptor). */
function memoryPair(): [Duplex, Duplex] {
  let left!: Duplex;
  let right!: Duplex;
  const make = (other: () => Duplex): Duplex =>
    new Duplex({
      allowHalfOpen: true,
      read() {},
      write(chunk: Buffer, _encoding, callback) {
        other().push(chunk);
        callback();
      },
      final(callback) {
        other().push(null);
        callback();
      },
    });
  left = make(() => right);
  right = make(() => left);
  return [left, right];
}
