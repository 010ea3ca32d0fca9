/**
 * A Client's socket (Unix or TCP) reads through `onread` into one buffer it
 * reuses, not through `'data'` events: every byte the connection keeps past
 * a read (queued messages, frames that span reads) must be its own, the
 * handshake and the Connection share the reads, and flow control and the
 * end of the stream behave as on any other socket.
 */
import { randomBytes } from 'node:crypto';
import { once } from 'node:events';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { expect } from 'chai';
import { Client, Connection, EOFError, ProtocolError, type Address } from 'mpconn';
import { CHALLENGE, modernReply, type RawPeer, rawServer, WELCOME } from './helpers/auth-raw.js';
import { escapes } from './helpers/escapes.js';
import { frame, patterned, rejectionOf, socketPair, within } from './helpers/wire.js';

const KEY = 'onread key';
const KiB = 1024;
const MiB = 1024 * KiB;

/** Sizes that fall inside one read, span two, span many, and land on the read buffer's edges. */
const MIXED = [0, 1, 64, 0, 65 * KiB, 3, 3 * MiB + 7, 100, 16 * KiB, 40 * KiB, 0, 64 * KiB - 4, 1, 5 * MiB, 2];

function messages(sizes: number[], seed: number): Buffer[] {
  return sizes.map((n, i) => patterned(n, seed * 1000 + i + 1));
}

function frames(payloads: Buffer[]): Buffer {
  return Buffer.concat(payloads.map((p) => frame(p)));
}

/** Lets the socket read what is in flight before anyone receives, so that messages queue (and reads overwrite the buffer). */
function pause(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms));
}

