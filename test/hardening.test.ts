/**
 * Hardening: what a hostile peer or a careless caller does must neither crash,
 * hang nor silently corrupt. Each test reproduces one attack, checks the bound
 * or the clear error, then that the connection (or listener) still serves the
 * next message (or client). The heavy, memory-measuring ones live in
 * test/stress/hardening.test.ts.
 */
import { expect } from 'chai';
import { once } from 'node:events';
import { existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import net from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import {
  AuthenticationError,
  Client,
  Connection,
  ConnectionStateError,
  Listener,
  MpconnError,
  Pipe,
  ProtocolError,
  PyObject,
  UnpicklingError,
  type Serializer,
} from 'mpconn';
import fc from 'fast-check';
import { FrameDecoder } from '../src/internal.js';
import { CHALLENGE, floodingListener } from './helpers/auth-raw.js';
import { depthOf, nested } from './helpers/deep.js';
import { forEachPython, runPython, type Python } from './helpers/python.js';
import { fdCount } from './stress/helpers.js';
import { frame, header, patterned, rawPeer, rejectionOf, until, within, writeRaw } from './helpers/wire.js';

const MiB = 1 << 20;
const DEFAULT_MAX_DEPTH = 10_000;

describe('hardening: decoders limit nesting depth', function () {
  this.timeout(30_000);

  for (const serializer of ['msgpack', 'json', 'pickle'] as const) {
    const errorClass = serializer === 'pickle' ? UnpicklingError : ProtocolError;
    const code = serializer === 'pickle' ? 'ERR_UNPICKLING' : 'ERR_DECODE';

    it(`${serializer}: decodes ${DEFAULT_MAX_DEPTH} levels, rejects ${DEFAULT_MAX_DEPTH + 1} and a 5,000,000-level bomb with ${code}, then receives the next message`, async () => {
      const [a, b] = await Pipe(true, { serializer });
      try {
        await a.sendBytes(nested(serializer, DEFAULT_MAX_DEPTH));
        expect(depthOf(await b.recv())).to.equal(DEFAULT_MAX_DEPTH);
        for (const depth of [DEFAULT_MAX_DEPTH + 1, 5_000_000]) {
          await a.sendBytes(nested(serializer, depth));
          const err = await rejectionOf(b.recv());
          expect(err, `depth ${depth}`).to.be.instanceOf(errorClass);
          expect(err.code).to.equal(code);
          expect(err.message).to.match(/nested more than 10000 levels deep/);
          await a.send({ after: depth });
          expect(await b.recv()).to.deep.equal({ after: depth });
        }
      } finally {
        await a.close();
        await b.close();
      }
    });

    it(`${serializer}: the maxDepth option moves the limit (5 decodes, 6 rejects)`, async () => {
      const [a, b] = await Pipe(true, { serializer, maxDepth: 5 });
      try {
        await a.sendBytes(nested(serializer, 5));
        expect(depthOf(await b.recv())).to.equal(5);
        await a.sendBytes(nested(serializer, 6));
        const err = await rejectionOf(b.recv());
        expect(err).to.be.instanceOf(errorClass);
        expect(err.message).to.match(/maxDepth 5\b/);
        await a.send([1, [2, [3]]]);
        expect(await b.recv()).to.deep.equal([1, [2, [3]]]);
      } finally {
        await a.close();
        await b.close();
      }
    });
  }

  it('pickle: counts depth through dicts, sets and lists built by APPEND/SETITEM, not just tuples', async () => {
    const [a, b] = await Pipe(true, { serializer: 'pickle', maxDepth: 3 });
    try {
      // {'k': [[None]]} is 3 deep: EMPTY_DICT 'k' EMPTY_LIST EMPTY_LIST None APPEND APPEND SETITEM
      const three = Buffer.from([0x80, 4, 0x7d, 0x8c, 1, 0x6b, 0x5d, 0x5d, 0x4e, 0x61, 0x61, 0x73, 0x2e]);
      await a.sendBytes(three);
      expect(await b.recv()).to.deep.equal({ k: [[null]] });
      // {'k': [[[None]]]} is 4 deep
      const four = Buffer.from([0x80, 4, 0x7d, 0x8c, 1, 0x6b, 0x5d, 0x5d, 0x5d, 0x4e, 0x61, 0x61, 0x61, 0x73, 0x2e]);
      await a.sendBytes(four);
      expect(await rejectionOf(b.recv())).to.be.instanceOf(UnpicklingError);
      await a.send('next');
      expect(await b.recv()).to.equal('next');
    } finally {
      await a.close();
      await b.close();
    }
  });

  it('pickle: counts depth through objects holding the next level in list items, dict items or arguments (APPEND, SETITEMS, OBJ, INST, NEWOBJ_EX)', async () => {
    const [a, b] = await Pipe(true, { serializer: 'pickle', maxDepth: 4 });
    const C = Buffer.from('c__main__\nC\nq\x00', 'latin1'); // GLOBAL __main__.C, memoized as 0
    const record = Buffer.from('h\x00)\x81', 'latin1'); // BINGET 0, EMPTY_TUPLE, NEWOBJ: a C() record
    const key = Buffer.from('X\x01\x00\x00\x00k', 'latin1');
    const pickle = (...parts: (Buffer | string)[]): Buffer =>
      Buffer.concat([Buffer.from([0x80, 2]), C, Buffer.from('0', 'latin1'), ...parts.map((p) => (typeof p === 'string' ? Buffer.from(p, 'latin1') : p)), Buffer.from('.')]);
    const times = (n: number, part: Buffer | string): Buffer => Buffer.concat(Array.from({ length: n }, () => (typeof part === 'string' ? Buffer.from(part, 'latin1') : part)));
    // n objects, each holding the next: by APPEND (an object is two levels above the next: it, and its list items) ...
    const appended = (n: number) => pickle(times(n, record), times(n - 1, 'a'));
    // ... by SETITEMS (it, and its dict items) ...
    const setItems = (n: number) => pickle(times(n - 1, Buffer.concat([record, Buffer.from('('), key])), record, times(n - 1, 'u'));
    // ... as the argument of OBJ or INST (one level each).
    const obj = (n: number) => pickle(times(n, Buffer.from('(h\x00', 'latin1')), times(n, 'o'));
    const inst = (n: number) => pickle(times(n, '('), times(n, 'i__main__\nC\n'));
    // ... and as the argument of NEWOBJ_EX (the innermost one's empty kwargs dict one level more).
    const newobjEx = (n: number) => pickle(times(n, 'h\x00'), ')}\x92', times(n - 1, '\x85}\x92'));
    try {
      for (const [name, within, beyond] of [
        ['APPEND', appended(2), appended(3)], // 3 deep, 5 deep
        ['SETITEMS', setItems(2), setItems(3)],
        ['OBJ', obj(4), obj(5)], // 4 deep, 5 deep
        ['INST', inst(4), inst(5)],
        ['NEWOBJ_EX', newobjEx(3), newobjEx(4)], // 4 deep, 5 deep
      ] as const) {
        await a.sendBytes(within);
        expect(await b.recv(), name).to.be.instanceOf(PyObject);
        await a.sendBytes(beyond);
        const err = await rejectionOf(b.recv());
        expect(err, name).to.be.instanceOf(UnpicklingError);
        expect((err as Error).message, name).to.match(/maxDepth 4\b/);
      }
      await a.send('next');
      expect(await b.recv()).to.equal('next');
    } finally {
      await a.close();
      await b.close();
    }
  });

  it('rejects a bad maxDepth once, when the connection is made', async () => {
    for (const bad of [0, -1, 1.5, NaN]) {
      expect(await rejectionOf(Pipe(true, { maxDepth: bad })), String(bad)).to.be.instanceOf(RangeError);
    }
    expect(await rejectionOf(Pipe(true, { maxDepth: '10' as unknown as number }))).to.be.instanceOf(TypeError);
    expect(await rejectionOf(Client(['127.0.0.1', 1], { maxDepth: 0 }))).to.be.instanceOf(RangeError);
    expect(await rejectionOf(Listener.listen(['127.0.0.1', 0], { maxDepth: -5 }))).to.be.instanceOf(RangeError);
    const [a, b] = await Pipe(true, { maxDepth: Infinity });
    await a.close();
    await b.close();
  });

  describe('with a CPython peer', () => {
    // Python sends the deepest values its own encoders manage, then a bomb built by hand, then a plain message.
    const PEER = String.raw`
import json, pickle, sys
from multiprocessing.connection import Client
conn = Client(sys.argv[1], authkey=b'depth')
def nest(d):
    x = None
    for _ in range(d):
        x = [x]
    return x
conn.send(nest(300))                                          # pickle, via conn.send (CPython <= 3.12 pickles ~400 levels)
conn.send_bytes(b'\x80\x04N' + b'\x85' * 200000 + b'.')       # 200,000 nested tuples
conn.send_bytes(json.dumps(nest(300)).encode())
conn.send_bytes(b'[' * 300000)
conn.send(('after', sys.version_info[:2]))
print(conn.recv_bytes().decode())
conn.close()
`;
    forEachPython(undefined, (py: Python) => {
      it(`Python ${py.version}: its deepest values decode, its bombs reject, the connection goes on`, async () => {
        const dir = mkdtempSync(join(tmpdir(), 'mpconn-hard-'));
        const listener = await Listener.listen(join(dir, 's'), { authkey: 'depth', serializer: 'pickle' });
        const child = runPython(py, PEER, [listener.address as string]);
        try {
          const conn = await within(listener.accept(), 20_000, 'accept');
          expect(depthOf(await conn.recv())).to.equal(300);
          expect(await rejectionOf(conn.recv())).to.be.instanceOf(UnpicklingError);
          const jsonConn = JSON.parse((await conn.recvBytes()).toString());
          expect(depthOf(jsonConn)).to.equal(300);
          // the JSON serializer's check on the raw bytes (the connection here speaks pickle)
          const [x, y] = await Pipe(true, { serializer: 'json' });
          await x.sendBytes(await conn.recvBytes());
          const err = await rejectionOf(y.recv());
          expect(err).to.be.instanceOf(ProtocolError);
          expect(err.code).to.equal('ERR_DECODE');
          await x.close();
          await y.close();
          expect(await conn.recv()).to.deep.equal(['after', [3, py.minor]]);
          await conn.sendBytes(Buffer.from('ok'));
          expect(await within(child.line(), 20_000, 'python')).to.equal('ok');
          await conn.close();
        } finally {
          child.kill();
          await listener.close();
          rmSync(dir, { recursive: true, force: true });
        }
      });
    });
  });
});

describe('hardening: json refuses what it cannot carry faithfully', () => {
  const refused: [string, unknown][] = [
    ['a Map', new Map([[1, 2]])],
    ['a Set', new Set([1])],
    ['a bigint', 10n],
    ['a nested bigint', { a: [1, 2n] }],
    ['a Uint8Array', new Uint8Array([1, 2])],
    ['an ArrayBuffer', new ArrayBuffer(2)],
    ['NaN', NaN],
    ['Infinity', [Infinity]],
    ['a function', { f: () => 1 }],
    ['a symbol', [Symbol('s')]],
    ['undefined in an array', [1, undefined]],
    ['a class instance', new (class Point { x = 1 })()],
    ['a RegExp', /x/],
  ];
  for (const [what, value] of refused) {
    it(`rejects ${what} with TypeError (never sends {} or null), and the next send goes through`, async () => {
      const [a, b] = await Pipe(true, { serializer: 'json' });
      try {
        let sent: Promise<void> | undefined;
        expect(() => (sent = a.send(value))).not.to.throw();
        expect(await rejectionOf(sent!)).to.be.instanceOf(TypeError);
        await a.send({ next: true });
        expect(await b.recv()).to.deep.equal({ next: true });
      } finally {
        await a.close();
        await b.close();
      }
    });
  }

  it('sends plain data as before: objects, arrays, Date via toJSON, undefined properties left out', async () => {
    const [a, b] = await Pipe(true, { serializer: 'json' });
    try {
      const when = new Date(0);
      await a.send({ n: 1.5, s: 'é', l: [true, null], d: when, u: undefined, o: Object.assign(Object.create(null), { k: 1 }) });
      expect(await b.recv()).to.deep.equal({ n: 1.5, s: 'é', l: [true, null], d: when.toISOString(), o: { k: 1 } });
    } finally {
      await a.close();
      await b.close();
    }
  });
});

describe('hardening: destroy() and close({ timeout })', function () {
  this.timeout(30_000);

  /** Sends queued to a peer that never reads: some resolve (under the high-water mark), the rest wait for drain. */
  function flood(conn: Connection, count: number, size: number): Promise<PromiseSettledResult<void>[]> {
    const payload = Buffer.alloc(size, 0x5a);
    return Promise.allSettled(Array.from({ length: count }, () => conn.sendBytes(payload)));
  }

  it('destroy(): every pending receive and send rejects with ERR_CLOSED, at once', async () => {
    const peer = await rawPeer();
    try {
      peer.raw.pause(); // never reads
      const recv = peer.conn.recv();
      const sends = flood(peer.conn, 64, MiB);
      await until(() => peer.near.writableLength > 8 * MiB, 10_000, 'sends queued');
      peer.conn.destroy();
      const err = await rejectionOf(recv);
      expect(err).to.be.instanceOf(ConnectionStateError);
      expect(err.code).to.equal('ERR_CLOSED');
      expect(err.message).to.match(/destroyed/);
      const results = await within(sends, 10_000, 'sends settle');
      const rejected = results.filter((r) => r.status === 'rejected') as PromiseRejectedResult[];
      expect(rejected.length).to.be.above(0);
      for (const r of rejected) expect(r.reason).to.be.instanceOf(Error);
      expect(peer.conn.closed).to.equal(true);
      expect(await rejectionOf(peer.conn.send('late'))).to.have.property('code', 'ERR_CLOSED');
      await within(peer.conn.close(), 5_000, 'close after destroy');
    } finally {
      await peer.dispose();
    }
  });

  it('destroy(reason): pending calls reject with that reason', async () => {
    const peer = await rawPeer();
    try {
      peer.raw.pause();
      const recv = peer.conn.recvBytes();
      const sends = flood(peer.conn, 32, MiB);
      await until(() => peer.near.writableLength > 4 * MiB, 10_000, 'sends queued');
      const reason = new Error('shutting down');
      peer.conn.destroy(reason);
      expect(await rejectionOf(recv)).to.equal(reason);
      const results = await within(sends, 10_000, 'sends settle');
      const rejected = results.filter((r) => r.status === 'rejected') as PromiseRejectedResult[];
      expect(rejected.length).to.be.above(0);
      for (const r of rejected) expect(r.reason).to.equal(reason);
    } finally {
      await peer.dispose();
    }
  });

  it('close({ timeout }) with 64 MiB queued to a peer that never reads: close and every send settle', async () => {
    const peer = await rawPeer();
    try {
      peer.raw.pause();
      const sends = flood(peer.conn, 64, MiB);
      await until(() => peer.near.writableLength > 8 * MiB, 10_000, 'sends queued');
      await within(peer.conn.close({ timeout: 100 }), 10_000, 'close({ timeout: 100 })');
      const results = await within(sends, 10_000, 'sends settle');
      const rejected = results.filter((r) => r.status === 'rejected') as PromiseRejectedResult[];
      expect(rejected.length).to.be.above(0);
      for (const r of rejected) {
        expect(r.reason).to.be.instanceOf(ConnectionStateError);
        expect(r.reason.message).to.match(/close\(\) stopped flushing after 100 ms/);
      }
      // the peer sees the connection end
      peer.raw.resume();
      await within(once(peer.raw, 'end'), 10_000, 'peer sees the end');
    } finally {
      await peer.dispose();
    }
  });

  it('close({ timeout }) still delivers everything to a peer that reads', async () => {
    const [a, b] = await Pipe();
    const payload = Buffer.alloc(4 * MiB, 0x33);
    const sends = Array.from({ length: 8 }, () => a.sendBytes(payload));
    const closed = a.close({ timeout: 20_000 });
    for (let i = 0; i < 8; i++) expect((await b.recvBytes()).equals(payload)).to.equal(true);
    await Promise.all(sends);
    await closed;
    expect((await rejectionOf(b.recv())).name).to.equal('EOFError');
    await b.close();
  });

  it('close() rejects a bad timeout without closing', async () => {
    const [a, b] = await Pipe();
    expect(await rejectionOf(a.close({ timeout: 'soon' as unknown as number }))).to.be.instanceOf(TypeError);
    expect(a.closed).to.equal(false);
    await a.send('still open');
    expect(await b.recv()).to.equal('still open');
    await a.close();
    await b.close();
  });
});

describe('hardening: the Client caps the handshake from the first header', function () {
  this.timeout(30_000);

  it('a fake listener announcing a 1 GiB challenge and streaming it: AuthenticationError at once, having read almost nothing', async () => {
    const fake = await floodingListener(1024 * MiB, CHALLENGE);
    try {
      const err = await rejectionOf(Client(['127.0.0.1', fake.port], { authkey: 'key', timeout: 20_000 }));
      expect(err).to.be.instanceOf(AuthenticationError);
      expect(err.message).to.match(/256-byte cap/);
      expect(err.cause).to.be.instanceOf(ProtocolError);
      expect(err.cause.code).to.equal('ERR_MESSAGE_TOO_LONG');
      // What the fake could write before the client hung up is socket buffers, not the gigabyte.
      expect(fake.written()).to.be.below(64 * MiB);
    } finally {
      fake.close();
    }
    // and the next client, to a real listener, is fine
    const listener = await Listener.listen(['127.0.0.1', 0], { authkey: 'key' });
    try {
      const accepted = listener.accept();
      const conn = await Client(listener.address, { authkey: 'key' });
      const other = await accepted;
      await conn.send('hello');
      expect(await other.recv()).to.equal('hello');
      await conn.close();
      await other.close();
    } finally {
      await listener.close();
    }
  });

  it('a handshake message over 256 bytes from a client is refused by the Listener from its header too', async () => {
    const listener = await Listener.listen(['127.0.0.1', 0], { authkey: 'key' });
    const errors: unknown[] = [];
    listener.on('handshakeError', (err) => errors.push(err));
    try {
      const [, port] = listener.address as [string, number];
      const raw = net.connect(port, '127.0.0.1');
      raw.on('error', () => {});
      await once(raw, 'connect');
      raw.write(header(1024 * MiB));
      await until(() => errors.length === 1, 10_000, 'handshakeError');
      expect(errors[0]).to.be.instanceOf(ProtocolError);
      raw.destroy();
      const accepted = listener.accept();
      const conn = await Client(listener.address, { authkey: 'key' });
      await conn.send(1);
      expect(await (await accepted).recv()).to.equal(1);
      await conn.close();
    } finally {
      await listener.close();
    }
  });
});

describe('hardening: custom serializer output', () => {
  const bytes = Buffer.from([1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15, 16]);
  const big = Buffer.from(Uint8Array.from({ length: 2 * MiB }, (_, i) => (i * 7) & 0xff));
  const views: [string, () => unknown, Buffer][] = [
    ['a Buffer slice with a byteOffset', () => bytes.subarray(3, 9), bytes.subarray(3, 9)],
    ['a DataView', () => new DataView(bytes.buffer, bytes.byteOffset + 2, 5), bytes.subarray(2, 7)],
    ['an Int32Array', () => new Int32Array(bytes.buffer.slice(bytes.byteOffset, bytes.byteOffset + 16)), bytes],
    ['a Float64Array subarray', () => new Float64Array(bytes.buffer.slice(bytes.byteOffset, bytes.byteOffset + 16)).subarray(1), bytes.subarray(8)],
    ['an ArrayBuffer', () => bytes.buffer.slice(bytes.byteOffset + 4, bytes.byteOffset + 12), bytes.subarray(4, 12)],
    ['a large ArrayBuffer', () => big.buffer.slice(big.byteOffset, big.byteOffset + big.length), big],
    ['a large DataView', () => new DataView(big.buffer, big.byteOffset + 1, big.length - 1), big.subarray(1)],
  ];
  for (const [what, make, expected] of views) {
    it(`sends exactly the bytes of ${what}, and the next message`, async () => {
      const serializer: Serializer = { encode: (v) => (v === 'next' ? Buffer.from('next') : (make() as Uint8Array)), decode: (b) => b };
      const [a, b] = await Pipe(true, { serializer });
      try {
        await a.sendBytes(Buffer.alloc(64, 0xee)); // leaves bytes behind in the batch buffer
        await a.send('x');
        await a.send('next');
        expect((await b.recvBytes()).equals(Buffer.alloc(64, 0xee))).to.equal(true);
        const got = await b.recvBytes();
        expect(got.length).to.equal(expected.length);
        expect(got.equals(expected)).to.equal(true);
        expect((await b.recvBytes()).toString()).to.equal('next');
      } finally {
        await a.close();
        await b.close();
      }
    });
  }

  const wrong: [string, unknown][] = [
    ['a string', 'abc'],
    ['a number', 42],
    ['null', null],
    ['undefined', undefined],
    ['an array of numbers', [1, 2, 3]],
    ['a plain object', { length: 3 }],
  ];
  for (const [what, output] of wrong) {
    it(`rejects with TypeError (never throws) when encode returns ${what}; later sends still arrive`, async () => {
      const serializer: Serializer = { encode: (v) => (v === 'next' ? Buffer.from('next') : (output as Uint8Array)), decode: (b) => b };
      const [a, b] = await Pipe(true, { serializer });
      try {
        let sent: Promise<void> | undefined;
        expect(() => (sent = a.send('x'))).not.to.throw();
        const err = await rejectionOf(sent!);
        expect(err).to.be.instanceOf(TypeError);
        expect(err.message).to.match(/encode\(\) must return/);
        await a.send('next');
        expect((await b.recvBytes()).toString()).to.equal('next');
      } finally {
        await a.close();
        await b.close();
      }
    });
  }

  it('a serializer whose encode throws rejects the send; a later large send is not held back (the writer is never left corked)', async () => {
    let fail = true;
    const serializer: Serializer = {
      encode: () => {
        if (fail) throw new RangeError('cannot encode');
        return big;
      },
      decode: (b) => b,
    };
    const [a, b] = await Pipe(true, { serializer });
    try {
      expect(await rejectionOf(a.send(1))).to.be.instanceOf(RangeError);
      fail = false;
      await a.send(1);
      expect((await within(b.recvBytes(), 10_000, 'large frame')).equals(big)).to.equal(true);
    } finally {
      await a.close();
      await b.close();
    }
  });
});

describe('hardening: recvBytesInto with a buffer detached under it', function () {
  this.timeout(20_000);

  it('a buffer transferred while a frame is written into it fails that receive with a clear TypeError; the next message arrives', async () => {
    const peer = await rawPeer();
    try {
      const target = new Uint8Array(2 * MiB);
      const into = peer.conn.recvBytesInto(target);
      into.catch(() => {}); // settles while the rest is written; checked below
      const payload = Buffer.alloc(MiB + 4096, 0x61);
      await writeRaw(peer.raw, Buffer.concat([header(payload.length), payload.subarray(0, 300_000)]));
      await until(() => peer.near.bytesRead >= 300_004, 10_000, 'first part read');
      structuredClone(target.buffer, { transfer: [target.buffer] }); // detaches it
      expect(target.byteLength).to.equal(0);
      await writeRaw(peer.raw, Buffer.concat([payload.subarray(300_000), frame(Buffer.from('next'))]));
      const err = await rejectionOf(into);
      expect(err).to.be.instanceOf(TypeError);
      expect(err.message).to.match(/detached/);
      expect((await peer.conn.recvBytes()).toString()).to.equal('next');
      // and recvBytesInto works again with a live buffer
      const live = new Uint8Array(16);
      await writeRaw(peer.raw, frame(Buffer.from('again')));
      expect(await peer.conn.recvBytesInto(live)).to.equal(5);
    } finally {
      await peer.dispose();
    }
  });

  it('a buffer detached before the header arrives: BufferTooShort with the whole message; the next one arrives', async () => {
    const peer = await rawPeer();
    try {
      const target = new Uint8Array(64);
      const into = peer.conn.recvBytesInto(target, 8);
      into.catch(() => {});
      structuredClone(target.buffer, { transfer: [target.buffer] });
      await writeRaw(peer.raw, Buffer.concat([frame(Buffer.from('lost?')), frame(Buffer.from('next'))]));
      const err = await rejectionOf(into);
      expect(err).to.be.instanceOf(MpconnError);
      expect(err.code).to.equal('ERR_BUFFER_TOO_SHORT');
      expect(err.data.toString()).to.equal('lost?');
      expect((await peer.conn.recvBytes()).toString()).to.equal('next');
    } finally {
      await peer.dispose();
    }
  });
});

describe('hardening: Unix socket paths', function () {
  this.timeout(20_000);
  before(function () {
    // Windows has no Unix socket files: these tests show as pending there.
    if (process.platform === 'win32') this.skip();
  });
  const LIMIT = process.platform === 'linux' ? 107 : 103;

  it(`a path over ${LIMIT} bytes: RangeError ENAMETOOLONG naming the limit, nothing bound or left behind; a short one then serves`, async () => {
    const dir = mkdtempSync(join(tmpdir(), 'mpconn-hard-'));
    try {
      const long = join(dir, 'x'.repeat(121 - dir.length - 1));
      expect(Buffer.byteLength(long)).to.equal(121);
      const err = await rejectionOf(Listener.listen(long));
      expect(err).to.be.instanceOf(RangeError);
      expect(err.code).to.equal('ENAMETOOLONG');
      expect(err.message).to.include(`${LIMIT}-byte limit`);
      expect(existsSync(long)).to.equal(false);
      expect(existsSync(long.slice(0, 108))).to.equal(false);
      const clientErr = await rejectionOf(Client(long));
      expect(clientErr).to.be.instanceOf(RangeError);
      expect(clientErr.code).to.equal('ENAMETOOLONG');

      const listener = await Listener.listen(join(dir, 'ok'));
      const accepted = listener.accept();
      const conn = await Client(listener.address);
      await conn.send('ok');
      expect(await (await accepted).recv()).to.equal('ok');
      await conn.close();
      await listener.close();
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });

  it('a relative path is bound and removed as the absolute path, even after process.chdir()', async () => {
    const first = mkdtempSync(join(tmpdir(), 'mpconn-hard-'));
    const second = mkdtempSync(join(tmpdir(), 'mpconn-hard-'));
    const cwd = process.cwd();
    try {
      process.chdir(first);
      const listener = await Listener.listen('rel.sock');
      expect(listener.address).to.equal(join(first, 'rel.sock'));
      process.chdir(second);
      writeFileSync(join(second, 'rel.sock'), 'a user file');
      const accepted = listener.accept();
      const conn = await Client(join(first, 'rel.sock'));
      await conn.send('hi');
      expect(await (await accepted).recv()).to.equal('hi');
      await conn.close();
      await listener.close();
      expect(readFileSync(join(second, 'rel.sock'), 'utf8')).to.equal('a user file');
      expect(existsSync(join(first, 'rel.sock'))).to.equal(false);
    } finally {
      process.chdir(cwd);
      rmSync(first, { recursive: true, force: true });
      rmSync(second, { recursive: true, force: true });
    }
  });

  it('an embedded NUL byte: TypeError from listen and Client (an abstract name keeps its leading NUL)', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'mpconn-hard-'));
    try {
      const bad = join(dir, 'a\0b');
      const err = await rejectionOf(Listener.listen(bad));
      expect(err).to.be.instanceOf(TypeError);
      expect(err.message).to.match(/NUL/);
      expect(existsSync(join(dir, 'a'))).to.equal(false);
      expect(await rejectionOf(Client(bad))).to.be.instanceOf(TypeError);
      expect(await rejectionOf(Listener.listen('\0abstract\0tail'))).to.be.instanceOf(TypeError);
      if (process.platform === 'linux') {
        const name = `\0mpconn-hard-${process.pid}`;
        const listener = await Listener.listen(name);
        const accepted = listener.accept();
        const conn = await Client(name);
        await conn.send('abstract');
        expect(await (await accepted).recv()).to.equal('abstract');
        await conn.close();
        await listener.close();
      }
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });
});

