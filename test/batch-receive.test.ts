/**
 * Receives that take many messages per call (`recvBytesMany`, `recvMany`,
 * `batches()`), on real sockets: a raw peer that controls every byte
 * (`rawPeer`, a Unix socket pair), `Pipe()` ends, a spawned child and a
 * CPython peer. The batch follows the single receives' rules: call order,
 * nothing lost to an abort, the end after the messages before it.
 */
import { encode as msgpackEncode } from '@msgpack/msgpack';
import { expect } from 'chai';
import fc from 'fast-check';
import { once } from 'node:events';
import { fileURLToPath } from 'node:url';
import { type Connection, EOFError, Listener, Pipe, spawn, wait } from 'mpconn';
import { expectProtocol, expectState } from './helpers/connections.js';
import { newestPython, NO_PYTHON, runPython } from './helpers/python.js';
import { countLoopTurns, endRaw, frame, header, patterned, rawPeer, rejectionOf, stillPending, thrown, within, writeRaw, type RawPeer } from './helpers/wire.js';

const KiB = 1024;

const open: { close(): Promise<void> }[] = [];

async function peer(options?: Parameters<typeof rawPeer>[0]): Promise<RawPeer> {
  const p = await rawPeer(options);
  open.push({ close: () => p.dispose() });
  return p;
}

async function pipe(duplex = true): Promise<[Connection, Connection]> {
  const pair = await Pipe(duplex);
  open.push(...pair);
  return pair;
}

/** Frames of 'm0', 'm1', … (from `from`), written as one chunk. */
function frames(count: number, from = 0): Buffer {
  return Buffer.concat(Array.from({ length: count }, (_, i) => frame(`m${from + i}`)));
}

const texts = (batch: Buffer[]): string[] => batch.map((b) => b.toString());

/** Writes `wire` and ends the raw side; resolves once the Connection has read all of it (so it is buffered). */
async function bufferAll(p: RawPeer, wire: Buffer): Promise<void> {
  const end = once(p.near, 'end');
  await writeRaw(p.raw, wire);
  await endRaw(p.raw);
  await end;
}

const fixture = (name: string): string => fileURLToPath(new URL(`./fixtures/${name}.js`, import.meta.url));

