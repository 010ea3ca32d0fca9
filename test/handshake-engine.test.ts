/**
 * The authentication handshake a Listener and a Client run on the bare
 * socket, before the Connection exists: what the peer sends after it is the
 * Connection's, and each handshake message is capped from its header.
 */
import { randomBytes } from 'node:crypto';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { expect } from 'chai';
import { AuthenticationError, Client, EOFError, Listener, ProtocolError, type Address } from 'mpconn';
import { CHALLENGE, modernReply, RawPeer, rawServer, WELCOME } from './helpers/auth-raw.js';
import { forEachPython, pythonsKilledAfterEach } from './helpers/python.js';
import { frame, header, longHeader, patterned, rejectionOf, within } from './helpers/wire.js';

const KEY = 'engine key';
const MiB = 1024 * 1024;

/** A challenge of ours, as a raw peer sends it: `{sha256}` + 40 random bytes. */
function ourChallenge(): Buffer {
  return Buffer.concat([Buffer.from('{sha256}'), randomBytes(40)]);
}

/** The Client's side of the handshake, spoken by a raw peer to a Listener with KEY: up to the Listener's answer, which it checks. */
async function passAsClient(peer: RawPeer): Promise<void> {
  peer.sendFrame(modernReply(KEY, await peer.readChallenge()));
  expect(await peer.readFrame()).to.deep.equal(WELCOME);
  const ours = ourChallenge();
  peer.sendFrame(Buffer.concat([CHALLENGE, ours]));
  expect(await peer.readFrame()).to.deep.equal(modernReply(KEY, ours));
}

/** The next handshake failure the Listener reports. */
function nextHandshakeError(listener: Listener): Promise<Error> {
  return within(new Promise<Error>((resolve) => listener.once('handshakeError', resolve)), 10_000, "'handshakeError'");
}

