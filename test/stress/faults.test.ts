/**
 * Faults: a peer SIGKILLed at random points of a 64 MiB frame, a
 * peer that half-closes, a peer that resets the connection. Every pending
 * call settles — receives with `EOFError` (at a message boundary) or
 * `ProtocolError` (inside a frame), `poll`/`wait` with "ready", sends with
 * the transport's error — and once everything is closed this process has no
 * more file descriptors open than before.
 */
import { expect } from 'chai';
import fc from 'fast-check';
import { encode } from '@msgpack/msgpack';
import { once } from 'node:events';
import net from 'node:net';
import { BufferTooShort, Client, Connection, ConnectionStateError, EOFError, Listener, ProtocolError, wait } from 'mpconn';
import { newestPython, runPython } from '../helpers/python.js';
import { endRaw, frame, header, outcome, rawPeer, sleep, until, within, writeRaw, type Outcome } from '../helpers/wire.js';
import { budget, fdCount, fdTargets, prng, runFixture, scaled, seed } from './helpers.js';

const MiB = 1024 * 1024;
const FRAME = 64 * MiB;

/** Every pending call a test can have on a connection, started before the fault. */
function pendingCalls(conn: Connection, into: Uint8Array | null) {
  return {
    into: into === null ? null : outcome(conn.recvBytesInto(into)),
    recv: outcome(conn.recv()),
    recvBytes: outcome(conn.recvBytes()),
    poll: outcome(conn.poll(Infinity)),
    wait: outcome(wait([conn])),
  };
}

function describeOutcome(o: Outcome): string {
  if (o.ok) return `resolved with ${Buffer.isBuffer(o.value) ? `${o.value.length} bytes` : String(o.value)}`;
  const e = o.error as { name?: string; code?: string; message?: string };
  return `rejected with ${e?.name} ${e?.code ?? ''} ${e?.message ?? ''}`;
}

/** A receive that did not get a whole message ended with EOFError or ProtocolError, nothing else. */
function expectEndOfStream(o: Outcome, what: string, truncated: boolean): void {
  expect(o.ok, `${what} ${describeOutcome(o)}`).to.equal(false);
  const err = (o as { error: unknown }).error;
  if (truncated) {
    expect(err, `${what} ${describeOutcome(o)}`).to.be.instanceOf(ProtocolError);
    expect((err as ProtocolError).code).to.equal('ERR_TRUNCATED');
  } else {
    expect(err, `${what} ${describeOutcome(o)}`).to.be.instanceOf(EOFError);
  }
}

/** A send that was pending when the peer died: it settles; if it fails, with the OS's error. */
function expectSendSettled(o: Outcome, what: string): void {
  if (o.ok) return;
  const code = (o.error as { code?: string }).code;
  expect(['EPIPE', 'ECONNRESET'], `${what} ${describeOutcome(o)}`).to.include(code);
}

async function expectNoLeakedFds(before: number): Promise<void> {
  try {
    await until(() => fdCount() <= before, 5_000, 'file descriptors back to where they were');
  } catch (err) {
    throw new Error(`${(err as Error).message}: ${fdCount()} open, ${before} before: ${fdTargets().join(', ')}`);
  }
}

