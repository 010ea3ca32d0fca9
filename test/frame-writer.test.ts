/**
 * FrameWriter on its own, over a real socket pair: what reaches the peer (read
 * back with FrameDecoder), in how many writes to the socket, and when the
 * promises of `write` settle.
 */
import { expect } from 'chai';
import { once } from 'node:events';
import type net from 'node:net';
import { FrameDecoder, FrameWriter } from '../src/internal.js';
import { patterned, rejectionOf, socketPair, stillPending, tick, until, within } from './helpers/wire.js';

const KiB = 1024;
const MiB = 1024 * 1024;

/** Resolves with the next `count` payloads that arrive on `socket`. */
function framesFrom(socket: net.Socket, count: number): Promise<Buffer[]> {
  const frames: Buffer[] = [];
  return new Promise((resolve, reject) => {
    const decoder = new FrameDecoder(
      {
        header: () => null,
        frame(payload) {
          frames.push(Buffer.from(payload));
          if (frames.length === count) {
            socket.off('data', onData);
            resolve(frames);
          }
        },
        error: reject,
      },
      Number.MAX_SAFE_INTEGER,
    );
    const onData = (chunk: Buffer): void => decoder.push(chunk);
    socket.on('data', onData);
  });
}

/** Records the size of every chunk handed to `socket.write`, and still writes it. */
function recordWrites(socket: net.Socket): number[] {
  const sizes: number[] = [];
  const write = socket.write.bind(socket) as (chunk: Uint8Array, ...rest: unknown[]) => boolean;
  socket.write = ((chunk: Uint8Array, ...rest: unknown[]) => {
    sizes.push(chunk.byteLength);
    return write(chunk, ...rest);
  }) as typeof socket.write;
  return sizes;
}

