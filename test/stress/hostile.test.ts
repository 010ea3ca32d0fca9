/**
 * Hostile bytes: fast-check fuzzing of the frame decoder (random
 * bytes, random cuts), of a Connection reading them over a real socket, and
 * of the handshake (random replies to `deliverChallenge`, random challenges
 * to `answerChallenge` and to `Client`, random handshakes against a Listener
 * with an authkey). The only outcomes allowed are values, `ProtocolError`,
 * `AuthenticationError` and `EOFError` where the peer simply closed; never
 * an unhandled rejection, an uncaught exception, a hang, or a Listener that
 * stops accepting good clients.
 */
import { expect } from 'chai';
import fc from 'fast-check';
import net from 'node:net';
import {
  answerChallenge,
  AuthenticationError,
  Client,
  deliverChallenge,
  EOFError,
  Listener,
  ProtocolError,
  type Connection,
} from 'mpconn';
import { FrameDecoder, type FrameHandler, resolveSerializer } from '../../src/internal.js';
import { CHALLENGE, DIGESTS, FAILURE, hmac as mac, RawPeer, rawServer, WELCOME } from '../helpers/auth-raw.js';
import { escapes } from '../helpers/escapes.js';
import { frame, header, longHeader, outcome, rawPeer, until, within, writeRaw } from '../helpers/wire.js';
import { budget, fdCount, runFixture, scaled } from './helpers.js';

const MiB = 1 << 20;
const KEY = Buffer.from('stress: hostile bytes key');

// ---------------------------------------------------------------------------
// Streams of frames, good and bad

/** One piece of a hostile stream. */
const segment: fc.Arbitrary<Buffer> = fc.oneof(
  { weight: 4, arbitrary: fc.uint8Array({ maxLength: 80 }).map((p) => frame(p)) },
  { weight: 1, arbitrary: fc.uint8Array({ maxLength: 40 }).map((p) => Buffer.concat([longHeader(p.length), p])) },
  { weight: 1, arbitrary: fc.bigInt({ min: 0n, max: (1n << 64n) - 1n }).map((n) => longHeader(n)) },
  { weight: 1, arbitrary: fc.integer({ min: -(2 ** 31), max: -2 }).map((n) => header(n)) },
  { weight: 1, arbitrary: fc.integer({ min: 0, max: 0x7fffffff }).map((n) => header(n)) },
  { weight: 1, arbitrary: fc.constantFrom(header(-1), header(0x7fffffff), longHeader(0x7fffffff + 1), longHeader(2n ** 63n)) },
  { weight: 2, arbitrary: fc.uint8Array({ minLength: 1, maxLength: 40 }).map((b) => Buffer.from(b)) },
);
const stream = fc.array(segment, { maxLength: 10 }).map((parts) => Buffer.concat(parts));
/** Cut points, as fractions of the stream's length. */
const cuts = fc.array(fc.double({ min: 0, max: 1, noNaN: true }), { maxLength: 12 });

function cutAt(bytes: Buffer, fractions: number[]): Buffer[] {
  const points = [...new Set(fractions.map((f) => Math.floor(f * bytes.length)))].sort((a, b) => a - b);
  const pieces: Buffer[] = [];
  let from = 0;
  for (const p of [...points, bytes.length]) {
    if (p > from) pieces.push(bytes.subarray(from, p));
    from = Math.max(from, p);
  }
  return pieces;
}

interface Parsed {
  frames: Buffer[];
  /** How decoding ended: null at a clean end, else the ProtocolError code. */
  end: string | null;
}

/** A deliberately simple model of CPython's framing over the whole stream at once. */
function reference(bytes: Buffer, maxMessageSize: number): Parsed {
  const frames: Buffer[] = [];
  let pos = 0;
  for (;;) {
    if (pos === bytes.length) return { frames, end: null };
    if (bytes.length - pos < 4) return { frames, end: 'ERR_TRUNCATED' };
    let length = bytes.readInt32BE(pos);
    pos += 4;
    if (length === -1) {
      if (bytes.length - pos < 8) return { frames, end: 'ERR_TRUNCATED' };
      const long = bytes.readBigUInt64BE(pos);
      pos += 8;
      length = long > BigInt(Number.MAX_SAFE_INTEGER) ? Infinity : Number(long);
    } else if (length < 0) {
      return { frames, end: 'ERR_BAD_LENGTH' };
    }
    if (length > maxMessageSize) return { frames, end: 'ERR_MESSAGE_TOO_LONG' };
    if (bytes.length - pos < length) return { frames, end: 'ERR_TRUNCATED' };
    frames.push(bytes.subarray(pos, pos + length));
    pos += length;
  }
}