describe('the handshake on the bare socket', function () {
  this.timeout(20_000);
  let dir: string;
  before(() => {
    dir = mkdtempSync(join(tmpdir(), 'mpconn-engine-'));
  });
  after(() => rmSync(dir, { recursive: true, force: true }));
  // The fake peer and the Listener of the test under way, closed after each.
  let server: Awaited<ReturnType<typeof rawServer>> | undefined;
  let listener: Listener | undefined;
  afterEach(async () => {
    await server?.close();
    server = undefined;
    await listener?.close();
    listener = undefined;
  });
  let n = 0;
  const addressOf = (transport: 'unix' | 'tcp'): Address => (transport === 'unix' ? join(dir, `l${n++}`) : ['127.0.0.1', 0]);

  for (const transport of ['unix', 'tcp'] as const) {
    describe(`over ${transport === 'unix' ? 'a Unix socket' : 'TCP'}: what the peer sends after the handshake reaches the Connection`, () => {

      /** A fake listener that speaks the handshake right and writes `after` in the same write as its answer. */
      async function listenerSending(after: Buffer): Promise<Address> {
        server = await rawServer(
          async (peer) => {
            const challenge = ourChallenge();
            peer.sendFrame(Buffer.concat([CHALLENGE, challenge]));
            const reply = (await peer.readFrame())!;
            expect(reply).to.deep.equal(modernReply(KEY, challenge));
            peer.sendFrame(WELCOME);
            const theirs = await peer.readChallenge();
            peer.sendRaw(Buffer.concat([frame(modernReply(KEY, theirs)), after]));
            expect(await peer.readFrame()).to.deep.equal(WELCOME);
          },
          transport === 'unix' ? { path: join(dir, `raw${n++}`) } : {},
        );
        return server.address;
      }

      it('Client: messages a listener wrote together with its answer, before our verdict', async () => {
        const address = await listenerSending(Buffer.concat([frame('first'), frame('second')]));
        const conn = await Client(address, { authkey: KEY, timeout: 10_000 });
        expect((await conn.recvBytes()).toString()).to.equal('first');
        expect((await conn.recvBytes()).toString()).to.equal('second');
        await conn.close();
      });

      it('Client: a 1 MiB message that starts in the chunk of the answer and goes on in later ones', async () => {
        const big = patterned(MiB, 5);
        const address = await listenerSending(Buffer.concat([frame(big), frame('after')]));
        const conn = await Client(address, { authkey: KEY, timeout: 10_000 });
        expect((await conn.recvBytes()).equals(big)).to.equal(true);
        expect((await conn.recvBytes()).toString()).to.equal('after');
        await conn.close();
      });

      it('Listener: messages a client wrote together with its verdict, then its end of stream', async () => {
        listener = await Listener.listen(addressOf(transport), { authkey: KEY });
        const accepted = listener.accept({ timeout: 10_000 });
        const peer = await RawPeer.connect(listener.address);
        await passAsClient(peer);
        const big = patterned(MiB, 9);
        peer.socket.end(Buffer.concat([frame(WELCOME), frame('first'), frame(big)]));
        const conn = await accepted;
        expect((await conn.recvBytes()).toString()).to.equal('first');
        expect((await conn.recvBytes()).equals(big)).to.equal(true);
        expect(await rejectionOf(conn.recvBytes())).to.be.instanceOf(EOFError);
        await conn.close();
        peer.destroy();
      });

      it('Client and Listener: a burst sent the moment each side has its connection is received whole, both ways, every time', async () => {
        listener = await Listener.listen(addressOf(transport), { authkey: KEY });
        for (let round = 0; round < 40; round++) {
          const accepting = listener.accept({ timeout: 10_000 }).then(async (conn) => {
            const sent = [conn.sendBytes(Buffer.from(`to client ${round}`)), conn.send({ round })];
            const got = [(await conn.recvBytes()).toString(), await conn.recv()];
            await Promise.all(sent);
            return { conn, got };
          });
          const client = await Client(listener.address, { authkey: KEY, timeout: 10_000 });
          const sent = [client.sendBytes(Buffer.from(`to listener ${round}`)), client.send([round])];
          const { conn, got } = await accepting;
          expect(got).to.deep.equal([`to listener ${round}`, [round]]);
          expect((await client.recvBytes()).toString()).to.equal(`to client ${round}`);
          expect(await client.recv()).to.deep.equal({ round });
          await Promise.all(sent);
          await client.close();
          await conn.close();
        }
      });
    });
  }

  describe('a handshake message over the 256-byte cap is refused from its header, before its body', () => {

    const announcements: [string, Buffer[]][] = [
      ['a 4-byte header announcing 1 MiB', [header(MiB)]],
      ['the same header a byte at a time', [...header(MiB)].map((byte) => Buffer.from([byte]))],
      ['the long form (-1, then 8 bytes) announcing 2**40 bytes', [longHeader(2n ** 40n)]],
      ['a header announcing 257 bytes', [header(257)]],
    ];

    for (const [what, pieces] of announcements) {
      it(`Client: ${what} as the challenge, and no body ever: AuthenticationError 'protocol', and the listener sees us hang up`, async () => {
        let hungUp: Promise<void> | null = null;
        server = await rawServer(async (peer) => {
          hungUp = peer.ended;
          for (const piece of pieces) {
            peer.sendRaw(piece);
            await new Promise((resolve) => setImmediate(resolve));
          }
        });
        // A Client that waited for the body would fail on its timeout instead, saying no challenge came.
        const err = await rejectionOf(Client(server.address, { authkey: KEY, timeout: 60_000 }));
        expect(err).to.be.instanceOf(AuthenticationError);
        expect(err.reason).to.equal('protocol');
        expect(err.message).to.match(/256-byte cap/);
        expect(err.cause).to.be.instanceOf(ProtocolError);
        expect(err.cause.code).to.equal('ERR_MESSAGE_TOO_LONG');
        await within(hungUp!, 10_000, 'the fake listener seeing the end of the stream');
      });
    }

    for (const [what, pieces] of announcements) {
      it(`Listener: ${what} as the reply, and no body ever: 'handshakeError' with ProtocolError, the peer is closed, the next client gets in`, async () => {
        listener = await Listener.listen(['127.0.0.1', 0], { authkey: KEY, authTimeout: 60_000 });
        const reported = nextHandshakeError(listener);
        const peer = await RawPeer.connect(listener.address);
        await peer.readChallenge();
        for (const piece of pieces) {
          peer.sendRaw(piece);
          await new Promise((resolve) => setImmediate(resolve));
        }
        const err = (await reported) as ProtocolError;
        expect(err).to.be.instanceOf(ProtocolError);
        expect(err.code).to.equal('ERR_MESSAGE_TOO_LONG');
        expect(err.message).to.match(/256-byte cap/);
        expect(await within(peer.readFrame(), 10_000, 'the end of the stream')).to.equal(null);
        peer.destroy();
        const [client, conn] = await Promise.all([Client(listener.address, { authkey: KEY }), listener.accept({ timeout: 10_000 })]);
        await client.send('next');
        expect(await conn.recv()).to.equal('next');
        await client.close();
        await conn.close();
      });
    }

    it('Listener: the cap holds for the third message too (a verdict announced over 256 bytes)', async () => {
      listener = await Listener.listen(['127.0.0.1', 0], { authkey: KEY, authTimeout: 60_000 });
      const reported = nextHandshakeError(listener);
      const peer = await RawPeer.connect(listener.address);
      await passAsClient(peer);
      peer.sendRaw(header(300));
      const err = (await reported) as ProtocolError;
      expect(err).to.be.instanceOf(ProtocolError);
      expect(err.message).to.equal('handshake message of 300 bytes is longer than the 256-byte cap');
      peer.destroy();
    });

    it('Listener: a challenge of exactly 256 bytes is within the cap, and answered', async () => {
      listener = await Listener.listen(['127.0.0.1', 0], { authkey: KEY });
      const accepted = listener.accept({ timeout: 10_000 });
      const peer = await RawPeer.connect(listener.address);
      peer.sendFrame(modernReply(KEY, await peer.readChallenge()));
      expect(await peer.readFrame()).to.deep.equal(WELCOME);
      const ours = Buffer.concat([Buffer.from('{sha256}'), randomBytes(256 - CHALLENGE.length - 8)]);
      peer.sendFrame(Buffer.concat([CHALLENGE, ours]));
      expect(await peer.readFrame()).to.deep.equal(modernReply(KEY, ours));
      peer.sendFrame(WELCOME);
      const conn = await accepted;
      await conn.close();
      peer.destroy();
    });
  });

  forEachPython(undefined, (py) => {
    describe(`CPython ${py.version}`, () => {
      const run = pythonsKilledAfterEach(py);

      for (const transport of ['unix', 'tcp'] as const) {
        it(`a Python Client that sends as soon as it is connected, then closes (${transport}): every message reaches the accepted Connection`, async () => {
          listener = await Listener.listen(addressOf(transport), { authkey: KEY });
          const address = typeof listener.address === 'string' ? JSON.stringify(listener.address) : `('127.0.0.1', ${(listener.address as [string, number])[1]})`;
          const python = run(
            `
import signal
from multiprocessing.connection import Client
signal.alarm(30)
c = Client(${address}, authkey=b'${KEY}')
for i in range(20):
    c.send_bytes(b'message %d' % i)
c.close()
print('sent', flush=True)
`,
          );
          const conn = await listener.accept({ timeout: 15_000 });
          for (let i = 0; i < 20; i++) expect((await conn.recvBytes()).toString()).to.equal(`message ${i}`);
          expect(await rejectionOf(conn.recvBytes())).to.be.instanceOf(EOFError);
          expect(await python.line()).to.equal('sent');
          expect((await python.exit()).code).to.equal(0);
          await conn.close();
        });

        it(`a Python Listener that sends as soon as it has accepted (${transport}): the mpconn Client receives it`, async () => {
          const address = transport === 'unix' ? `r'${join(dir, `py${n++}`)}'` : "('127.0.0.1', 0)";
          const python = run(
            `
import signal
from multiprocessing.connection import Listener
signal.alarm(30)
with Listener(${address}, authkey=b'${KEY}') as l:
    print(repr(l.address), flush=True)
    with l.accept() as c:
        c.send_bytes(b'hello from python')
        print(c.recv_bytes().decode(), flush=True)
`,
          );
          const printed = await python.line();
          const bound: Address = printed.startsWith('(') ? ['127.0.0.1', Number(/, (\d+)\)/.exec(printed)![1])] : printed.slice(1, -1);
          const conn = await Client(bound, { authkey: KEY, timeout: 15_000 });
          expect((await conn.recvBytes()).toString()).to.equal('hello from python');
          await conn.sendBytes(Buffer.from('hello from node'));
          expect(await python.line()).to.equal('hello from node');
          expect((await python.exit()).code).to.equal(0);
          await conn.close();
        });
      }
    });
  });
});