describe('hardening: Listener maxPending', function () {
  this.timeout(30_000);

  async function silentPeers(port: number, n: number): Promise<net.Socket[]> {
    const sockets = Array.from({ length: n }, () => net.connect(port, '127.0.0.1'));
    for (const s of sockets) s.on('error', () => {}).resume();
    await Promise.all(sockets.map((s) => once(s, 'connect')));
    return sockets;
  }

  it('silent peers over maxPending are dropped oldest first (acceptError ERR_TOO_MANY_PENDING); a good client still gets in', async () => {
    const baseline = fdCount();
    const listener = await Listener.listen(['127.0.0.1', 0], { authkey: 'key', maxPending: 4, authTimeout: 60_000 });
    const dropped: [Error, unknown][] = [];
    listener.on('acceptError', (err: Error, peer: unknown) => dropped.push([err, peer]));
    const [, port] = listener.address as [string, number];
    const sockets = await silentPeers(port, 10);
    try {
      await until(() => dropped.length === 6, 10_000, '6 peers dropped');
      for (const [err, peer] of dropped) {
        expect(err).to.be.instanceOf(MpconnError);
        expect((err as MpconnError).code).to.equal('ERR_TOO_MANY_PENDING');
        expect(peer).to.be.an('array');
      }
      // the oldest ones were closed: their sockets see the end, and the listener holds 4 descriptors for the rest
      await within(Promise.all(sockets.slice(0, 6).map((s) => (s.destroyed ? null : once(s, 'close')))), 10_000, 'oldest closed');
      await until(() => fdCount() === baseline + 1 + 4 + 4, 10_000, `fds: listening socket + 4 held + 4 peers (now ${fdCount() - baseline} over the baseline)`);
      const accepted = listener.accept();
      const conn = await Client(listener.address, { authkey: 'key' });
      await conn.send('through');
      expect(await (await within(accepted, 10_000, 'accept')).recv()).to.equal('through');
      await conn.close();
    } finally {
      for (const s of sockets) s.destroy();
      await listener.close();
    }
  });

  it('queued peers that leave before accept() give their descriptors back; one that sent a message and left is still accepted with it', async () => {
    const listener = await Listener.listen(['127.0.0.1', 0]);
    const [, port] = listener.address as [string, number];
    const baseline = fdCount();
    const errors: unknown[] = [];
    listener.on('acceptError', (err) => errors.push(err));
    try {
      const sockets = await silentPeers(port, 20);
      await until(() => fdCount() === baseline + 40, 10_000, '20 peers queued (20 fds each side)');
      for (const s of sockets) s.end();
      await until(() => fdCount() === baseline, 10_000, `queued peers dropped (now ${fdCount() - baseline} fds over the baseline)`);
      // a Python-style peer: send, then close, before the server accepts
      const raw = net.connect(port, '127.0.0.1');
      await once(raw, 'connect');
      await writeRaw(raw, frame(Buffer.from([0xa4, 0x6c, 0x61, 0x73, 0x74]))); // msgpack 'last'
      raw.end();
      await once(raw, 'close');
      const conn = await within(listener.accept(), 10_000, 'accept');
      expect(await conn.recv()).to.equal('last');
      expect((await rejectionOf(conn.recv())).name).to.equal('EOFError');
      await conn.close();
      expect(errors).to.deep.equal([]);
      for (const s of sockets) s.destroy();
    } finally {
      await listener.close();
    }
  });
});