describe('FrameWriter', () => {
  let near: net.Socket;
  let far: net.Socket;
  let writer: FrameWriter;
  beforeEach(async () => {
    [near, far] = await socketPair();
    far.on('error', () => {});
    writer = new FrameWriter(near);
  });
  afterEach(() => {
    near.destroy();
    far.destroy();
  });

  describe('small frames (up to 16 KiB)', () => {
    it('hands the frames written in one tick to the socket in one write, header and payload together', async () => {
      const writes = recordWrites(near);
      const payloads = Array.from({ length: 100 }, (_, i) => patterned(i * 7, i + 1));
      const arrived = framesFrom(far, payloads.length);
      const sent = payloads.map((p) => writer.write(p));
      expect(writes).to.deep.equal([]); // batched until the end of the tick
      await Promise.all(sent);
      await tick();
      expect(writes).to.deep.equal([payloads.reduce((sum, p) => sum + 4 + p.length, 0)]);
      const got = await within(arrived, 10_000, 'the frames');
      got.forEach((g, i) => expect(g.equals(payloads[i]!), `frame ${i}`).to.equal(true));
    });

    it('copies the payload: the caller may change its buffer as soon as write() returns', async () => {
      const payload = Buffer.from('as it was when written');
      const arrived = framesFrom(far, 1);
      const sent = writer.write(payload);
      payload.fill(0x2a);
      await sent;
      expect(String((await within(arrived, 10_000, 'the frame'))[0])).to.equal('as it was when written');
    });

    it('writes a payload of exactly 16 KiB with the batch, and one byte more on its own', async () => {
      const writes = recordWrites(near);
      const arrived = framesFrom(far, 3);
      const sent = [writer.write(patterned(16 * KiB, 1)), writer.write(patterned(16 * KiB + 1, 2)), writer.write(patterned(1, 3))];
      // The 16 KiB frame is flushed before the larger one so that order is kept; the larger one goes
      // as its header then its payload (corked: one writev), and the last small frame waits for the end of the tick.
      expect(writes).to.deep.equal([4 + 16 * KiB, 4, 16 * KiB + 1]);
      await Promise.all(sent);
      await tick();
      expect(writes).to.deep.equal([4 + 16 * KiB, 4, 16 * KiB + 1, 4 + 1]);
      const got = await within(arrived, 10_000, 'the frames');
      expect(got.map((g) => g.length)).to.deep.equal([16 * KiB, 16 * KiB + 1, 1]);
      expect(got[1]!.equals(patterned(16 * KiB + 1, 2))).to.equal(true);
    });

    it('flushes a full batch (64 KiB) at once, without waiting for the end of the tick', () => {
      const writes = recordWrites(near);
      for (let i = 0; i < 4; i++) void writer.write(patterned(16 * KiB - 4, i));
      expect(writes).to.deep.equal([64 * KiB]);
    });

    it('writes a reply to data that just arrived at once, and batches the frames after it', async () => {
      const writes = recordWrites(near);
      writer.expectReply();
      void writer.write(Buffer.from('reply'));
      expect(writes).to.deep.equal([4 + 5]);
      void writer.write(Buffer.from('later'));
      void writer.write(Buffer.from('later still'));
      expect(writes).to.deep.equal([4 + 5]);
      await tick();
      expect(writes).to.deep.equal([4 + 5, 4 + 5 + 4 + 11]);
    });
  });

  describe('large frames (over 16 KiB)', () => {
    /** Writes frames to a peer that does not read until the socket queues what it is given; returns how many. */
    function fillSocket(): number {
      far.pause();
      let count = 0;
      for (; near.writableLength === 0; count++) void writer.write(patterned(256 * KiB, count));
      return count;
    }

    it('resolves once the OS has the payload, so the caller may reuse its buffer then', async () => {
      const before = fillSocket();
      const payload = patterned(2 * MiB, 9);
      const original = Buffer.from(payload);
      const arrived = framesFrom(far, before + 1);
      const sent = writer.write(payload);
      expect(await stillPending(sent)).to.equal(true); // queued behind a full socket
      far.resume();
      await within(sent, 10_000, 'the write');
      payload.fill(0);
      expect((await within(arrived, 10_000, 'the frames')).at(-1)!.equals(original)).to.equal(true);
    });

    for (const [kind, make] of [
      ['a plain Uint8Array, as msgpack lends its reused buffer', (b: Buffer) => new Uint8Array(b)],
      ['a Buffer, whose slice() is a view', (b: Buffer) => Buffer.from(b)],
    ] as const) {
      it(`copies a transient payload that it writes by reference (${kind})`, async () => {
        const before = fillSocket();
        const payload = make(patterned(100 * KiB, 4));
        const original = Buffer.from(payload);
        const arrived = framesFrom(far, before + 1);
        const sent = writer.write(payload, true);
        payload.fill(0); // the serializer reuses its buffer as soon as write() returns
        far.resume();
        await within(sent, 10_000, 'the write');
        expect((await within(arrived, 10_000, 'the frames')).at(-1)!.equals(original)).to.equal(true);
      });
    }
  });

  it('keeps call order across every size, small and large frames mixed', async () => {
    const sizes = [0, 1, 100, 16 * KiB - 4, 16 * KiB, 16 * KiB + 1, 64 * KiB - 1, 64 * KiB, 64 * KiB + 1, 200 * KiB, MiB + 3];
    const payloads = Array.from({ length: 3 * sizes.length }, (_, i) => patterned(sizes[(i * 5) % sizes.length]!, i + 1));
    const arrived = framesFrom(far, payloads.length);
    await Promise.all(payloads.map((p) => writer.write(p)));
    const got = await within(arrived, 20_000, 'the frames');
    got.forEach((g, i) => expect(g.equals(payloads[i]!), `frame ${i} (${payloads[i]!.length} bytes)`).to.equal(true));
  });

  describe('backpressure', () => {
    it('makes a loop of awaited writes wait while the peer does not read, then finishes once it does', async () => {
      far.pause();
      const frameSize = 16 * KiB;
      const total = 2048; // 32 MiB: far more than the socket buffers of both ends hold
      let written = 0;
      const loop = (async () => {
        for (; written < total; written++) await writer.write(patterned(frameSize, written));
      })();
      await until(() => near.writableLength > 256 * KiB, 20_000, 'bytes queued above the high-water mark');
      expect(await stillPending(loop)).to.equal(true);
      const stalledAt = written;
      expect(await stillPending(loop)).to.equal(true);
      expect(written).to.equal(stalledAt); // held, not just slow
      expect(written * frameSize).to.be.lessThan(16 * MiB);
      const arrived = framesFrom(far, total);
      far.resume();
      await within(loop, 30_000, 'the writes once the peer reads');
      const got = await within(arrived, 30_000, 'every frame');
      expect(got.every((g, i) => g.equals(patterned(frameSize, i)))).to.equal(true);
    });

    it('rejects a write waiting for drain with the error the transport failed with', async () => {
      far.pause();
      let waiting: Promise<void> | undefined;
      while (waiting === undefined) {
        const sent = writer.write(patterned(16 * KiB, 1));
        if (near.writableLength > 256 * KiB) waiting = sent;
      }
      expect(await stillPending(waiting)).to.equal(true);
      const broken = new Error('transport broke');
      near.destroy();
      writer.fail(broken);
      expect(await within(rejectionOf(waiting), 10_000, 'the waiting write')).to.equal(broken);
    });
  });

  describe('after the transport failed or was destroyed', () => {
    it('rejects every later write with the error given to fail(), and puts nothing more on the wire', async () => {
      const writes = recordWrites(near);
      const broken = new Error('peer gone');
      writer.fail(broken);
      expect(writer.error).to.equal(broken);
      expect(await rejectionOf(writer.write(Buffer.from('small')))).to.equal(broken);
      expect(await rejectionOf(writer.write(patterned(100 * KiB, 1)))).to.equal(broken);
      writer.flush();
      expect(writes).to.deep.equal([]);
    });

    it('drops small frames batched before fail(), and builds a lazy error only when a write needs it', async () => {
      const writes = recordWrites(near);
      void writer.write(Buffer.from('never sent'));
      let built = 0;
      writer.fail(() => {
        built++;
        return new Error('built on demand');
      });
      await tick();
      expect(writes).to.deep.equal([]);
      expect(built).to.equal(0);
      const err = await rejectionOf(writer.write(Buffer.from('x')));
      expect(err).to.have.property('message', 'built on demand');
      expect(built).to.equal(1);
    });

    it('rejects a large frame written to a destroyed socket with the stream error', async () => {
      near.destroy();
      const err = await within(rejectionOf(writer.write(patterned(100 * KiB, 1))), 10_000, 'the write');
      expect(err).to.have.property('code', 'ERR_STREAM_DESTROYED');
    });
  });

  describe('end', () => {
    it('flushes the batched frames, then the peer sees end of stream', async () => {
      const arrived = framesFrom(far, 2);
      const ended = once(far, 'end');
      void writer.write(Buffer.from('one'));
      void writer.write(Buffer.from('two'));
      await within(writer.end(), 10_000, 'end()');
      expect((await arrived).map(String)).to.deep.equal(['one', 'two']);
      far.resume();
      await within(ended, 10_000, 'end of stream');
    });

    it('ends at once when every frame is with the OS: closing the socket then delivers them all, then end of stream', async () => {
      const arrived = framesFrom(far, 3);
      const ended = once(far, 'end');
      for (const word of ['one', 'two', 'three']) void writer.write(Buffer.from(word));
      expect(writer.endsAtOnce(), 'a plain socket with nothing queued').to.equal(true);
      near.destroy();
      expect((await within(arrived, 10_000, 'the frames')).map(String)).to.deep.equal(['one', 'two', 'three']);
      far.resume();
      await within(ended, 10_000, 'end of stream');
      expect(writer.endsAtOnce(), 'once ended').to.equal(false);
    });

    it('does not end at once while bytes wait for the socket: end() flushes them instead', async () => {
      far.pause();
      let count = 0;
      for (; near.writableLength === 0; count++) void writer.write(patterned(256 * KiB, count));
      expect(writer.endsAtOnce()).to.equal(false);
      const arrived = framesFrom(far, count);
      far.resume();
      await within(writer.end(), 10_000, 'end()');
      expect(await within(arrived, 10_000, 'the frames')).to.have.length(count);
    });
  });
});