describe('stress: faults', function () {
  this.timeout(budget(120_000));

  before(async () => {
    // Warm up what opens descriptors once per process (child process plumbing, DNS, the crypto pool).
    const listener = await Listener.listen(['127.0.0.1', 0]);
    const child = runFixture('stress-fault-peer', [JSON.stringify(listener.address), 'raw', '0']);
    const conn = await listener.accept();
    await child.line();
    child.kill();
    await child.exit();
    await conn.close();
    await listener.close();
  });

  describe('a peer SIGKILLed at random points of a 64 MiB frame', () => {
    const runSeed = seed();
    const random = prng(runSeed);
    const total = 4 + FRAME;
    // The edges (before, inside and just after the header, one byte short), then random points.
    const cuts = [0, 1, 3, 4, 5, total - 1];
    for (let i = cuts.length; i < scaled(12); i++) cuts.push(Math.floor(random() * total));

    it(`every pending call settles, and no descriptor leaks (${cuts.length} cuts, the edges and random ones; seed ${runSeed})`, async () => {
      const fdsBefore = fdCount();
      const into = new Uint8Array(FRAME);
      const unread = Buffer.alloc(8 * MiB, 1);
      for (const [i, cut] of cuts.entries()) {
        const family = i % 2 === 0 ? 'AF_UNIX' : 'AF_INET';
        const listener = await Listener.listen(null, { family });
        const child = runFixture('stress-fault-peer', [JSON.stringify(listener.address), 'raw', String(cut)]);
        try {
          const conn = await within(listener.accept(), 30_000, 'accept');
          const calls = pendingCalls(conn, into);
          // Our own send to a peer that never reads: it waits for drain until the peer dies.
          const send = conn.sendBytes(unread).then(
            (value): Outcome => ({ ok: true, value }),
            (error: unknown): Outcome => ({ ok: false, error }),
          );
          expect(await within(child.line(), 30_000, 'the peer writing its partial frame')).to.equal('cut');
          child.kill('SIGKILL');
          await child.exit();
          const what = `cut at byte ${cut} of ${total} (${family}; seed ${runSeed}, cuts ${cuts.join(', ')})`;
          const truncated = cut > 0;
          expectEndOfStream(await within(calls.into!, 30_000, `recvBytesInto, ${what}`), `recvBytesInto, ${what}`, truncated);
          expectEndOfStream(await within(calls.recv, 5_000, `recv, ${what}`), `recv, ${what}`, truncated);
          expectEndOfStream(await within(calls.recvBytes, 5_000, `recvBytes, ${what}`), `recvBytes, ${what}`, truncated);
          expect(await within(calls.poll, 5_000, `poll, ${what}`)).to.deep.equal({ ok: true, value: true });
          const waited = await within(calls.wait, 5_000, `wait, ${what}`);
          expect(waited.ok && (waited.value as unknown[])[0] === conn, `wait, ${what}`).to.equal(true);
          expectSendSettled(await within(send, 5_000, `sendBytes, ${what}`), `sendBytes, ${what}`);
          // Later calls do not wait either.
          expectEndOfStream(
            await within(conn.recv().then((value) => ({ ok: true as const, value }), (error: unknown) => ({ ok: false as const, error })), 5_000, 'a later recv'),
            `a later recv, ${what}`,
            truncated,
          );
          await within(conn.close(), 5_000, `close, ${what}`);
        } finally {
          child.kill();
          await child.exit();
          await listener.close();
        }
      }
      await expectNoLeakedFds(fdsBefore);
    });

    it(`a peer killed at a random moment of Connection#sendBytes(64 MiB): the frame arrives whole, or the receive fails; nothing hangs (seed ${runSeed})`, async () => {
      const fdsBefore = fdCount();
      const rounds = scaled(6);
      for (let i = 0; i < rounds; i++) {
        const family = i % 2 === 0 ? 'AF_UNIX' : 'AF_INET';
        const listener = await Listener.listen(null, { family });
        const child = runFixture('stress-fault-peer', [JSON.stringify(listener.address), 'conn']);
        try {
          const conn = await within(listener.accept(), 30_000, 'accept');
          const first = conn.recvBytes().then(
            (value): Outcome => ({ ok: true, value }),
            (error: unknown): Outcome => ({ ok: false, error }),
          );
          const second = conn.recvBytes().then(
            (value): Outcome => ({ ok: true, value }),
            (error: unknown): Outcome => ({ ok: false, error }),
          );
          expect(await within(child.line(), 30_000, 'the peer starting its send')).to.equal('sending');
          await sleep(Math.floor(random() * 60));
          child.kill('SIGKILL');
          await child.exit();
          const a = await within(first, 30_000, 'the first recvBytes');
          const b = await within(second, 5_000, 'the second recvBytes');
          if (a.ok) {
            const got = a.value as Buffer;
            expect(got.length).to.equal(FRAME);
            for (let j = 0; j < FRAME; j += 4093) expect(got[j], `byte ${j}`).to.equal((j * 7 + 3) & 0xff);
            expectEndOfStream(b, 'the receive after the whole frame', false);
          } else {
            const err = a.error as ProtocolError | EOFError;
            expect(err instanceof ProtocolError || err instanceof EOFError, describeOutcome(a)).to.equal(true);
            if (err instanceof ProtocolError) expect(err.code).to.equal('ERR_TRUNCATED');
            expect(b.ok).to.equal(false);
          }
          await within(conn.close(), 5_000, 'close');
        } finally {
          child.kill();
          await child.exit();
          await listener.close();
        }
      }
      await expectNoLeakedFds(fdsBefore);
    });
  });

  describe('connections that fail leak nothing', () => {
    it('refused, timed out, aborted, wrong key, no challenge, EADDRINUSE: each rejects, and every descriptor is released', async () => {
      const fdsBefore = fdCount();
      const rounds = scaled(10);
      const keyed = await Listener.listen(['127.0.0.1', 0], { authkey: 'right' });
      const keyless = await Listener.listen(['127.0.0.1', 0]);
      const unixKeyed = await Listener.listen(null, { authkey: 'right' });
      const failures = new Map<string, number>();
      const note = (what: string, err: unknown): void => {
        const key = `${what}: ${(err as { name?: string }).name} ${(err as { code?: string }).code ?? ''}`;
        failures.set(key, (failures.get(key) ?? 0) + 1);
      };
      // A port nothing listens on (bound, then closed).
      const probe = net.createServer().listen(0, '127.0.0.1');
      await once(probe, 'listening');
      const freePort = (probe.address() as net.AddressInfo).port;
      await new Promise((resolve) => probe.close(resolve));
      // A server that accepts and then says nothing.
      const silentSockets = new Set<net.Socket>();
      const silent = net.createServer((socket) => {
        silentSockets.add(socket);
        socket.on('close', () => silentSockets.delete(socket));
      }).listen(0, '127.0.0.1');
      await once(silent, 'listening');
      const silentPort = (silent.address() as net.AddressInfo).port;
      try {
        for (let i = 0; i < rounds; i++) {
          const attempts: [string, Promise<unknown>][] = [
            ['refused', Client(['127.0.0.1', freePort])],
            ['no such Unix path', Client(`${unixKeyed.address as string}.missing`)],
            ['wrong key (TCP)', Client(keyed.address, { authkey: 'wrong' })],
            ['wrong key (Unix)', Client(unixKeyed.address, { authkey: 'wrong' })],
            ['no challenge from a keyless listener', Client(keyless.address, { authkey: 'right', timeout: 200 })],
            ['a silent server', Client(['127.0.0.1', silentPort], { authkey: 'right', timeout: 200 })],
            ['aborted mid-handshake', Client(['127.0.0.1', silentPort], { authkey: 'right', signal: AbortSignal.timeout(50) })],
            ['EADDRINUSE', Listener.listen(keyed.address)],
          ];
          const settled = attempts.map(([what, attempt]) => [what, attempt.then((value) => ({ value }), (error: unknown) => ({ error }))] as const);
          for (const [what, outcome] of settled) {
            const result = await within(outcome, 10_000, what);
            expect('error' in result, `${what} should fail`).to.equal(true);
            note(what, (result as { error: unknown }).error);
          }
          // The keyless listener accepted the connections that waited for a challenge: close them.
          for (;;) {
            const conn = await keyless.accept({ timeout: 0 }).catch(() => null);
            if (conn === null) break;
            await conn.close();
          }
        }
        const expected = [
          `refused: Error ECONNREFUSED`,
          `no such Unix path: Error ENOENT`,
          `wrong key (TCP): AuthenticationError ERR_AUTH`,
          `wrong key (Unix): AuthenticationError ERR_AUTH`,
          `no challenge from a keyless listener: AuthenticationError ERR_AUTH`,
          `a silent server: AuthenticationError ERR_AUTH`,
          `aborted mid-handshake: TimeoutError 23`,
          `EADDRINUSE: Error EADDRINUSE`,
        ];
        expect([...failures.keys()].sort()).to.deep.equal(expected.sort());
        for (const [what, n] of failures) expect(n, what).to.equal(rounds);
      } finally {
        for (const socket of silentSockets) socket.destroy();
        await new Promise((resolve) => silent.close(resolve));
        await keyed.close();
        await keyless.close();
        await unixKeyed.close();
      }
      await expectNoLeakedFds(fdsBefore);
    });
  });

  describe('receives cancelled at random moments while frames arrive cut anywhere', () => {
    const sizes = fc.oneof(
      fc.integer({ min: 0, max: 100 }),
      fc.integer({ min: 1000, max: 70_000 }),
      fc.integer({ min: 200_000, max: 2 * MiB }),
    );
    const op = fc.record({
      kind: fc.constantFrom('recvBytes', 'into', 'into-small', 'recv', 'recvBytes', 'into', 'recv', 'bounded'),
      maxlength: fc.oneof(fc.integer({ min: 0, max: 200 }), fc.integer({ min: 0, max: 3 * MiB })),
      cancel: fc.oneof(fc.constant(null), fc.integer({ min: 0, max: 30 })),
      by: fc.constantFrom('abort', 'timeout'),
    });
    type Result = { got: Buffer } | { eof: true } | { tooLong: number } | { notReadable: true } | { cancelled: unknown };

    it('no message is lost, duplicated or reordered: receives take the next frames in call order, cancelled ones take nothing, a too-long one ends reading', async () => {
      await fc.assert(
        fc.asyncProperty(
          fc.array(sizes, { minLength: 1, maxLength: 10 }),
          fc.array(op, { minLength: 1, maxLength: 12 }),
          fc.array(fc.double({ min: 0, max: 1, noNaN: true }), { maxLength: 8 }),
          fc.integer(),
          async (frameSizes, ops, cutFractions, seedValue) => {
            const random = prng(seedValue);
            // msgpack bin payloads, so recv() can take part: each frame's bytes decode to themselves.
            const payloads = frameSizes.map((n, i) => {
              const body = Buffer.alloc(n);
              for (let j = 0; j < n; j += 997) body[j] = (i * 31 + j) & 0xff;
              if (n >= 4) body.writeUInt32BE(i, n - 4);
              return Buffer.from(encode(body));
            });
            const stream = Buffer.concat(payloads.map((p) => frame(p)));
            const peer = await rawPeer();
            try {
              const results = ops.map((o): Promise<Result> => {
                const controller = new AbortController();
                const options =
                  o.cancel === null ? undefined : o.by === 'timeout' ? { timeout: o.cancel } : { signal: controller.signal };
                if (o.cancel !== null && o.by === 'abort') setTimeout(() => controller.abort(new Error('aborted by the test')), o.cancel);
                let p: Promise<Buffer>;
                if (o.kind === 'recvBytes') p = peer.conn.recvBytes(undefined, options);
                else if (o.kind === 'bounded') p = peer.conn.recvBytes(o.maxlength, options);
                else if (o.kind === 'recv') p = peer.conn.recv<Uint8Array>(options).then((v) => Buffer.from(encode(v)));
                else {
                  const buf = new Uint8Array(o.kind === 'into' ? 2 * MiB + 64 : 50);
                  p = peer.conn.recvBytesInto(buf, 7, options).then((n) => Buffer.from(buf.subarray(7, 7 + n)));
                }
                return p.then(
                  (msg) => ({ got: msg }),
                  (err: unknown) => {
                    if (err instanceof BufferTooShort) return { got: err.data };
                    if (err instanceof EOFError) return { eof: true };
                    if (err instanceof ProtocolError && err.code === 'ERR_MESSAGE_TOO_LONG') return { tooLong: o.maxlength };
                    if (err instanceof ConnectionStateError && err.code === 'ERR_NOT_READABLE') return { notReadable: true };
                    return { cancelled: err };
                  },
                );
              });
              // The peer writes the stream in random pieces, with pauses, while receives are cancelled around it
              // (in the background: with every receive cancelled the inbox fills, pauses the socket, and the writes wait).
              const points = [...new Set(cutFractions.map((f) => Math.floor(f * stream.length)))].sort((a, b) => a - b);
              const writing = (async () => {
                let from = 0;
                for (const point of [...points, stream.length]) {
                  if (point > from) await writeRaw(peer.raw, stream.subarray(from, point));
                  from = Math.max(from, point);
                  await sleep(Math.floor(random() * 6));
                }
                // Then the peer ends: receives left over once every frame is taken meet EOFError.
                await endRaw(peer.raw);
              })().catch(() => {});
              const settled = await within(Promise.all(results), 10_000, 'the receives');

              // Walk the receives in call order, as they were served.
              let next = 0;
              let unreadable = false;
              const trace = settled.map((r) => Object.keys(r)[0]).join(' ');
              for (const [i, r] of settled.entries()) {
                const where = `receive ${i} (${ops[i]!.kind}) of [${trace}]`;
                if ('got' in r) {
                  expect(unreadable, `${where} got a message after the connection stopped reading`).to.equal(false);
                  expect(next, `${where}: more messages than were sent`).to.be.below(payloads.length);
                  expect(r.got.equals(payloads[next]!), `${where} got frame ${next}`).to.equal(true);
                  next++;
                } else if ('eof' in r) {
                  expect(unreadable || next === payloads.length, `${where}: EOFError with frame ${next} unread`).to.equal(true);
                } else if ('tooLong' in r) {
                  expect(unreadable, `${where}: a second too-long`).to.equal(false);
                  expect(payloads[next]!.length, `${where}: frame ${next} against maxlength ${r.tooLong}`).to.be.above(r.tooLong);
                  unreadable = true;
                } else if ('notReadable' in r) {
                  expect(unreadable, `${where}: not readable before any too-long message`).to.equal(true);
                } else {
                  const err = r.cancelled as Error;
                  expect(err.name === 'TimeoutError' || err.message === 'aborted by the test', `${where}: ${String(err)}`).to.equal(true);
                }
              }
              if (unreadable) {
                const after = await within(outcome(peer.conn.recvBytes()), 10_000, 'a receive after the too-long message');
                expect((after as { error: { code?: string } }).error?.code).to.equal('ERR_NOT_READABLE');
                return;
              }
              // The frames no receive took are all still there, in order, then the end of the stream.
              for (;;) {
                const more = await within(outcome(peer.conn.recvBytes()), 10_000, 'the remaining frames');
                if (!more.ok) {
                  expect(more.error, describeOutcome(more)).to.be.instanceOf(EOFError);
                  break;
                }
                expect(next, 'more messages than were sent').to.be.below(payloads.length);
                expect((more.value as Buffer).equals(payloads[next]!), `frame ${next}, drained`).to.equal(true);
                next++;
              }
              expect(next).to.equal(payloads.length);
              await within(writing, 10_000, 'the writes');
            } finally {
              await peer.dispose();
            }
          },
        ),
        { numRuns: scaled(60) },
      );
    });
  });

  describe('close() while sends of every size are in flight to a slow reader', () => {
    it('every frame sent before close() arrives whole and in order, then the end of the stream; every send settles', async () => {
      const size = fc.oneof(fc.integer({ min: 0, max: 16 * 1024 }), fc.integer({ min: 16 * 1024, max: 300_000 }), fc.integer({ min: 1 * MiB, max: 4 * MiB }));
      await fc.assert(
        fc.asyncProperty(fc.array(fc.record({ size, awaited: fc.boolean() }), { minLength: 1, maxLength: 30 }), fc.boolean(), fc.integer({ min: 0, max: 5 }), async (sends, tcp, readPause) => {
          const peer = await rawPeer(undefined, tcp);
          try {
            // The raw side parses frames as they come, pausing now and then: a slow reader.
            const received: Buffer[] = [];
            let buffered = Buffer.alloc(0);
            let chunks: Buffer[] = [];
            let chunkBytes = 0;
            const ended = new Promise<void>((resolve) => peer.raw.once('end', () => resolve()));
            peer.raw.on('data', (chunk: Buffer) => {
              chunks.push(chunk);
              chunkBytes += chunk.length;
              // Join only once the next frame is complete (joining on every chunk is quadratic).
              const need = buffered.length >= 4 ? 4 + buffered.readInt32BE(0) : 4;
              if (buffered.length + chunkBytes < need) return;
              buffered = Buffer.concat([buffered, ...chunks]);
              chunks = [];
              chunkBytes = 0;
              while (buffered.length >= 4 && buffered.length >= 4 + buffered.readInt32BE(0)) {
                const n = buffered.readInt32BE(0);
                received.push(buffered.subarray(4, 4 + n));
                buffered = buffered.subarray(4 + n);
              }
              if (readPause > 0) {
                peer.raw.pause();
                setTimeout(() => peer.raw.resume(), readPause);
              }
            });
            const payloads: Buffer[] = [];
            const pending: Promise<Outcome>[] = [];
            for (const [i, s] of sends.entries()) {
              const payload = Buffer.alloc(s.size, i & 0xff);
              if (s.size >= 4) payload.writeUInt32BE(i, 0);
              payloads.push(payload);
              const p = outcome(peer.conn.sendBytes(payload));
              pending.push(p);
              if (s.awaited) expect((await within(p, 20_000, `send ${i}`)).ok, `send ${i}`).to.equal(true);
            }
            await within(peer.conn.close(), 30_000, 'close()');
            const late = await outcome(peer.conn.sendBytes(Buffer.from('late')));
            expect((late as { error: { code?: string } }).error?.code).to.equal('ERR_CLOSED');
            for (const [i, p] of pending.entries()) expect((await within(p, 5_000, `send ${i}`)).ok, `send ${i}`).to.equal(true);
            await within(ended, 10_000, 'the end of the stream');
            expect(buffered.length + chunkBytes, 'bytes after the last whole frame').to.equal(0);
            expect(received.length).to.equal(payloads.length);
            received.forEach((r, i) => expect(r.equals(payloads[i]!), `frame ${i} (${payloads[i]!.length} bytes)`).to.equal(true));
          } finally {
            await peer.dispose();
          }
        }),
        { numRuns: scaled(25) },
      );
    });
  });

  describe('a peer that half-closes', () => {
    for (const tcp of [false, true]) {
      const family = tcp ? 'TCP' : 'a Unix socket';
      it(`over ${family}: messages before the half-close arrive, then EOFError; our sends still reach the peer`, async () => {
        const fdsBefore = fdCount();
        const peer = await rawPeer(undefined, tcp);
        try {
          const first = peer.conn.recvBytes();
          const second = peer.conn.recvBytes();
          const third = peer.conn.recv();
          const poll = peer.conn.poll(Infinity);
          await writeRaw(peer.raw, frame(Buffer.from('last words')));
          await endRaw(peer.raw);
          expect((await within(first, 5_000, 'first')).toString()).to.equal('last words');
          expect(await within(second.catch((e: unknown) => e), 5_000, 'second')).to.be.instanceOf(EOFError);
          expect(await within(third.catch((e: unknown) => e), 5_000, 'third')).to.be.instanceOf(EOFError);
          expect(await within(poll, 5_000, 'poll')).to.equal(true);
          // The peer only closed its sending side: it still reads, and we can still send.
          const received: Buffer[] = [];
          peer.raw.on('data', (d: Buffer) => received.push(d));
          const big = Buffer.alloc(4 * MiB, 9);
          await peer.conn.sendBytes(Buffer.from('still here'));
          await peer.conn.sendBytes(big);
          await until(() => Buffer.concat(received).length >= 14 + 4 + big.length, 10_000, 'the half-closed peer reading our frames');
          const all = Buffer.concat(received);
          expect(all.subarray(0, 14).equals(frame(Buffer.from('still here')))).to.equal(true);
          expect(all.readInt32BE(14)).to.equal(big.length);
          await within(peer.conn.close(), 5_000, 'close');
          // ...and our close ends the stream for it.
          if (!peer.raw.readableEnded) await within(once(peer.raw, 'end'), 5_000, 'the peer seeing our end');
        } finally {
          await peer.dispose();
        }
        await expectNoLeakedFds(fdsBefore);
      });

      it(`over ${family}: a half-close inside a frame rejects the pending receives with ERR_TRUNCATED`, async () => {
        const fdsBefore = fdCount();
        const peer = await rawPeer(undefined, tcp);
        try {
          const into = new Uint8Array(2 * MiB);
          const pending = [peer.conn.recvBytesInto(into), peer.conn.recvBytes(), peer.conn.recv()].map((p) => p.catch((e: unknown) => e));
          await writeRaw(peer.raw, Buffer.concat([header(MiB), Buffer.alloc(MiB / 2, 5)]));
          await endRaw(peer.raw);
          for (const p of pending) {
            const err = await within(p, 5_000, 'a pending receive');
            expect(err).to.be.instanceOf(ProtocolError);
            expect((err as ProtocolError).code).to.equal('ERR_TRUNCATED');
          }
        } finally {
          await peer.dispose();
        }
        await expectNoLeakedFds(fdsBefore);
      });
    }
  });

  describe('a peer that resets the connection (RST)', () => {
    const points: [string, (raw: net.Socket) => Promise<void>, boolean][] = [
      ['between frames', async (raw) => writeRaw(raw, frame(Buffer.from('one'))), false],
      ['inside a header', async (raw) => writeRaw(raw, Buffer.concat([frame(Buffer.from('one')), Buffer.from([0, 0])])), true],
      ['inside a 64 MiB payload', async (raw) => writeRaw(raw, Buffer.concat([frame(Buffer.from('one')), header(FRAME), Buffer.alloc(3 * MiB, 2)])), true],
    ];
    for (const [where, write, truncated] of points) {
      it(`${where}: every pending call settles (ECONNRESET is the cause, never the rejection), no descriptor leaks`, async () => {
        const fdsBefore = fdCount();
        const peer = await rawPeer(undefined, true);
        try {
          const first = peer.conn.recvBytes();
          const calls = pendingCalls(peer.conn, new Uint8Array(FRAME));
          // A send that waits for drain: the raw peer never reads.
          const send = peer.conn.sendBytes(Buffer.alloc(16 * MiB, 3)).then(
            (value): Outcome => ({ ok: true, value }),
            (error: unknown): Outcome => ({ ok: false, error }),
          );
          await write(peer.raw);
          expect((await within(first, 5_000, 'the first message')).toString()).to.equal('one');
          peer.raw.resetAndDestroy();
          const into = await within(calls.into!, 5_000, 'recvBytesInto');
          expectEndOfStream(into, `recvBytesInto, RST ${where}`, truncated);
          expect(((into as { error: Error }).error.cause as { code?: string } | undefined)?.code, 'the cause').to.equal('ECONNRESET');
          expectEndOfStream(await within(calls.recv, 5_000, 'recv'), `recv, RST ${where}`, truncated);
          expectEndOfStream(await within(calls.recvBytes, 5_000, 'recvBytes'), `recvBytes, RST ${where}`, truncated);
          expect(await within(calls.poll, 5_000, 'poll')).to.deep.equal({ ok: true, value: true });
          expect((await within(calls.wait, 5_000, 'wait')).ok).to.equal(true);
          expectSendSettled(await within(send, 5_000, 'sendBytes'), `sendBytes, RST ${where}`);
          // Sends after the reset fail at once with the same kind of error.
          const later = await within(
            peer.conn.sendBytes(Buffer.from('x')).then(
              (value): Outcome => ({ ok: true, value }),
              (error: unknown): Outcome => ({ ok: false, error }),
            ),
            5_000,
            'a send after the reset',
          );
          expect(later.ok, 'a send after the reset').to.equal(false);
          expectSendSettled(later, 'a send after the reset');
          await within(peer.conn.close(), 5_000, 'close');
        } finally {
          await peer.dispose();
        }
        await expectNoLeakedFds(fdsBefore);
      });
    }

    const py = newestPython();
    if (py === undefined) {
      it('SKIPPED: no CPython found for the SO_LINGER 0 peer');
    } else {
      it(`a CPython ${py.version} peer that closes with SO_LINGER 0 inside a frame: pending receives reject with ERR_TRUNCATED`, async () => {
        const fdsBefore = fdCount();
        const listener = await Listener.listen(['127.0.0.1', 0]);
        const [host, port] = listener.address as [string, number];
        const script = String.raw`
import socket, struct, sys
s = socket.create_connection((sys.argv[1], int(sys.argv[2])))
s.sendall(struct.pack('!i', 5) + b'hello' + struct.pack('!i', 1 << 20) + b'x' * 1000)
print('sent', flush=True)
sys.stdin.readline()
s.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack('ii', 1, 0))
s.close()
print('reset', flush=True)
`;
        const child = runPython(py, script, [host, String(port)]);
        try {
          const conn = await within(listener.accept(), 10_000, 'accept');
          expect((await within(conn.recvBytes(), 10_000, 'hello')).toString()).to.equal('hello');
          const calls = pendingCalls(conn, new Uint8Array(2 * MiB));
          expect(await within(child.line(), 10_000, 'python sending')).to.equal('sent');
          child.process.stdin!.write('\n');
          expect(await within(child.line(), 10_000, 'python resetting')).to.equal('reset');
          expectEndOfStream(await within(calls.into!, 5_000, 'recvBytesInto'), 'recvBytesInto', true);
          expectEndOfStream(await within(calls.recv, 5_000, 'recv'), 'recv', true);
          expectEndOfStream(await within(calls.recvBytes, 5_000, 'recvBytes'), 'recvBytes', true);
          expect(await within(calls.poll, 5_000, 'poll')).to.deep.equal({ ok: true, value: true });
          await within(conn.close(), 5_000, 'close');
        } finally {
          child.kill();
          await child.exit();
          await listener.close();
        }
        await expectNoLeakedFds(fdsBefore);
      });
    }
  });
});