describe('batch receives', () => {
  afterEach(async () => {
    await Promise.all(open.splice(0).map((c) => c.close().catch(() => {})));
  });

  describe('recvBytesMany', () => {
    it('resolves with every message already received, in order, then the end on the next call', async () => {
      const p = await peer();
      await bufferAll(p, frames(5));
      expect(texts(await p.conn.recvBytesMany())).to.deep.equal(['m0', 'm1', 'm2', 'm3', 'm4']);
      expect(await rejectionOf(p.conn.recvBytesMany())).to.be.instanceOf(EOFError);
      expect(await rejectionOf(p.conn.recvBytes())).to.be.instanceOf(EOFError);
    });

    it('waits for the first message as recvBytes does, then takes the rest of the chunk with it', async () => {
      const p = await peer();
      const batch = p.conn.recvBytesMany();
      expect(await stillPending(batch)).to.equal(true);
      await writeRaw(p.raw, frames(3));
      expect(texts(await within(batch, 5000, 'the batch'))).to.deep.equal(['m0', 'm1', 'm2']);
    });

    it('takes at most max messages; the rest stay for the next call', async () => {
      const p = await peer();
      await bufferAll(p, frames(10));
      expect(texts(await p.conn.recvBytesMany({ max: 4 }))).to.deep.equal(['m0', 'm1', 'm2', 'm3']);
      expect(texts(await p.conn.recvBytesMany({ max: 4 }))).to.deep.equal(['m4', 'm5', 'm6', 'm7']);
      expect(texts(await p.conn.recvBytesMany({ max: 4 }))).to.deep.equal(['m8', 'm9']);
    });

    it('a pending batch with max takes that many of a chunk, and the receives behind it the next ones', async () => {
      const p = await peer();
      const batch = p.conn.recvBytesMany({ max: 2 });
      const single = p.conn.recvBytes();
      const rest = p.conn.recvBytesMany();
      await writeRaw(p.raw, frames(6));
      expect(texts(await batch)).to.deep.equal(['m0', 'm1']);
      expect((await single).toString()).to.equal('m2');
      expect(texts(await rest)).to.deep.equal(['m3', 'm4', 'm5']);
    });

    it('pending batches of bytes, each full mid-chunk, hand the chunk on in call order: the next batch, a recvBytesInto, then the inbox', async () => {
      const p = await peer();
      const first = p.conn.recvBytesMany({ max: 2 });
      const second = p.conn.recvBytesMany({ max: 3 });
      const into = Buffer.alloc(8);
      const filled = p.conn.recvBytesInto(into);
      const last = p.conn.recvBytesMany({ max: 1 });
      const wire = Buffer.concat([frames(8), frame('long message')]);
      // The last frame goes on in a second chunk: it reaches the batch behind them all.
      await writeRaw(p.raw, wire.subarray(0, wire.length - 3));
      expect(texts(await within(first, 5000, 'the first batch'))).to.deep.equal(['m0', 'm1']);
      expect(texts(await second)).to.deep.equal(['m2', 'm3', 'm4']);
      expect(await filled).to.equal(2);
      expect(into.subarray(0, 2).toString()).to.equal('m5');
      expect(texts(await last)).to.deep.equal(['m6']);
      const behind = p.conn.recvBytesMany();
      expect(texts(await behind)).to.deep.equal(['m7']);
      const spanning = p.conn.recvBytesMany();
      expect(await stillPending(spanning)).to.equal(true);
      await writeRaw(p.raw, wire.subarray(wire.length - 3));
      expect(texts(await within(spanning, 5000, 'the batch of the spanning frame'))).to.deep.equal(['long message']);
    });

    it('a pending batch of bytes with maxlength meets a longer message mid-chunk: it resolves with those before it, a batch behind it rejects', async () => {
      const p = await peer();
      const batch = p.conn.recvBytesMany({ maxlength: 2 });
      const behind = p.conn.recvBytesMany({ maxlength: 2 });
      await writeRaw(p.raw, Buffer.concat([frames(3), frame('too long'), frames(1, 3)]));
      expect(texts(await within(batch, 5000, 'the batch'))).to.deep.equal(['m0', 'm1', 'm2']);
      expectProtocol(await rejectionOf(behind), 'ERR_MESSAGE_TOO_LONG');
    });

    it('an empty message is a message', async () => {
      const p = await peer();
      await bufferAll(p, Buffer.concat([frame(''), frame('x'), frame('')]));
      expect(texts(await p.conn.recvBytesMany())).to.deep.equal(['', 'x', '']);
    });
  });

  describe('call order', () => {
    it('serves concurrent recv, recvBytes and batch calls in call order, losing and repeating nothing', async () => {
      const [a, b] = await pipe();
      const calls: Promise<number[]>[] = [];
      for (let i = 0; i < 8; i++) {
        if (i % 4 === 0) calls.push(b.recv<number>().then((v) => [v]));
        else if (i % 4 === 1) calls.push(b.recvMany<number>({ max: 3 }));
        // msgpack writes 0..127 as one byte, the number itself.
        else if (i % 4 === 2) calls.push(b.recvBytes().then((m) => [m[0]!]));
        else calls.push(b.recvMany<number>());
      }
      let settled = 0;
      for (const call of calls) void call.then(() => settled++);
      // A burst (one chunk: a batch takes all of it), then one at a time until every call has something.
      const sent = Array.from({ length: 30 }, (_, i) => i);
      await Promise.all(sent.map((i) => a.send(i)));
      while (settled < calls.length && sent.length < 100) {
        sent.push(sent.length);
        await a.send(sent.length - 1);
        await new Promise((resolve) => setTimeout(resolve, 5));
      }
      const results: number[][] = [];
      for (const call of calls) results.push(await within(call, 5000, 'a receive'));
      for (const [i, r] of results.entries()) {
        if (i % 2 === 0) expect(r, `call ${i}`).to.have.length(1);
        else if (i % 4 === 1) expect(r.length, `call ${i}`).to.be.within(1, 3);
        else expect(r.length, `call ${i}`).to.be.greaterThan(0);
      }
      const flat = results.flat();
      expect(flat).to.deep.equal(sent.slice(0, flat.length));
      const after: number[] = [];
      while (flat.length + after.length < sent.length) after.push(...(await b.recvMany<number>()));
      expect(after).to.deep.equal(sent.slice(flat.length));
    });

    it('mixes single and batch receives over buffered messages in call order', async () => {
      const p = await peer();
      await bufferAll(p, frames(9));
      const [one, many, two, rest] = await Promise.all([
        p.conn.recvBytes(),
        p.conn.recvBytesMany({ max: 3 }),
        p.conn.recvBytes(),
        p.conn.recvBytesMany(),
      ]);
      expect(one.toString()).to.equal('m0');
      expect(texts(many)).to.deep.equal(['m1', 'm2', 'm3']);
      expect(two.toString()).to.equal('m4');
      expect(texts(rest)).to.deep.equal(['m5', 'm6', 'm7', 'm8']);
    });

    it('pending single and batch receives share one chunk in call order', async () => {
      const p = await peer();
      const one = p.conn.recvBytes();
      const many = p.conn.recvBytesMany();
      const two = p.conn.recvBytes();
      await writeRaw(p.raw, frames(5));
      expect((await one).toString()).to.equal('m0');
      // The batch was first in line for the rest of the chunk.
      expect(texts(await many)).to.deep.equal(['m1', 'm2', 'm3', 'm4']);
      expect(await stillPending(two)).to.equal(true);
      await writeRaw(p.raw, frames(1, 5));
      expect((await two).toString()).to.equal('m5');
    });
  });

  describe('abort and timeout', () => {
    it('a batch that times out rejects with a TimeoutError and loses no message', async () => {
      const p = await peer();
      const err = await rejectionOf(p.conn.recvBytesMany({ timeout: 20 }));
      expect(err).to.be.instanceOf(DOMException);
      expect(err.name).to.equal('TimeoutError');
      await writeRaw(p.raw, frames(3));
      const got: string[] = [];
      while (got.length < 3) got.push(...texts(await p.conn.recvBytesMany()));
      expect(got).to.deep.equal(['m0', 'm1', 'm2']);
    });

    it('an aborted batch leaves the line: the receives behind it get the messages', async () => {
      const p = await peer();
      const controller = new AbortController();
      const first = p.conn.recvBytes();
      const batch = p.conn.recvBytesMany({ signal: controller.signal });
      const last = p.conn.recvBytes();
      const reason = new Error('changed my mind');
      controller.abort(reason);
      expect(await rejectionOf(batch)).to.equal(reason);
      await writeRaw(p.raw, frames(2));
      expect((await first).toString()).to.equal('m0');
      expect((await last).toString()).to.equal('m1');
    });

    it('an already aborted signal rejects at once and takes nothing', async () => {
      const p = await peer();
      await bufferAll(p, frames(2));
      const reason = new Error('no');
      expect(await rejectionOf(p.conn.recvMany({ signal: AbortSignal.abort(reason) }))).to.equal(reason);
      expect(texts(await p.conn.recvBytesMany())).to.deep.equal(['m0', 'm1']);
    });
  });

  describe('end of stream and errors', () => {
    it('delivers the messages before a truncated frame, then rejects with ERR_TRUNCATED', async () => {
      const p = await peer();
      await bufferAll(p, Buffer.concat([frames(2), header(10), Buffer.from('abc')]));
      expect(texts(await p.conn.recvBytesMany())).to.deep.equal(['m0', 'm1']);
      expectProtocol(await rejectionOf(p.conn.recvBytesMany()), 'ERR_TRUNCATED');
    });

    it('a pending batch rejects with EOFError when the peer ends at a boundary', async () => {
      const p = await peer();
      const batch = p.conn.recvMany();
      await endRaw(p.raw);
      expect(await rejectionOf(batch)).to.be.instanceOf(EOFError);
    });

    it('stops before a message longer than maxlength; the call that meets it first rejects as recvBytes does and the connection is unreadable', async () => {
      const p = await peer();
      await bufferAll(p, Buffer.concat([frames(2), frame(Buffer.alloc(100)), frames(1, 3)]));
      expect(texts(await p.conn.recvBytesMany({ maxlength: 10 }))).to.deep.equal(['m0', 'm1']);
      expectProtocol(await rejectionOf(p.conn.recvBytesMany({ maxlength: 10 })), 'ERR_MESSAGE_TOO_LONG');
      expect(p.conn.readable).to.equal(false);
      expectState(await rejectionOf(p.conn.recvBytesMany()), 'ERR_NOT_READABLE');
      expectState(await rejectionOf(p.conn.recvBytes()), 'ERR_NOT_READABLE');
    });

    it('a pending batch with maxlength takes the messages before a longer one in the same chunk; the next call rejects', async () => {
      const p = await peer();
      const batch = p.conn.recvBytesMany({ maxlength: 10 });
      await writeRaw(p.raw, Buffer.concat([frames(2), frame(Buffer.alloc(100))]));
      expect(texts(await batch)).to.deep.equal(['m0', 'm1']);
      expectProtocol(await rejectionOf(p.conn.recvBytesMany({ maxlength: 10 })), 'ERR_MESSAGE_TOO_LONG');
      expect(p.conn.readable).to.equal(false);
    });

    it('a pending batch whose first message is longer than maxlength rejects at its header, and so do the receives behind it', async () => {
      const p = await peer();
      const batch = p.conn.recvBytesMany({ maxlength: 10 });
      const behind = p.conn.recvBytesMany();
      // Only the header: the message is refused before its payload arrives.
      await writeRaw(p.raw, header(1 << 20));
      expectProtocol(await rejectionOf(batch), 'ERR_MESSAGE_TOO_LONG');
      expectState(await rejectionOf(behind), 'ERR_NOT_READABLE');
      expect(p.conn.readable).to.equal(false);
    });

    it('a message over maxMessageSize: the ones before it are delivered, then the error recvBytes gives', async () => {
      const wire = Buffer.concat([frames(2), header(1000)]);
      const single = await peer({ maxMessageSize: 16 });
      await bufferAll(single, wire);
      await single.conn.recvBytes();
      await single.conn.recvBytes();
      const expected = await rejectionOf(single.conn.recvBytes());
      expectProtocol(expected, 'ERR_MESSAGE_TOO_LONG');

      const p = await peer({ maxMessageSize: 16 });
      await bufferAll(p, wire);
      expect(texts(await p.conn.recvBytesMany())).to.deep.equal(['m0', 'm1']);
      const err = await rejectionOf(p.conn.recvBytesMany());
      expectProtocol(err, expected.code);
      expect(err.message).to.equal(expected.message);
      expectState(await rejectionOf(p.conn.recvBytesMany()), 'ERR_NOT_READABLE');
    });

    it('recvMany stops before a message it cannot decode; the next call rejects with ERR_DECODE, consuming it, and the connection goes on', async () => {
      const p = await peer();
      const bad = Buffer.from([0xc1]); // never used in msgpack
      await bufferAll(p, Buffer.concat([frame(msgpackEncode({ n: 1 })), frame(msgpackEncode(2)), frame(bad), frame(msgpackEncode('three'))]));
      expect(await p.conn.recvMany()).to.deep.equal([{ n: 1 }, 2]);
      expectProtocol(await rejectionOf(p.conn.recvMany()), 'ERR_DECODE');
      expect(p.conn.readable).to.equal(true);
      expect(await p.conn.recvMany()).to.deep.equal(['three']);
    });

    it('a pending recvMany meets an undecodable message in its chunk the same way', async () => {
      const p = await peer();
      const batch = p.conn.recvMany();
      const next = p.conn.recv();
      await writeRaw(p.raw, Buffer.concat([frame(msgpackEncode(1)), frame(Buffer.from([0xc1])), frame(msgpackEncode(3))]));
      expect(await batch).to.deep.equal([1]);
      expectProtocol(await rejectionOf(next), 'ERR_DECODE');
      expect(await p.conn.recvMany()).to.deep.equal([3]);
    });

    it('recvMany({ parse }) stops before a value parse refuses; the next call with it rejects with its error', async () => {
      const [a, b] = await pipe();
      for (const v of [1, 2, 'not a number', 4]) await a.send(v);
      const parse = (v: unknown): number => {
        if (typeof v !== 'number') throw new TypeError(`not a number: ${String(v)}`);
        return v;
      };
      const got: number[] = [];
      while (got.length < 2) got.push(...(await b.recvMany({ parse })));
      expect(got).to.deep.equal([1, 2]);
      const err = await rejectionOf(b.recvMany({ parse }));
      expect(err).to.be.instanceOf(TypeError);
      expect(err.message).to.equal('not a number: not a number');
      expect(await b.recvMany({ parse })).to.deep.equal([4]);
    });

    it('decodes (and parses) each message once, also the one a batch stopped before', async () => {
      const decoded: string[] = [];
      const serializer = {
        encode: (v: unknown) => Buffer.from(JSON.stringify(v)),
        decode: (bytes: Uint8Array) => {
          const text = Buffer.from(bytes).toString();
          decoded.push(text);
          if (text === '"bad"') throw new SyntaxError('bad message');
          return JSON.parse(text) as unknown;
        },
      };
      const p = await peer({ serializer });
      await bufferAll(p, Buffer.concat(['1', '2', '"bad"', '3', '5', '6'].map((t) => frame(t))));
      const parsed: unknown[] = [];
      const parse = (v: unknown): unknown => {
        parsed.push(v);
        if (v === 5) throw new RangeError('five');
        return v;
      };
      expect(await p.conn.recvMany({ parse })).to.deep.equal([1, 2]);
      expect((await rejectionOf(p.conn.recvMany({ parse }))).message).to.equal('bad message');
      expect(await p.conn.recvMany({ parse })).to.deep.equal([3]);
      // The next call's own parse runs on the value the batch stopped before (here: none).
      expect(await p.conn.recv()).to.equal(5);
      expect(await p.conn.recvMany({ parse })).to.deep.equal([6]);
      expect(decoded).to.deep.equal(['1', '2', '"bad"', '3', '5', '6']);
      expect(parsed).to.deep.equal([1, 2, 3, 5, 6]);
    });

    it('rejects pending batches with ERR_CLOSED when this side closes, and later calls too', async () => {
      const [, b] = await pipe();
      const batch = b.recvBytesMany();
      const close = b.close();
      expectState(await rejectionOf(batch), 'ERR_CLOSED');
      await close;
      expectState(await rejectionOf(b.recvMany()), 'ERR_CLOSED');
    });

    it('rejects on the write-only end of a one-way pipe', async () => {
      const [, writer] = await pipe(false);
      expectState(await rejectionOf(writer.recvBytesMany()), 'ERR_WRITE_ONLY');
      expectState(await rejectionOf(writer.recvMany()), 'ERR_WRITE_ONLY');
    });
  });

  describe('arguments', () => {
    it('rejects a bad max, maxlength or parse with TypeError or RangeError', async () => {
      const [, b] = await pipe();
      for (const max of [0, -1, 1.5, NaN]) {
        const err = await rejectionOf(b.recvBytesMany({ max }));
        expect(err, String(max)).to.be.instanceOf(RangeError);
        expect(err.message).to.match(/^max must be a positive integer/);
      }
      expect(await rejectionOf(b.recvMany({ max: '3' as unknown as number }))).to.be.instanceOf(TypeError);
      expect(await rejectionOf(b.recvBytesMany({ maxlength: -1 }))).to.be.instanceOf(RangeError);
      expect(await rejectionOf(b.recvBytesMany({ maxlength: 'big' as unknown as number }))).to.be.instanceOf(TypeError);
      const parse = await rejectionOf(b.recvMany({ parse: 'yes' as unknown as () => number }));
      expect(parse).to.be.instanceOf(TypeError);
      expect(parse.message).to.match(/^parse must be a function/);
      expect(await rejectionOf(b.recvMany({ timeout: 'soon' as unknown as number }))).to.be.instanceOf(TypeError);
      expect(await rejectionOf(b.recvBytesMany('max' as never))).to.be.instanceOf(TypeError);
    });

    it('rejects unknown option names, naming the closest known one', async () => {
      const [, b] = await pipe();
      const err = await rejectionOf(b.recvBytesMany({ mx: 3 } as never));
      expect(err).to.be.instanceOf(TypeError);
      expect(err.message).to.equal("unknown option 'mx' (did you mean 'max'?) in recvBytesMany() options");
      // recvBytesMany gives bytes: it takes no parse.
      const noParse = await rejectionOf(b.recvBytesMany({ parse: () => 1 } as never));
      expect(noParse.message).to.match(/^unknown option 'parse'/);
      expect((await rejectionOf(b.recvMany({ maxLength: 3 } as never))).message).to.match(/did you mean 'maxlength'/);
    });

    it('batches() checks its options at the call', async () => {
      const [, b] = await pipe();
      expect(thrown(() => b.batches({ bytes: 'yes' } as never))).to.be.instanceOf(TypeError);
      expect(thrown(() => b.batches({ bytes: true, parse: () => 1 } as never))).to.be.instanceOf(TypeError);
      expect(thrown(() => b.batches({ max: 0 }))).to.be.instanceOf(RangeError);
      expect(thrown(() => b.batches({ timeout: 5 } as never)).message).to.match(/^unknown option 'timeout'/);
      expect(thrown(() => b.batches({ signal: 'stop' } as never))).to.be.instanceOf(TypeError);
    });
  });

  describe('batches()', () => {
    it('yields batches of decoded values until the peer closes, every value once and in order', async () => {
      const [a, b] = await pipe();
      const sent = Array.from({ length: 500 }, (_, i) => ({ i }));
      const sending = (async () => {
        for (const v of sent) await a.send(v);
        await a.close();
      })();
      const got: unknown[] = [];
      let batchCount = 0;
      for await (const batch of b.batches({ max: 64 })) {
        expect(batch.length).to.be.within(1, 64);
        got.push(...batch);
        batchCount++;
      }
      await sending;
      expect(got).to.deep.equal(sent);
      expect(batchCount).to.be.at.most(sent.length);
    });

    it('with bytes: true yields Buffers, and ends when this side closes', async () => {
      const [a, b] = await pipe();
      await a.sendBytes(Buffer.from('one'));
      await a.sendBytes(Buffer.from('two'));
      const got: string[] = [];
      for await (const batch of b.batches({ bytes: true })) {
        for (const m of batch) {
          expect(Buffer.isBuffer(m)).to.equal(true);
          got.push(m.toString());
        }
        if (got.length === 2) void b.close();
      }
      expect(got).to.deep.equal(['one', 'two']);
    });

    it('a signal ends the loop with its reason, and the messages after it are still there', async () => {
      const [a, b] = await pipe();
      const controller = new AbortController();
      const reason = new Error('stop');
      await a.send('first');
      const got: unknown[] = [];
      const err = await rejectionOf(
        (async () => {
          for await (const batch of b.batches({ signal: controller.signal })) {
            got.push(...batch);
            controller.abort(reason);
          }
        })(),
      );
      expect(err).to.equal(reason);
      expect(got).to.deep.equal(['first']);
      await a.send('second');
      expect(await b.recv()).to.equal('second');
    });

    it('a truncated stream ends the loop with ERR_TRUNCATED after the messages before it', async () => {
      const p = await peer();
      await bufferAll(p, Buffer.concat([frame(msgpackEncode(1)), frame(msgpackEncode(2)), header(5)]));
      const got: unknown[] = [];
      const err = await rejectionOf(
        (async () => {
          for await (const batch of p.conn.batches()) got.push(...batch);
        })(),
      );
      expect(got).to.deep.equal([1, 2]);
      expectProtocol(err, 'ERR_TRUNCATED');
    });
  });

  describe('readiness and flow control', () => {
    it('poll() and wait() see buffered messages; a batch that takes them all leaves the connection not ready', async () => {
      const [a, b] = await pipe();
      expect(await b.poll()).to.equal(false);
      const ready = wait([b]);
      await a.send(1);
      await a.send(2);
      expect(await within(ready, 5000, 'wait()')).to.deep.equal([b]);
      expect(await b.poll(Infinity)).to.equal(true);
      const got: unknown[] = [];
      while (got.length < 2) got.push(...(await b.recvMany()));
      expect(got).to.deep.equal([1, 2]);
      expect(await b.poll()).to.equal(false);
    });

    it('a pending batch takes the message that arrives, so poll() (waiting with it) does not report one left behind', async () => {
      const [a, b] = await pipe();
      const batch = b.recvMany();
      const polling = b.poll(Infinity);
      const waiting = wait([b]);
      await a.send('x');
      expect(await batch).to.deep.equal(['x']);
      expect(await stillPending(polling), 'poll()').to.equal(true);
      expect(await stillPending(waiting), 'wait()').to.equal(true);
      expect(await b.poll()).to.equal(false);
      // What arrives with no batch waiting is reported to both.
      await a.send('y');
      expect(await within(polling, 5000, 'poll()')).to.equal(true);
      expect(await within(waiting, 5000, 'wait()')).to.deep.equal([b]);
      expect(await b.recvMany()).to.deep.equal(['y']);
    });

    it('a fast writer waits while nobody reads, and taking batches resumes it: every message arrives, memory stays bounded', async () => {
      const [a, b] = await pipe();
      const payload = patterned(KiB, 7);
      const limit = 256 * 1024 * KiB;
      let sent = 0;
      let blocked: Promise<void> | null = null;
      while (sent < limit) {
        const p = a.sendBytes(payload);
        sent += payload.length;
        if (await stillPending(p, 20)) {
          blocked = p;
          break;
        }
      }
      expect(blocked, `every send resolved although nobody read ${sent} bytes`).to.not.equal(null);
      const count = sent / payload.length;
      let received = 0;
      let largest = 0;
      while (received < count) {
        const batch = await within(b.recvBytesMany(), 10_000, `a batch after ${received} of ${count} messages`);
        for (const m of batch) expect(m.equals(payload)).to.equal(true);
        received += batch.length;
        largest = Math.max(largest, batch.length);
      }
      await within(blocked!, 10_000, 'the blocked send');
      expect(received).to.equal(count);
      // The inbox holds about 1 MiB: a batch never holds all that was sent.
      expect(largest * payload.length).to.be.below(4 * 1024 * KiB);
      expect(largest).to.be.greaterThan(1);
    });

    it('a loop of batches that all resolve at once still lets the event loop run', async () => {
      const p = await peer();
      const n = 10_000;
      await bufferAll(p, Buffer.concat(Array.from({ length: n }, () => frame('y'))));
      const loopTurns = countLoopTurns();
      let got = 0;
      while (got < n) got += (await p.conn.recvBytesMany({ max: 1 })).length;
      expect(loopTurns.stop()).to.be.greaterThan(0);
      expect(await rejectionOf(p.conn.recvBytesMany())).to.be.instanceOf(EOFError);
    });

    it("keeps a spawned child alive while its batch waits ('while-waiting' keep-alive), and lets it exit after", async () => {
      const { process: child, connection } = spawn(fixture('child-batch'));
      open.push(connection);
      expect(await connection.recv({ timeout: 10_000 })).to.equal('ready');
      // The child has nothing to do but wait for the batch: it must not have exited.
      expect(await stillPending(once(child, 'exit'), 200)).to.equal(true);
      await connection.send('a');
      const [tag, batch] = (await connection.recv({ timeout: 10_000 })) as [string, unknown[]];
      expect(tag).to.equal('got');
      expect(batch).to.deep.equal(['a']);
      if (child.exitCode === null) await within(once(child, 'exit'), 10_000, 'the child to exit');
      expect(child.exitCode).to.equal(0);
    });
  });

  describe('property', () => {
    type Op = { kind: 'bytes' | 'many' | 'into' | 'abort'; max: number };
    const opArb = fc.record({ kind: fc.constantFrom<Op['kind']>('bytes', 'many', 'into', 'abort'), max: fc.integer({ min: 1, max: 6 }) });

    it('any mix of single, batch and aborted receives, over any chunking, delivers every message once and in call order', async function () {
      this.timeout(120_000);
      await fc.assert(
        fc.asyncProperty(
          fc.array(fc.integer({ min: 0, max: 40 }), { minLength: 1, maxLength: 40 }),
          fc.array(fc.integer({ min: 1, max: 60 }), { minLength: 1, maxLength: 20 }),
          fc.array(opArb, { minLength: 1, maxLength: 30 }),
          async (sizes, cuts, ops) => {
            const p = await rawPeer();
            try {
              const messages = sizes.map((n, i) => patterned(n, i + 1));
              const wire = Buffer.concat(messages.map((m) => frame(m)));
              // The wire cut where `cuts` say (cycled), written one piece at a time with receives issued in between.
              const pieces: Buffer[] = [];
              for (let at = 0, i = 0; at < wire.length; i++) {
                const n = cuts[i % cuts.length]!;
                pieces.push(wire.subarray(at, at + n));
                at += n;
              }
              const calls: { op: Op; done: Promise<{ got: Buffer[] } | { error: unknown }>; controller: AbortController | null }[] = [];
              const issue = (op: Op): void => {
                const controller = op.kind === 'abort' ? new AbortController() : null;
                let call: Promise<Buffer[]>;
                if (op.kind === 'bytes') call = p.conn.recvBytes().then((m) => [m]);
                else if (op.kind === 'into') {
                  const into = Buffer.alloc(64);
                  call = p.conn.recvBytesInto(into).then((n) => [Buffer.from(into.subarray(0, n))]);
                } else call = p.conn.recvBytesMany({ max: op.max, ...(controller !== null ? { signal: controller.signal } : {}) });
                calls.push({ op, controller, done: call.then((got) => ({ got }), (error: unknown) => ({ error })) });
              };
              let next = 0;
              for (const piece of pieces) {
                if (next < ops.length) issue(ops[next++]!);
                await writeRaw(p.raw, piece);
                await new Promise((resolve) => setImmediate(resolve));
                for (const c of calls) c.controller?.abort(new Error('aborted'));
              }
              while (next < ops.length) issue(ops[next++]!);
              await endRaw(p.raw);
              const flat: Buffer[] = [];
              for (const c of calls) {
                const r = await within(c.done, 10_000, 'a receive');
                if ('got' in r) {
                  expect(r.got.length).to.be.within(1, c.op.kind === 'bytes' || c.op.kind === 'into' ? 1 : c.op.max);
                  flat.push(...r.got);
                } else if (!(r.error instanceof EOFError)) {
                  expect(c.op.kind, String(r.error)).to.equal('abort');
                  expect((r.error as Error).message).to.equal('aborted');
                }
              }
              for (;;) {
                const r = await p.conn.recvBytesMany().then((got) => got, (error: unknown) => error);
                if (r instanceof EOFError) break;
                flat.push(...(r as Buffer[]));
              }
              expect(flat.length).to.equal(messages.length);
              for (const [i, m] of flat.entries()) expect(m.equals(messages[i]!), `message ${i}`).to.equal(true);
            } finally {
              await p.dispose();
            }
          },
        ),
        { numRuns: 40 },
      );
    });
  });

  describe('with a CPython peer', () => {
    const py = newestPython();
    if (py === undefined) {
      it(NO_PYTHON);
      return;
    }
    it(`receives ${2000} messages from Python ${py.version}'s send_bytes and send (pickle) in batches, all in order`, async function () {
      this.timeout(60_000);
      const listener = await Listener.listen(null, { family: 'AF_UNIX', serializer: 'pickle' });
      open.push(listener);
      const child = runPython(
        py,
        String.raw`
import struct, sys
from multiprocessing.connection import Client
n = int(sys.argv[2])
with Client(sys.argv[1]) as conn:
    for i in range(n):
        conn.send_bytes(struct.pack('!I', i) * 4)
with Client(sys.argv[1]) as conn:
    for i in range(n):
        conn.send((i, 'x' * (i % 7)))
print('done')
`,
        [listener.address as string, '2000'],
      );
      const bytes = await within(listener.accept(), 20_000, 'the first Python connection');
      open.push(bytes);
      let i = 0;
      let batches = 0;
      for await (const batch of bytes.batches({ bytes: true })) {
        batches++;
        for (const m of batch) {
          expect(m.length).to.equal(16);
          expect(m.readUInt32BE(12)).to.equal(i++);
        }
      }
      expect(i).to.equal(2000);
      expect(batches).to.be.below(2000);
      const values = await within(listener.accept(), 20_000, 'the second Python connection');
      open.push(values);
      i = 0;
      for (;;) {
        let batch: unknown[];
        try {
          batch = await values.recvMany({ max: 100 });
        } catch (err) {
          expect(err).to.be.instanceOf(EOFError);
          break;
        }
        expect(batch.length).to.be.within(1, 100);
        for (const v of batch) {
          expect((v as { length: number }).length).to.equal(2);
          expect((v as unknown[])[0]).to.equal(i);
          expect((v as unknown[])[1]).to.equal('x'.repeat(i % 7));
          i++;
        }
      }
      expect(i).to.equal(2000);
      expect(await within(child.line(), 20_000, 'python done')).to.equal('done');
    });
  });
});