function describeError(err: unknown): string {
  const e = err as { name?: string; code?: string; message?: string };
  return `${e?.name} ${e?.code ?? ''}: ${e?.message}`;
}

describe('stress: hostile bytes', function () {
  this.timeout(budget(120_000));

  // Nothing may escape as an unhandled rejection or an uncaught exception.
  const escaped = escapes({ uncaught: true });
  afterEach(() => escaped.check());

  describe('the frame decoder, fed random bytes cut anywhere', () => {
    it('reports the same frames and the same ProtocolError as a whole-stream model, whatever the cuts; never throws', () => {
      const maxSizes = [0, 16, 1000, 0x7fffffff, Number.MAX_SAFE_INTEGER];
      fc.assert(
        fc.property(stream, cuts, fc.constantFrom(...maxSizes), fc.boolean(), (bytes, fractions, max, direct) => {
          const expected = reference(bytes, max);
          const frames: Buffer[] = [];
          const errors: ProtocolError[] = [];
          const handler: FrameHandler = {
            // Some runs give each payload a view to land in, as recvBytesInto does.
            header: (length) => (direct && length > 0 && length <= 4096 ? new Uint8Array(length) : null),
            frame: (payload) => void frames.push(Buffer.from(payload)),
            error: (err) => void errors.push(err),
          };
          const decoder = new FrameDecoder(handler, max);
          for (const piece of cutAt(bytes, fractions)) decoder.push(piece);
          const finished = decoder.finish();
          expect(frames.length).to.equal(expected.frames.length);
          frames.forEach((f, i) => expect(f.equals(expected.frames[i]!), `frame ${i}`).to.equal(true));
          const all = finished === null ? errors : [...errors, finished];
          expect(all.length, 'at most one error').to.be.at.most(1);
          for (const err of all) expect(err).to.be.instanceOf(ProtocolError);
          expect(all[0]?.code ?? null).to.equal(expected.end);
        }),
        { numRuns: scaled(2000) },
      );
    });

    it('never allocates more than what arrived plus 1 MiB, whatever a header claims', () => {
      const allocUnsafe = Buffer.allocUnsafe;
      const alloc = Buffer.alloc;
      const concat = Buffer.concat;
      let arrived = 0;
      let worst = -Infinity;
      const note = (size: number): void => void (worst = Math.max(worst, size - arrived));
      (Buffer as { allocUnsafe: typeof allocUnsafe }).allocUnsafe = (size: number) => (note(size), allocUnsafe(size));
      (Buffer as { alloc: typeof alloc }).alloc = ((size: number, ...rest: never[]) => (note(size), alloc(size, ...rest))) as typeof alloc;
      (Buffer as { concat: typeof concat }).concat = ((list: readonly Uint8Array[], total?: number) => (note(total ?? 0), concat(list, total))) as typeof concat;
      try {
        fc.assert(
          fc.property(stream, cuts, (bytes, fractions) => {
            const decoder = new FrameDecoder({ header: () => null, frame: () => {}, error: () => {} }, Number.MAX_SAFE_INTEGER);
            arrived = 0;
            for (const piece of cutAt(bytes, fractions)) {
              arrived += piece.length;
              decoder.push(piece);
            }
            decoder.finish();
          }),
          { numRuns: scaled(1000) },
        );
      } finally {
        Buffer.allocUnsafe = allocUnsafe;
        Buffer.alloc = alloc;
        Buffer.concat = concat;
      }
      expect(worst, 'bytes allocated beyond what had arrived').to.be.at.most(MiB);
    });
  });

  describe('a Connection reading random bytes over a real socket', () => {
    /** Frames of valid msgpack/JSON values mixed with garbage of every kind. */
    const value = fc.jsonValue({ maxDepth: 3 });
    const piece = fc.oneof(
      { weight: 3, arbitrary: value.map((v) => ({ kind: 'value' as const, v })) },
      { weight: 2, arbitrary: segment.map((b) => ({ kind: 'bytes' as const, b })) },
    );

    for (const serializer of ['msgpack', 'json'] as const) {
      it(`recv() with ${serializer}: each frame becomes its value or ProtocolError ERR_DECODE, the stream ends with EOFError or a ProtocolError`, async () => {
        const encoder = resolveSerializer(serializer);
        await fc.assert(
          fc.asyncProperty(fc.array(piece, { maxLength: 12 }), cuts, fc.boolean(), fc.boolean(), async (pieces, fractions, tcp, reset) => {
            const bytes = Buffer.concat(pieces.map((p) => (p.kind === 'value' ? frame(encoder.encode(p.v)) : p.b)));
            const maxMessageSize = 64 * 1024;
            const expected = reference(bytes, maxMessageSize);
            const peer = await rawPeer({ serializer, maxMessageSize }, tcp);
            try {
              const writing = (async () => {
                for (const chunk of cutAt(bytes, fractions)) await writeRaw(peer.raw, chunk);
                if (reset && tcp) peer.raw.resetAndDestroy();
                else peer.raw.end();
              })().catch(() => {});
              for (const [i, payload] of expected.frames.entries()) {
                // A fresh decoder per frame is the model: the connection's reused one must not be poisoned by garbage.
                let want: { ok: true; value: unknown } | { ok: false };
                try {
                  want = { ok: true, value: resolveSerializer(serializer).decode(payload) };
                } catch {
                  want = { ok: false };
                }
                const got = await within(outcome(peer.conn.recv()), 10_000, `frame ${i}`);
                if (reset && tcp && !got.ok && (got.error instanceof EOFError || (got.error instanceof ProtocolError && got.error.code === 'ERR_TRUNCATED'))) {
                  return; // the reset may overtake bytes still in flight: the stream ended early, cleanly reported
                }
                if (want.ok) {
                  expect(got.ok, `frame ${i}: ${got.ok ? '' : describeError(got.error)}`).to.equal(true);
                  expect((got as { value: unknown }).value).to.deep.equal(want.value);
                } else {
                  expect(got.ok, `frame ${i} is not valid ${serializer}`).to.equal(false);
                  const err = (got as { error: unknown }).error;
                  expect(err, describeError(err)).to.be.instanceOf(ProtocolError);
                  expect((err as ProtocolError).code).to.equal('ERR_DECODE');
                }
              }
              const end = await within(outcome(peer.conn.recv()), 10_000, 'the end of the stream');
              expect(end.ok, 'nothing after the last frame').to.equal(false);
              const err = (end as { error: unknown }).error;
              const endedEarly = err instanceof EOFError || (err instanceof ProtocolError && err.code === 'ERR_TRUNCATED');
              if (expected.end === null) {
                expect(endedEarly, describeError(err)).to.equal(true);
              } else if (reset && tcp && endedEarly) {
                // the reset overtook the bytes that would have broken the framing
              } else {
                expect(err, describeError(err)).to.be.instanceOf(ProtocolError);
                expect((err as ProtocolError).code).to.equal(expected.end);
              }
              await writing;
            } finally {
              await peer.dispose();
            }
          }),
          { numRuns: scaled(60) },
        );
      });
    }

    it('a map key "__proto__" (msgpack) or a "__proto__" / "constructor" member (JSON) pollutes no prototype', async () => {
      const msgpack = await rawPeer({ serializer: 'msgpack' });
      const json = await rawPeer({ serializer: 'json' });
      try {
        // fixmap of 1: "__proto__" -> { "polluted": true }
        const evil = Buffer.concat([Buffer.from([0x81, 0xa9]), Buffer.from('__proto__'), Buffer.from([0x81, 0xa8]), Buffer.from('polluted'), Buffer.from([0xc3])]);
        await writeRaw(msgpack.raw, frame(evil));
        const m = await outcome(msgpack.conn.recv());
        await writeRaw(json.raw, frame(Buffer.from('{"__proto__": {"polluted": true}, "constructor": {"prototype": {"polluted": true}}}')));
        const j = await outcome(json.conn.recv());
        expect(({} as { polluted?: boolean }).polluted).to.equal(undefined);
        expect(Object.prototype).to.not.have.property('polluted');
        if (!m.ok) expect(m.error).to.be.instanceOf(ProtocolError);
        expect(j.ok).to.equal(true);
        expect(Object.getPrototypeOf((j as { value: object }).value)).to.equal(Object.prototype);
      } finally {
        await msgpack.dispose();
        await json.dispose();
      }
    });
  });

  describe('recv() of messages that claim far more than they carry', () => {
    it('allocates in proportion to the message, never to its claims: the process survives on a 512 MB heap', async () => {
      const child = runFixture('stress-decode-bombs', [], ['--max-old-space-size=512']);
      try {
        const results: { name: string; bytes: number; outcome: string; peakGrowth: number }[] = [];
        for (;;) {
          const line = await within(child.line(), 60_000, 'the decoding child');
          if (line === 'done') break;
          results.push(JSON.parse(line));
        }
        const exit = await child.exit();
        expect(exit.code, exit.stderr).to.equal(0);
        for (const r of results) {
          const context = `${r.name}: ${r.outcome}, peak RSS +${(r.peakGrowth / 1e6).toFixed(1)} MB`;
          expect(['value', 'ProtocolError ERR_DECODE', 'UnpicklingError ERR_UNPICKLING'], context).to.include(r.outcome);
          // A few MB of bookkeeping per MB of message at most; a believed claim costs hundreds of MB.
          if (process.env.STRESS_VERBOSE) console.log(context);
          expect(r.peakGrowth, context).to.be.below(64e6 + 64 * r.bytes);
        }
        expect(results).to.have.length(10);
      } finally {
        child.kill();
      }
    });
  });

  describe('the handshake, fed random replies and challenges', () => {
    /** What a hostile peer writes where a handshake message belongs. */
    const junkMessage: fc.Arbitrary<Buffer> = fc.oneof(
      fc.uint8Array({ maxLength: 300 }).map((p) => frame(p)),
      fc.tuple(fc.constantFrom(...DIGESTS, 'sha1', 'SHA256', '', 'sha256sha256'), fc.uint8Array({ maxLength: 64 })).map(([d, p]) =>
        frame(Buffer.concat([Buffer.from(`{${d}}`), p])),
      ),
      fc.uint8Array({ minLength: 16, maxLength: 16 }).map((p) => frame(p)),
      fc.uint8Array({ minLength: 20, maxLength: 20 }).map((p) => frame(p)),
      fc.integer({ min: 257, max: 0x7fffffff }).map((n) => Buffer.concat([header(n), Buffer.alloc(Math.min(n, 300), 0x41)])),
      segment,
      fc.constant(Buffer.alloc(0)),
    );
    const ending = fc.constantFrom('end', 'reset', 'destroy');

    function finish(raw: net.Socket, how: string, tcp: boolean): void {
      if (how === 'reset' && tcp) raw.resetAndDestroy();
      else if (how === 'destroy') raw.destroy();
      else raw.end();
    }

    it('deliverChallenge: a random reply rejects with AuthenticationError, ProtocolError or EOFError (and #FAILURE# is sent for a wrong MAC)', async () => {
      await fc.assert(
        fc.asyncProperty(junkMessage, fc.boolean(), ending, fc.constantFrom(...DIGESTS), async (reply, tcp, how, digest) => {
          const peer = await rawPeer(undefined, tcp);
          const raw = RawPeer.accepted(peer.raw);
          try {
            const delivered = outcome(deliverChallenge(peer.conn, KEY, digest));
            const challenge = await within(raw.readChallenge(), 5_000, 'the challenge');
            expect(challenge.subarray(0, digest.length + 2).toString()).to.equal(`{${digest}}`);
            if (reply.length > 0) peer.raw.write(reply);
            finish(peer.raw, how, tcp);
            const result = await within(delivered, 10_000, 'deliverChallenge');
            expect(result.ok, 'a random reply is never accepted').to.equal(false);
            const err = (result as { error: unknown }).error;
            expect(err instanceof AuthenticationError || err instanceof ProtocolError || err instanceof EOFError, describeError(err)).to.equal(true);
            if (err instanceof AuthenticationError && how === 'end') {
              // A reply that was read and failed verification gets #FAILURE#, as CPython's deliver_challenge sends.
              const verdict = await within(raw.readFrame(), 5_000, 'the verdict');
              expect(verdict?.equals(FAILURE), `verdict ${verdict?.toString('latin1')}`).to.equal(true);
            }
          } finally {
            await peer.dispose();
          }
        }),
        { numRuns: scaled(150) },
      );
    });

    /** A challenge as a hostile (or honest) challenger sends it, and whether answerChallenge must accept it. */
    const challenge: fc.Arbitrary<{ bytes: Buffer; valid: boolean; body: Buffer | null }> = fc.oneof(
      fc.tuple(fc.constantFrom(...DIGESTS), fc.uint8Array({ minLength: 0, maxLength: 120 })).map(([d, nonce]) => {
        const body = Buffer.concat([Buffer.from(`{${d}}`), nonce]);
        return { bytes: frame(Buffer.concat([CHALLENGE, body])), valid: body.length >= 20, body };
      }),
      fc.uint8Array({ minLength: 20, maxLength: 20 }).map((nonce) => {
        const body = Buffer.from(nonce);
        return { bytes: frame(Buffer.concat([CHALLENGE, body])), valid: true, body };
      }),
      fc.uint8Array({ maxLength: 260 }).map((rest) => {
        const body = Buffer.from(rest);
        // Valid only by chance: a 20-byte body, or one starting with a known {digest} (checked below).
        return { bytes: frame(Buffer.concat([CHALLENGE, body])), valid: false, body };
      }),
      junkMessage.map((bytes) => ({ bytes, valid: false, body: null })),
    );

    function acceptable(body: Buffer | null): boolean {
      if (body === null || body.length < 20 || CHALLENGE.length + body.length > 256) return false;
      if (body.length === 20) return true;
      const close = body.indexOf('}');
      return body[0] === 0x7b && close > 0 && (DIGESTS as readonly string[]).includes(body.toString('latin1', 1, close));
    }

    function expectedReply(body: Buffer): Buffer {
      if (body.length === 20) return mac('md5', KEY, body);
      const digest = body.toString('latin1', 1, body.indexOf('}'));
      return Buffer.concat([Buffer.from(`{${digest}}`), mac(digest, KEY, body)]);
    }

    it('answerChallenge: a random challenge and verdict reject with AuthenticationError, ProtocolError or EOFError; a valid one is answered with the right MAC', async () => {
      const verdict = fc.oneof(fc.constant(frame(WELCOME)), fc.constant(frame(FAILURE)), junkMessage);
      await fc.assert(
        fc.asyncProperty(challenge, verdict, fc.boolean(), ending, async (c, v, tcp, how) => {
          const peer = await rawPeer(undefined, tcp);
          const raw = RawPeer.accepted(peer.raw);
          try {
            // Pipelined: the challenge and the verdict leave together, then the peer ends.
            peer.raw.write(Buffer.concat([c.bytes, v]));
            const answered = outcome(answerChallenge(peer.conn, KEY));
            const accept = acceptable(c.body) && c.bytes.length === 4 + CHALLENGE.length + c.body!.length;
            if (accept && how === 'end') {
              const reply = await within(raw.readFrame(), 5_000, 'the reply');
              expect(reply?.equals(expectedReply(c.body!)), 'the reply is the HMAC of the whole challenge').to.equal(true);
            }
            finish(peer.raw, how, tcp);
            const result = await within(answered, 10_000, 'answerChallenge');
            if (result.ok) {
              expect(accept && v.equals(frame(WELCOME)), 'only a valid challenge and #WELCOME# succeed').to.equal(true);
            } else {
              const err = result.error;
              expect(err instanceof AuthenticationError || err instanceof ProtocolError || err instanceof EOFError, describeError(err)).to.equal(true);
              if (how === 'end' && accept && v.equals(frame(WELCOME))) expect.fail(`a valid handshake failed: ${describeError(err)}`);
            }
          } finally {
            await peer.dispose();
          }
        }),
        { numRuns: scaled(150) },
      );
    });

    it('Client() against a fake listener sending random challenges and verdicts rejects with AuthenticationError (or a failed connect)', async () => {
      let script: Buffer = Buffer.alloc(0);
      let how = 'end';
      const server = await rawServer((peer) => {
        // Pipelined: challenge, verdict, and a junk reply to the client's own challenge; then the fake listener leaves.
        peer.sendRaw(Buffer.concat([script, frame(Buffer.from('{sha256}not the mac'))]));
        if (how === 'reset') peer.socket.resetAndDestroy();
        else peer.socket.end();
      });
      try {
        await fc.assert(
          fc.asyncProperty(challenge, fc.oneof(fc.constant(frame(WELCOME)), junkMessage), fc.constantFrom('end', 'reset'), async (c, v, ending) => {
            script = Buffer.concat([c.bytes, v]);
            how = ending;
            const result = await within(outcome(Client(server.address, { authkey: KEY, timeout: 5_000 })), 10_000, 'Client()');
            if (result.ok) await result.value.close();
            expect(result.ok, 'a fake listener that cannot answer our challenge never gets through').to.equal(false);
            const err = (result as { error: { syscall?: string } }).error;
            // (a reset can land before the connect completes: then connect() itself fails, as in Python)
            expect(err instanceof AuthenticationError || err.syscall === 'connect', describeError(err)).to.equal(true);
          }),
          { numRuns: scaled(80) },
        );
      } finally {
        await server.close();
      }
    });
  });

  describe('a Listener with an authkey, facing random handshakes', () => {
    /**
     * A raw client's handshake, stage by stage: its reply to the Listener's
     * challenge, its own challenge, its verdict on the Listener's answer, and
     * how it leaves. It is accepted only when all three are right.
     */
    const script = fc.record({
      reply: fc.oneof(
        { weight: 3, arbitrary: fc.constant<'right'>('right') },
        { weight: 1, arbitrary: fc.constant<'wrong-mac'>('wrong-mac') },
        { weight: 1, arbitrary: fc.constant<'legacy-wrong'>('legacy-wrong') },
        { weight: 2, arbitrary: junkMessageForListener() },
      ),
      challenge: fc.oneof(
        { weight: 3, arbitrary: fc.constant<'right'>('right') },
        { weight: 1, arbitrary: junkMessageForListener() },
      ),
      verdict: fc.oneof(
        { weight: 3, arbitrary: fc.constant<'right'>('right') },
        { weight: 1, arbitrary: junkMessageForListener() },
      ),
      leave: fc.constantFrom('end', 'end', 'reset', 'silent'),
    });

    function junkMessageForListener(): fc.Arbitrary<Buffer> {
      return fc.oneof(
        fc.uint8Array({ maxLength: 300 }).map((p) => frame(p)),
        fc.integer({ min: 257, max: 0x7fffffff }).map((n) => Buffer.concat([header(n), Buffer.alloc(Math.min(n, 64), 0x41)])),
        segment,
        fc.constant(Buffer.alloc(0)),
      );
    }

    type Script = { reply: 'right' | 'wrong-mac' | 'legacy-wrong' | Buffer; challenge: 'right' | Buffer; verdict: 'right' | Buffer; leave: string };

    const succeeds = (s: Script): boolean => s.reply === 'right' && s.challenge === 'right' && s.verdict === 'right';

    /** Plays `s` against the Listener at `address`; resolves when the client is done with its part. */
    async function play(address: [string, number], s: Script): Promise<void> {
      const peer = await RawPeer.connect(address);
      try {
        const challenge = await peer.readChallenge().catch(() => null);
        if (challenge === null) return;
        let stop = false;
        if (s.reply === 'right') {
          const digest = challenge.toString('latin1', 1, challenge.indexOf('}'));
          peer.sendFrame(Buffer.concat([Buffer.from(`{${digest}}`), mac(digest, KEY, challenge)]));
          const verdict = await peer.readFrame().catch(() => null);
          stop = !verdict?.equals(WELCOME);
        } else if (s.reply === 'wrong-mac') {
          peer.sendFrame(Buffer.concat([Buffer.from('{sha256}'), mac('sha256', Buffer.from('not the key'), challenge)]));
          stop = true;
        } else if (s.reply === 'legacy-wrong') {
          peer.sendFrame(mac('md5', Buffer.from('not the key'), challenge));
          stop = true;
        } else {
          peer.sendRaw(s.reply);
          stop = true;
        }
        if (!stop) {
          if (s.challenge === 'right') {
            const nonce = Buffer.concat([Buffer.from('{sha256}'), Buffer.alloc(40, 7)]);
            peer.sendFrame(Buffer.concat([CHALLENGE, nonce]));
            const answer = await peer.readFrame().catch(() => null);
            const right = Buffer.concat([Buffer.from('{sha256}'), mac('sha256', KEY, nonce)]);
            if (answer === null || !answer.equals(right)) throw new Error('the Listener answered our challenge wrongly');
            if (s.verdict === 'right') peer.sendFrame(WELCOME);
            else peer.sendRaw(s.verdict);
          } else {
            peer.sendRaw(s.challenge);
          }
        }
        if (succeeds(s)) {
          await peer.ended; // accepted: the test closes the connection
          return;
        }
        if (s.leave === 'silent') {
          await peer.ended; // the Listener's authTimeout (or its verdict) closes us
          return;
        }
        if (s.leave === 'reset') peer.socket.resetAndDestroy();
        else peer.socket.end();
        await peer.closed;
      } finally {
        peer.destroy();
      }
    }

    it('reports every failed handshake as AuthenticationError or ProtocolError, accepts exactly the right ones, and still accepts a good Client', async () => {
      const fdsBefore = fdCount();
      const listener = await Listener.listen(['127.0.0.1', 0], { authkey: KEY, authTimeout: 500 });
      const address = listener.address as [string, number];
      const failures: unknown[] = [];
      listener.on('handshakeError', (err) => failures.push(err));
      const accepted: Connection[] = [];
      let goodClientTurn = false;
      const accepting = (async () => {
        for await (const conn of listener) {
          accepted.push(conn);
          if (!goodClientTurn) void conn.close();
        }
      })();
      let expectedAccepted = 0;
      let expectedFailures = 0;
      try {
        await fc.assert(
          fc.asyncProperty(fc.array(script, { minLength: 1, maxLength: 8 }), async (scripts) => {
            // Counted from where the previous batch left off (a failed batch may leave stragglers).
            await until(() => accepted.length === expectedAccepted && failures.length === expectedFailures, 5_000, 'the previous batch settling');
            const startAccepted = accepted.length;
            const startFailures = failures.length;
            const wantAccepted = scripts.filter((s) => succeeds(s as Script)).length;
            const wantFailures = scripts.length - wantAccepted;
            expectedAccepted = startAccepted + wantAccepted;
            expectedFailures = startFailures + wantFailures;
            // A batch of hostile clients at once: handshakes run concurrently.
            await within(Promise.all(scripts.map((s) => play(address, s as Script))), 15_000, 'a batch of raw clients');
            await until(
              () => accepted.length - startAccepted >= wantAccepted && failures.length - startFailures >= wantFailures,
              5_000,
              `${wantAccepted} accepted and ${wantFailures} handshake errors`,
            );
            expect(accepted.length - startAccepted, 'accepted').to.equal(wantAccepted);
            expect(failures.length - startFailures, 'handshake errors').to.equal(wantFailures);
          }),
          { numRuns: scaled(40) },
        );
        for (const err of failures) {
          expect(err instanceof AuthenticationError || err instanceof ProtocolError, describeError(err)).to.equal(true);
        }
        // The Listener still serves: a good Client gets in and talks.
        goodClientTurn = true;
        const client = await Client(address, { authkey: KEY, timeout: 5_000 });
        await until(() => accepted.length === expectedAccepted + 1, 5_000, 'the good client accepted');
        const server = accepted.at(-1)!;
        await client.send({ after: 'the storm' });
        expect(await server.recv()).to.deep.equal({ after: 'the storm' });
        await client.close();
      } finally {
        await listener.close();
        await accepting;
        await Promise.all(accepted.map((c) => c.close()));
      }
      await until(() => fdCount() <= fdsBefore, 5_000, 'descriptors back to where they were');
    });
  });
});