describe('hardening: a long frame in pieces of every size', () => {
  it('is reassembled exactly whatever the mix of tiny (copied) and large (kept) chunks', () => {
    fc.assert(
      fc.property(
        fc.integer({ min: MiB + 1, max: 3 * MiB }),
        fc.array(fc.oneof(fc.integer({ min: 1, max: 64 }), fc.integer({ min: 16 * 1024, max: 300_000 })), { minLength: 1, maxLength: 80 }),
        fc.integer(),
        (length, sizes, seed) => {
          const payload = patterned(length, seed);
          const stream = Buffer.concat([header(length), payload, frame(Buffer.from('next'))]);
          const got: Buffer[] = [];
          const decoder = new FrameDecoder(
            { header: () => null, frame: (p) => got.push(Buffer.from(p)), error: (err) => { throw err; } },
            Infinity,
          );
          let pos = 0;
          for (let i = 0; pos < stream.length; i++) {
            const n = sizes[i % sizes.length]!;
            // each chunk a Buffer of its own, as a socket delivers them
            decoder.push(Buffer.from(stream.subarray(pos, pos + n)));
            pos += n;
          }
          expect(got).to.have.length(2);
          expect(got[0]!.equals(payload)).to.equal(true);
          expect(got[1]!.toString()).to.equal('next');
        },
      ),
      { numRuns: 30 },
    );
  });
});