describe('a Client reading through onread', function () {
  this.timeout(60_000);
  const unhandled = escapes({ perTest: true });
  let dir: string;
  before(() => {
    dir = mkdtempSync(join(tmpdir(), 'mpconn-onread-'));
  });
  after(() => rmSync(dir, { recursive: true, force: true }));
  let server: Awaited<ReturnType<typeof rawServer>> | undefined;
  const open: Connection[] = [];
  afterEach(async () => {
    for (const conn of open.splice(0)) await conn.close({ timeout: 0 });
    await server?.close();
    server = undefined;
  });
  let n = 0;

  /**
   * A fake listener: with `authkey`, it speaks the handshake right and
   * writes what `serve` returns in the same write as its last answer;
   * without, it writes it as soon as it accepts. Then `serve` goes on with the peer.
   */
  async function fakeListener(
    transport: 'unix' | 'tcp',
    authkey: string | null,
    first: Buffer,
    serve: (peer: RawPeer) => Promise<void> = async () => {},
  ): Promise<Address> {
    server = await rawServer(
      async (peer) => {
        peer.socket.on('error', () => {});
        if (authkey !== null) {
          const challenge = Buffer.concat([Buffer.from('{sha256}'), randomBytes(40)]);
          peer.sendFrame(Buffer.concat([CHALLENGE, challenge]));
          expect(await peer.readFrame()).to.deep.equal(modernReply(authkey, challenge));
          peer.sendFrame(WELCOME);
          const theirs = await peer.readChallenge();
          peer.sendRaw(Buffer.concat([frame(modernReply(authkey, theirs)), first]));
          expect(await peer.readFrame()).to.deep.equal(WELCOME);
        } else {
          peer.sendRaw(first);
        }
        await serve(peer);
      },
      transport === 'unix' ? { path: join(dir, `l${n++}`) } : {},
    );
    return server.address;
  }

  async function client(address: Address, authkey: string | null): Promise<Connection> {
    const conn = await Client(address, { authkey, timeout: 10_000 });
    open.push(conn);
    return conn;
  }

  async function expectMessages(conn: Connection, expected: Buffer[]): Promise<void> {
    for (let i = 0; i < expected.length; i++) {
      const got = await within(conn.recvBytes(), 20_000, `message ${i}`);
      expect(got.length, `length of message ${i}`).to.equal(expected[i]!.length);
      expect(got.equals(expected[i]!), `bytes of message ${i} (${got.length} B)`).to.equal(true);
    }
  }

  for (const transport of ['unix', 'tcp'] as const) {
    for (const authkey of [null, KEY]) {
      describe(`over ${transport === 'unix' ? 'a Unix socket' : 'TCP'}, ${authkey === null ? 'no authkey' : 'with an authkey'}`, () => {
        it('receives messages of 0 B to 5 MiB, queued while later reads arrive, with their bytes and in order, then EOFError', async () => {
          const sent = messages([...MIXED, ...MIXED.reverse()], 1);
          const address = await fakeListener(transport, authkey, Buffer.alloc(0), async (peer) => {
            // Written in pieces that do not follow the frames, so frames and headers span reads.
            const bytes = frames(sent);
            for (let at = 0, step = 1; at < bytes.length; at += step, step = (step * 7 + 13) % (200 * KiB) + 1) {
              peer.socket.write(bytes.subarray(at, at + step));
            }
            peer.socket.end();
          });
          const conn = await client(address, authkey);
          await pause(100);
          await expectMessages(conn, sent);
          expect(await rejectionOf(conn.recvBytes())).to.be.instanceOf(EOFError);
          await unhandled.check();
        });

        it('receives what the listener wrote in the same write as its last handshake message (or at once), none of it awaited yet', async () => {
          const sent = messages([...Array.from({ length: 300 }, (_, i) => i % 97), 100 * KiB, 0, 7], 2);
          const address = await fakeListener(transport, authkey, frames(sent));
          const conn = await client(address, authkey);
          await pause(50);
          await expectMessages(conn, sent);
          await unhandled.check();
        });

        it('stops reading while nobody receives (the peer waits on it), then delivers everything in order', async () => {
          const total = 96 * MiB;
          const size = 256 * KiB;
          let accepted: () => number = () => 0;
          let written: Promise<void> = Promise.resolve();
          const address = await fakeListener(transport, authkey, Buffer.alloc(0), async (peer) => {
            const socket = peer.socket;
            // What the kernel took from the peer: what the client side read, or holds in its buffers.
            accepted = () => socket.bytesWritten - socket.writableLength;
            written = (async () => {
              for (let i = 0; i < total / size; i++) {
                if (!socket.write(frame(patterned(size, i)))) await once(socket, 'drain');
              }
            })();
          });
          const conn = await client(address, authkey);
          // The peer's bytes stop at what the inbox (1 MiB) and the kernel's buffers hold.
          let last = -1;
          for (let now = accepted(); now !== last || now === 0; now = accepted()) {
            last = now;
            await pause(200);
          }
          expect(last, `bytes the peer got out while nobody received: ${last}`).to.be.below(40 * MiB);
          for (let i = 0; i < total / size; i++) {
            const got = await within(conn.recvBytes(), 20_000, `message ${i}`);
            if (!got.equals(patterned(size, i))) expect.fail(`message ${i} differs`);
          }
          await written;
          await unhandled.check();
        });

        for (const [what, cut] of [
          ['inside a header', 2],
          ['inside a payload', 4 + 500],
          ['inside a payload that spans reads', 4 + 200 * KiB],
        ] as const) {
          it(`the peer closing ${what} rejects as on a socket read through 'data'`, async () => {
            const wire = Buffer.concat([frame('before'), frame(patterned(300 * KiB, 3)).subarray(0, cut)]);
            const address = await fakeListener(transport, authkey, Buffer.alloc(0), async (peer) => {
              peer.socket.end(wire);
            });
            const conn = await client(address, authkey);
            expect((await conn.recvBytes()).toString()).to.equal('before');
            const err = await rejectionOf(conn.recvBytes());

            // The same bytes and end, to a Connection over a plain socket.
            const [near, far] = await socketPair(transport === 'tcp');
            const reference = Connection.fromStream(near);
            open.push(reference);
            far.end(wire);
            expect((await reference.recvBytes()).toString()).to.equal('before');
            const expected = await rejectionOf(reference.recvBytes());
            expect(expected).to.be.instanceOf(ProtocolError);
            expect(err).to.be.instanceOf(ProtocolError);
            expect({ code: err.code, message: err.message }).to.deep.equal({ code: expected.code, message: expected.message });
            await unhandled.check();
          });
        }
      });
    }
  }

  it('a Client closed while the peer still sends drops what arrives and closes (its reads go on, so the peer is not stuck)', async () => {
    let peerEnded: Promise<unknown> = Promise.resolve();
    const address = await fakeListener('unix', KEY, Buffer.alloc(0), async (peer) => {
      peerEnded = peer.ended;
      const chunk = frame(Buffer.alloc(64 * KiB, 1));
      const pump = (): void => {
        while (!peer.socket.destroyed && !peer.socket.writableEnded) {
          if (!peer.socket.write(chunk)) return void peer.socket.once('drain', pump);
        }
      };
      pump();
    });
    const conn = await Client(address, { authkey: KEY, timeout: 10_000 });
    await conn.recvBytes();
    await pause(100); // the inbox fills and reading stops
    await within(conn.close({ timeout: 5_000 }), 10_000, 'close()');
    await within(peerEnded, 10_000, 'the peer seeing the end');
    await unhandled.check();
  });

  it('a net.Socket of your own given to new Connection() still reads through its data events', async () => {
    const [near, far] = await socketPair();
    const conn = new Connection(near);
    open.push(conn);
    expect(near.listenerCount('data')).to.equal(1);
    far.write(frames(messages(MIXED, 4)));
    await expectMessages(conn, messages(MIXED, 4));
    far.destroy();
  });

  it('two Clients reading at the same time each get their own bytes (no read buffer is shared)', async () => {
    const sentA = messages(MIXED, 5);
    const sentB = messages(MIXED, 6);
    let which = 0;
    server = await rawServer(
      async (peer) => {
        peer.socket.on('error', () => {});
        peer.socket.write(frames(which++ === 0 ? sentA : sentB));
      },
      { path: join(dir, `l${n++}`) },
    );
    const a = await client(server.address, null);
    const b = await client(server.address, null);
    await pause(100);
    await Promise.all([expectMessages(a, sentA), expectMessages(b, sentB)]);
  });
});
