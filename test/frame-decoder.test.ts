import { expect } from 'chai';
import fc from 'fast-check';
import { Pipe, ProtocolError } from 'mpconn';
import { FrameDecoder, type FrameHandler, writeHeader } from '../src/internal.js';
import { endRaw, frame, header, longFrame, longHeader, patterned, rawPeer, writeRaw } from './helpers/wire.js';

interface Recorded {
  frames: Buffer[];
  direct: boolean[];
  headers: number[];
  errors: ProtocolError[];
}

/** A decoder that records what it reports; `onHeader` decides where payloads go. */
function recording(
  maxMessageSize = Number.MAX_SAFE_INTEGER,
  onHeader: (length: number) => Uint8Array | null | false = () => null,
): { decoder: FrameDecoder; seen: Recorded } {
  const seen: Recorded = { frames: [], direct: [], headers: [], errors: [] };
  const handler: FrameHandler = {
    header(length) {
      seen.headers.push(length);
      return onHeader(length);
    },
    frame(payload, direct) {
      // Payloads may be views of the pushed chunk: keep a copy, as a consumer that outlives the chunk would.
      seen.frames.push(Buffer.from(payload));
      seen.direct.push(direct);
    },
    error(err) {
      seen.errors.push(err);
    },
  };
  return { decoder: new FrameDecoder(handler, maxMessageSize), seen };
}

function pushBytewise(decoder: FrameDecoder, bytes: Buffer): void {
  for (let i = 0; i < bytes.length; i++) decoder.push(bytes.subarray(i, i + 1));
}

describe('FrameDecoder', () => {
  describe('short frames (4-byte big-endian signed length)', () => {
    it('decodes several frames that arrive in one chunk', () => {
      const { decoder, seen } = recording();
      decoder.push(Buffer.concat([frame(Buffer.from('hello')), frame(Buffer.from('')), frame(Buffer.from('world!'))]));
      expect(seen.frames.map(String)).to.deep.equal(['hello', '', 'world!']);
      expect(seen.headers).to.deep.equal([5, 0, 6]);
      expect(decoder.atBoundary).to.equal(true);
    });

    it('hands over a payload that lies inside one chunk as a view of that chunk, not a copy', () => {
      const views: Buffer[] = [];
      const decoder = new FrameDecoder({ header: () => null, frame: (p) => views.push(p), error: () => {} }, 1 << 30);
      const chunk = frame(Buffer.from('in place'));
      decoder.push(chunk);
      expect(views).to.have.length(1);
      expect(views[0]!.buffer).to.equal(chunk.buffer);
      expect(views[0]!.toString()).to.equal('in place');
    });

    it('hands over views that are Buffers like any other, at the right bytes of a chunk that is itself a view', () => {
      const views: Buffer[] = [];
      const decoder = new FrameDecoder({ header: () => null, frame: (p) => views.push(p), error: () => {} }, 1 << 30);
      const wire = Buffer.concat([Buffer.from('pad'), frame(Buffer.from('one')), frame(Buffer.from('')), frame(Buffer.from('three'))]);
      const chunk = wire.subarray(3);
      decoder.push(chunk);
      expect(views.map(String)).to.deep.equal(['one', '', 'three']);
      for (const v of views) {
        expect(Object.getPrototypeOf(v)).to.equal(Buffer.prototype);
        expect(v.buffer).to.equal(wire.buffer);
      }
      expect(views[0]!.byteOffset).to.equal(chunk.byteOffset + 4);
      expect(views[2]!.byteOffset).to.equal(chunk.byteOffset + 15);
      expect(views[2]!.subarray(1, 3).toString()).to.equal('hr');
    });

    it('reassembles a header split at every possible byte', () => {
      const bytes = Buffer.concat([frame(Buffer.from('abc')), frame(Buffer.from('defgh'))]);
      for (let cut = 1; cut < bytes.length; cut++) {
        const { decoder, seen } = recording();
        decoder.push(bytes.subarray(0, cut));
        decoder.push(bytes.subarray(cut));
        expect(seen.frames.map(String), `cut at ${cut}`).to.deep.equal(['abc', 'defgh']);
      }
    });

    it('decodes a stream fed one byte at a time', () => {
      const { decoder, seen } = recording();
      pushBytewise(decoder, Buffer.concat([frame(Buffer.from('one')), frame(Buffer.alloc(0)), frame(Buffer.from('three'))]));
      expect(seen.frames.map(String)).to.deep.equal(['one', '', 'three']);
    });

    it('reads the length as signed big-endian (0x7fffffff is the largest short length)', () => {
      const { decoder, seen } = recording();
      decoder.push(header(0x7fffffff));
      expect(seen.headers).to.deep.equal([0x7fffffff]);
      expect(decoder.currentFrameLength).to.equal(0x7fffffff);
      expect(seen.errors).to.deep.equal([]);
    });
  });

  describe('zero-length frames', () => {
    it('delivers an empty payload for each, including several in a row and one at the end of a chunk', () => {
      const { decoder, seen } = recording();
      decoder.push(Buffer.concat([frame(Buffer.alloc(0)), frame(Buffer.alloc(0))]));
      decoder.push(Buffer.concat([frame(Buffer.from('x')), frame(Buffer.alloc(0))]));
      expect(seen.frames.map((f) => f.length)).to.deep.equal([0, 0, 1, 0]);
      expect(decoder.atBoundary).to.equal(true);
      expect(decoder.finish()).to.equal(null);
    });

    it('never asks the handler to fill a zero-length view', () => {
      const { decoder, seen } = recording(undefined, () => new Uint8Array(0));
      decoder.push(frame(Buffer.alloc(0)));
      expect(seen.frames).to.have.length(1);
      expect(seen.frames[0]!.length).to.equal(0);
    });
  });

  describe('long frames (-1, then an 8-byte big-endian unsigned length)', () => {
    it('decodes a hand-built long header, as CPython >= 3.8 sends above 0x7fffffff', () => {
      const { decoder, seen } = recording();
      decoder.push(Buffer.concat([longFrame(Buffer.from('long form')), frame(Buffer.from('short'))]));
      expect(seen.frames.map(String)).to.deep.equal(['long form', 'short']);
      expect(seen.headers).to.deep.equal([9, 5]);
    });

    it('decodes a long header split at every possible byte', () => {
      const bytes = longFrame(Buffer.from('split long'));
      for (let cut = 1; cut < bytes.length; cut++) {
        const { decoder, seen } = recording();
        decoder.push(bytes.subarray(0, cut));
        decoder.push(bytes.subarray(cut));
        expect(seen.frames.map(String), `cut at ${cut}`).to.deep.equal(['split long']);
      }
      const { decoder, seen } = recording();
      pushBytewise(decoder, Buffer.concat([longFrame(Buffer.alloc(0)), longFrame(Buffer.from('z'))]));
      expect(seen.frames.map(String)).to.deep.equal(['', 'z']);
    });

    it('reports a long length above the size limit as ERR_MESSAGE_TOO_LONG, even one beyond 2**53', () => {
      for (const length of [2n ** 32n + 1n, 2n ** 63n, 2n ** 64n - 1n]) {
        const { decoder, seen } = recording(2 ** 32);
        decoder.push(longHeader(length));
        expect(seen.errors, String(length)).to.have.length(1);
        expect(seen.errors[0]).to.be.instanceOf(ProtocolError);
        expect(seen.errors[0]!.code).to.equal('ERR_MESSAGE_TOO_LONG');
        expect(decoder.halted).to.equal(true);
      }
    });
  });

  describe('other negative lengths', () => {
    for (const length of [-2, -5, -(2 ** 31)]) {
      it(`rejects ${length} with ERR_BAD_LENGTH and stops decoding`, () => {
        const { decoder, seen } = recording();
        decoder.push(Buffer.concat([frame(Buffer.from('before')), header(length), frame(Buffer.from('after'))]));
        expect(seen.frames.map(String)).to.deep.equal(['before']);
        expect(seen.errors).to.have.length(1);
        expect(seen.errors[0]).to.be.instanceOf(ProtocolError);
        expect(seen.errors[0]!.code).to.equal('ERR_BAD_LENGTH');
        expect(seen.errors[0]!.message).to.include(String(length));
        expect(decoder.halted).to.equal(true);
        decoder.push(frame(Buffer.from('ignored')));
        expect(seen.frames).to.have.length(1);
      });
    }
  });

  describe('maxMessageSize', () => {
    it('accepts a frame of exactly maxMessageSize bytes', () => {
      const { decoder, seen } = recording(8);
      decoder.push(frame(Buffer.from('12345678')));
      expect(seen.frames.map(String)).to.deep.equal(['12345678']);
      expect(seen.errors).to.deep.equal([]);
    });

    it('rejects a longer frame with ERR_MESSAGE_TOO_LONG as soon as its header arrives, before any payload', () => {
      const { decoder, seen } = recording(8);
      decoder.push(Buffer.concat([frame(Buffer.from('ok')), header(9)]));
      expect(seen.frames.map(String)).to.deep.equal(['ok']);
      expect(seen.errors).to.have.length(1);
      expect(seen.errors[0]!.code).to.equal('ERR_MESSAGE_TOO_LONG');
      expect(seen.errors[0]!.message).to.include('9');
      expect(seen.headers).to.deep.equal([2]); // the handler never saw the oversized header
    });

    it('applies to long headers too', () => {
      const { decoder, seen } = recording(8);
      decoder.push(longHeader(9));
      expect(seen.errors.map((e) => e.code)).to.deep.equal(['ERR_MESSAGE_TOO_LONG']);
    });
  });

  describe('finish (end of stream)', () => {
    it('returns null at a frame boundary', () => {
      const { decoder } = recording();
      decoder.push(frame(Buffer.from('whole')));
      expect(decoder.finish()).to.equal(null);
    });

    const cases: [string, Buffer][] = [
      ['inside a short header', header(5).subarray(0, 2)],
      ['inside a long header', longHeader(5).subarray(0, 7)],
      ['right after a long header marker', longHeader(5).subarray(0, 4)],
      ['inside a payload', Buffer.concat([header(5), Buffer.from('ab')])],
      ['right after a header with no payload byte', header(5)],
    ];
    for (const [where, bytes] of cases) {
      it(`returns ERR_TRUNCATED ${where}`, () => {
        const { decoder, seen } = recording();
        decoder.push(bytes);
        const err = decoder.finish();
        expect(err).to.be.instanceOf(ProtocolError);
        expect(err!.code).to.equal('ERR_TRUNCATED');
        expect(seen.frames).to.deep.equal([]);
      });
    }
  });

  describe('payload straight into a caller view', () => {
    it('writes the payload into the view header() returns and reports it as direct', () => {
      const target = new Uint8Array(16);
      const { decoder, seen } = recording(undefined, (length) => target.subarray(4, 4 + length));
      const bytes = frame(Buffer.from('direct!'));
      decoder.push(bytes.subarray(0, 6));
      decoder.push(bytes.subarray(6));
      expect(seen.direct).to.deep.equal([true]);
      expect(Buffer.from(target.subarray(4, 11)).toString()).to.equal('direct!');
      expect(seen.frames[0]!.toString()).to.equal('direct!');
    });

    it('after detachTarget keeps what arrived in its own memory and completes the same message', () => {
      const target = new Uint8Array(10);
      const { decoder, seen } = recording(undefined, () => target);
      const bytes = frame(Buffer.from('0123456789'));
      decoder.push(bytes.subarray(0, 8)); // header + '0123'
      decoder.detachTarget();
      target.fill(0x2a); // the caller's buffer is theirs again
      decoder.push(bytes.subarray(8));
      expect(seen.direct).to.deep.equal([false]);
      expect(seen.frames.map(String)).to.deep.equal(['0123456789']);
    });

    it('stops decoding when header() returns false', () => {
      const { decoder, seen } = recording(undefined, () => false);
      decoder.push(Buffer.concat([frame(Buffer.from('a')), frame(Buffer.from('b'))]));
      expect(seen.frames).to.deep.equal([]);
      expect(seen.headers).to.deep.equal([1]);
      expect(decoder.halted).to.equal(true);
    });
  });

  describe('writeHeader (the encoder side)', () => {
    it('writes a 4-byte header up to 0x7fffffff and the -1 + 8-byte form above, as CPython does', () => {
      const buf = Buffer.alloc(12);
      expect(writeHeader(buf, 0, 0x7fffffff)).to.equal(4);
      expect(buf.readInt32BE(0)).to.equal(0x7fffffff);
      expect(writeHeader(buf, 0, 0x80000000)).to.equal(12);
      expect(buf.readInt32BE(0)).to.equal(-1);
      expect(buf.readBigUInt64BE(4)).to.equal(0x80000000n);
      const { decoder, seen } = recording();
      decoder.push(buf);
      expect(seen.headers).to.deep.equal([0x80000000]);
    });
  });

  describe('property: any messages, written as one stream and cut anywhere, decode to the same list', () => {
    const MiB = 1 << 20;
    /** Sizes from 0 B to 1 MiB, biased towards the edges that matter (empty, tiny, around 16 KiB, 64 KiB, 1 MiB). */
    const size = fc.oneof(
      fc.integer({ min: 0, max: 16 }),
      fc.integer({ min: 0, max: 70_000 }),
      fc.constantFrom(16383, 16384, 16385, 65535, 65536, 65537, MiB - 1, MiB),
      fc.integer({ min: 0, max: MiB }),
    );
    const message = fc.record({ size, seed: fc.integer(), long: fc.boolean() });
    const messages = fc.array(message, { maxLength: 12 });

    function encode(list: { size: number; seed: number; long: boolean }[]): { payloads: Buffer[]; stream: Buffer } {
      const payloads = list.map((m) => patterned(m.size, m.seed));
      const stream = Buffer.concat(payloads.map((p, i) => (list[i]!.long ? longFrame(p) : frame(p))));
      return { payloads, stream };
    }

    it('holds for arbitrary cut points', () => {
      fc.assert(
        fc.property(messages, fc.array(fc.nat(), { maxLength: 40 }), (list, rawCuts) => {
          const { payloads, stream } = encode(list);
          const cuts = [...new Set(rawCuts.map((c) => (stream.length === 0 ? 0 : c % (stream.length + 1))))].sort(
            (a, b) => a - b,
          );
          const { decoder, seen } = recording();
          let from = 0;
          for (const cut of [...cuts, stream.length]) {
            decoder.push(stream.subarray(from, cut));
            from = cut;
          }
          expect(seen.errors).to.deep.equal([]);
          expect(seen.frames.length).to.equal(payloads.length);
          seen.frames.forEach((f, i) => expect(f.equals(payloads[i]!), `message ${i}`).to.equal(true));
          expect(decoder.finish()).to.equal(null);
        }),
        { numRuns: 150 },
      );
    });

    it('holds for a stream of small messages fed in chunks of 1 to 7 bytes', () => {
      fc.assert(
        fc.property(
          fc.array(fc.record({ size: fc.integer({ min: 0, max: 40 }), seed: fc.integer(), long: fc.boolean() }), {
            maxLength: 20,
          }),
          fc.integer({ min: 1, max: 7 }),
          (list, step) => {
            const { payloads, stream } = encode(list);
            const { decoder, seen } = recording();
            for (let i = 0; i < stream.length; i += step) decoder.push(stream.subarray(i, i + step));
            expect(seen.frames.map((f) => f.toString('hex'))).to.deep.equal(payloads.map((p) => p.toString('hex')));
          },
        ),
        { numRuns: 200 },
      );
    });

    it('holds end to end through a real socket (raw writes at the cut points, recvBytes on a Connection)', async () => {
      await fc.assert(
        fc.asyncProperty(messages, fc.array(fc.nat(), { maxLength: 10 }), async (list, rawCuts) => {
          const { payloads, stream } = encode(list);
          const peer = await rawPeer();
          try {
            const cuts = [...new Set(rawCuts.map((c) => c % (stream.length + 1)))].sort((a, b) => a - b);
            const writing = (async () => {
              let from = 0;
              for (const cut of [...cuts, stream.length]) {
                await writeRaw(peer.raw, stream.subarray(from, cut));
                from = cut;
              }
              await endRaw(peer.raw);
            })();
            const received: Buffer[] = [];
            for (;;) {
              try {
                received.push(await peer.conn.recvBytes());
              } catch (err) {
                expect((err as Error).name).to.equal('EOFError');
                break;
              }
            }
            await writing;
            expect(received.length).to.equal(payloads.length);
            received.forEach((r, i) => expect(r.equals(payloads[i]!), `message ${i}`).to.equal(true));
          } finally {
            await peer.dispose();
          }
        }),
        { numRuns: 25 },
      );
    });

    it('holds end to end for concurrent sendBytes on one Connection (frames never interleave)', async () => {
      await fc.assert(
        fc.asyncProperty(messages, async (list) => {
          const { payloads } = encode(list);
          const [a, b] = await Pipe();
          try {
            const sends = payloads.map((p) => a.sendBytes(p));
            const received = await Promise.all(payloads.map(() => b.recvBytes()));
            await Promise.all(sends);
            received.forEach((r, i) => expect(r.equals(payloads[i]!), `message ${i}`).to.equal(true));
          } finally {
            await a.close();
            await b.close();
          }
        }),
        { numRuns: 25 },
      );
    });
  });
});
