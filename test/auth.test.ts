import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { randomBytes } from 'node:crypto';
import { once } from 'node:events';
import { expect } from 'chai';
import fc from 'fast-check';
import {
  answer_challenge,
  answerChallenge,
  AuthenticationError,
  Client,
  type Connection,
  deliver_challenge,
  deliverChallenge,
  Listener,
  Pipe,
  ProtocolError,
} from 'mpconn';
import { CHALLENGE, DIGESTS, FAILURE, hmac, MAC_LENGTH, modernReply, RawPeer, rawServer, WELCOME } from './helpers/auth-raw.js';
import { escapes } from './helpers/escapes.js';
import { frame, rejectionOf as rejection, within } from './helpers/wire.js';

const KEY = 'a shared secret';
const LOCALHOST: [string, number] = ['127.0.0.1', 0];

/** The next `'handshakeError'` of `listener`: `[err, peer]`. */
function nextHandshakeError(listener: Listener, ms = 5000): Promise<[Error, unknown]> {
  return within(once(listener, 'handshakeError') as Promise<[Error, unknown]>, ms, "'handshakeError'");
}

/** A good client connects, is accepted, and the two ends are each other's peer. */
async function expectGoodClientAccepted(listener: Listener, authkey: string | Uint8Array = KEY): Promise<void> {
  const [client, server] = await Promise.all([
    Client(listener.address, { authkey, timeout: 5000 }),
    listener.accept({ timeout: 5000 }),
  ]);
  try {
    await client.send({ ping: 1 });
    expect(await server.recv({ timeout: 5000 })).to.deep.equal({ ping: 1 });
    await server.send('pong');
    expect(await client.recv({ timeout: 5000 })).to.equal('pong');
  } finally {
    await client.close();
    await server.close();
  }
}

describe('authentication', function () {
  this.timeout(15_000);
  const unhandled = escapes({ perTest: true });

  describe('Listener and Client with an authkey', () => {
    let listener: Listener;
    afterEach(async () => listener?.close());

    it('authenticates with the same string key, and messages flow both ways', async () => {
      listener = await Listener.listen(LOCALHOST, { authkey: KEY });
      await expectGoodClientAccepted(listener);
      await unhandled.check();
    });

    it('takes a string key as its UTF-8 bytes', async () => {
      listener = await Listener.listen(LOCALHOST, { authkey: 'clé 🔑' });
      await expectGoodClientAccepted(listener, Buffer.from('clé 🔑', 'utf8'));
      await expectGoodClientAccepted(listener, new Uint8Array(Buffer.from('clé 🔑', 'utf8')));
    });

    it('authenticates over a Unix socket too', async () => {
      const key = randomBytes(32);
      listener = await Listener.listen(null, { family: 'AF_UNIX', authkey: key });
      await expectGoodClientAccepted(listener, key);
    });

    it('with a wrong key: Client() rejects with AuthenticationError, the Listener reports it and keeps serving', async () => {
      listener = await Listener.listen(LOCALHOST, { authkey: KEY });
      const reported = nextHandshakeError(listener);
      const accepted = listener.accept({ timeout: 5000 });
      const err = await rejection(Client(listener.address, { authkey: 'not the key' }));
      expect(err).to.be.instanceOf(AuthenticationError);
      expect((err as AuthenticationError).code).to.equal('ERR_AUTH');
      expect(err.message).to.match(/rejected/);
      expect(err).to.have.property('reason', 'rejected');
      const [listenerErr, peer] = await reported;
      expect(listenerErr).to.be.instanceOf(AuthenticationError);
      expect(listenerErr.message).to.match(/wrong/);
      expect(listenerErr).to.have.property('reason', 'wrong-key');
      expect(peer).to.be.an('array').with.lengthOf(2);
      // the pending accept() was not rejected: it gets the next good client
      const [client, server] = await Promise.all([Client(listener.address, { authkey: KEY }), accepted]);
      await client.send('after');
      expect(await server.recv()).to.equal('after');
      await client.close();
      await server.close();
      await unhandled.check();
    });

    it('a Client with a key against a Listener without one fails within its timeout, saying why', async () => {
      listener = await Listener.listen(LOCALHOST);
      const accepted = listener.accept();
      const err = await within(rejection(Client(listener.address, { authkey: KEY, timeout: 400 })), 5000, 'Client()');
      expect(err).to.be.instanceOf(AuthenticationError);
      expect(err.message).to.match(/no challenge received within the 400 ms timeout/);
      expect(err.message).to.match(/is the listener running without an authkey\?/);
      expect(err).to.have.property('reason', 'no-challenge');
      // and the Client closed its connection
      const server = await accepted;
      expect(await within(rejection(server.recv()), 5000, 'recv()')).to.have.property('name', 'EOFError');
      await server.close();
      await unhandled.check();
    });

    it('a Client without a key against a Listener with one: its first recv() rejects with an AuthenticationError hint', async () => {
      listener = await Listener.listen(LOCALHOST, { authkey: KEY });
      const reported = nextHandshakeError(listener);
      const client = await Client(listener.address);
      const err = await rejection(client.recv({ timeout: 5000 }));
      expect(err).to.be.instanceOf(AuthenticationError);
      expect(err.message).to.match(/requires an authkey/);
      expect(err).to.have.property('reason', 'key-required');
      await client.close();
      const [listenerErr] = await reported;
      expect(listenerErr).to.be.instanceOf(AuthenticationError);
      await unhandled.check();
    });

    it('an aborted Client() rejects with the signal reason and closes the connection', async () => {
      listener = await Listener.listen(LOCALHOST); // never sends a challenge
      const accepted = listener.accept();
      const controller = new AbortController();
      const reason = new Error('stop');
      const pending = Client(listener.address, { authkey: KEY, signal: controller.signal });
      const server = await accepted;
      controller.abort(reason);
      expect(await within(rejection(pending), 5000, 'Client()')).to.equal(reason);
      expect(await within(rejection(server.recv()), 5000, 'recv()')).to.have.property('name', 'EOFError');
      await server.close();
      await unhandled.check();
    });

    it('a failed handshake never ends `for await (… of listener)`', async () => {
      listener = await Listener.listen(LOCALHOST, { authkey: KEY });
      const received: unknown[] = [];
      const loop = (async () => {
        for await (const conn of listener) {
          received.push(await conn.recv());
          await conn.close();
          if (received.length === 2) return;
        }
      })();
      for (const [key, value] of [
        [KEY, 'first'],
        ['wrong', 'never'],
        [KEY, 'second'],
      ] as const) {
        try {
          const c = await Client(listener.address, { authkey: key });
          await c.send(value);
          await c.close();
        } catch (err) {
          expect(err).to.be.instanceOf(AuthenticationError);
        }
      }
      await within(loop, 5000, 'the accept loop');
      expect(received).to.deep.equal(['first', 'second']);
      await unhandled.check();
    });
  });

  describe('a Listener against raw sockets that break the handshake', () => {
    let listener: Listener;
    afterEach(async () => listener?.close());

    interface Case {
      name: string;
      act(peer: RawPeer): Promise<void>;
      expected: typeof AuthenticationError | typeof ProtocolError;
      code?: string;
      /** The peer is told `#FAILURE#` before the connection closes. */
      failure?: boolean;
    }

    const cases: Case[] = [
      {
        name: 'a garbage first message (a framed one)',
        act: async (peer) => {
          await peer.readChallenge();
          peer.sendFrame('this is not a digest at all, just some bytes');
        },
        expected: AuthenticationError,
        failure: true,
      },
      {
        name: 'a garbage first message (an HTTP request: not framed at all)',
        act: async (peer) => peer.sendRaw(Buffer.from('GET / HTTP/1.1\r\nHost: example\r\n\r\n')),
        expected: ProtocolError,
        code: 'ERR_MESSAGE_TOO_LONG',
      },
      {
        name: 'a negative length header',
        act: async (peer) => peer.sendRaw(Buffer.from([0xff, 0xff, 0xff, 0xfb])),
        expected: ProtocolError,
        code: 'ERR_BAD_LENGTH',
      },
      {
        name: 'a 300-byte reply',
        act: async (peer) => {
          const challenge = await peer.readChallenge();
          peer.sendFrame(Buffer.concat([modernReply(KEY, challenge), Buffer.alloc(300 - 40)]));
        },
        expected: ProtocolError,
        code: 'ERR_MESSAGE_TOO_LONG',
      },
      {
        name: 'a reply with an unknown digest name ({sha1})',
        act: async (peer) => {
          const challenge = await peer.readChallenge();
          peer.sendFrame(Buffer.concat([Buffer.from('{sha1}'), hmac('sha1', KEY, challenge)]));
        },
        expected: AuthenticationError,
        failure: true,
      },
      {
        name: 'a reply with an unknown digest name ({blake2b512})',
        act: async (peer) => {
          const challenge = await peer.readChallenge();
          peer.sendFrame(Buffer.concat([Buffer.from('{blake2b512}'), hmac('blake2b512', KEY, challenge)]));
        },
        expected: AuthenticationError,
        failure: true,
      },
      {
        name: 'an empty reply',
        act: async (peer) => {
          await peer.readChallenge();
          peer.sendFrame('');
        },
        expected: AuthenticationError,
        failure: true,
      },
      {
        name: 'a reply with a right digest name and a MAC cut short',
        act: async (peer) => {
          const challenge = await peer.readChallenge();
          peer.sendFrame(modernReply(KEY, challenge).subarray(0, -1));
        },
        expected: AuthenticationError,
        failure: true,
      },
      {
        name: 'a legacy 16-byte reply that is wrong',
        act: async (peer) => {
          await peer.readChallenge();
          peer.sendFrame(Buffer.alloc(16));
        },
        expected: AuthenticationError,
        failure: true,
      },
      {
        name: 'a truncated reply (the stream ends inside the frame)',
        act: async (peer) => {
          const challenge = await peer.readChallenge();
          const reply = frame(modernReply(KEY, challenge));
          peer.sendRaw(reply.subarray(0, 20));
          peer.socket.end();
        },
        expected: ProtocolError,
        code: 'ERR_TRUNCATED',
      },
      {
        name: 'a peer that closes before reading the challenge',
        act: async (peer) => void peer.socket.end(),
        expected: AuthenticationError,
      },
      {
        name: 'a peer that closes after reading the challenge',
        act: async (peer) => {
          await peer.readChallenge();
          peer.socket.end();
        },
        expected: AuthenticationError,
      },
      {
        name: 'a peer that resets the connection mid-handshake',
        act: async (peer) => {
          await peer.readChallenge();
          peer.socket.resetAndDestroy();
        },
        expected: AuthenticationError,
      },
      {
        name: 'a peer that answers right, then closes instead of sending its challenge',
        act: async (peer) => {
          peer.sendFrame(modernReply(KEY, await peer.readChallenge()));
          expect(await peer.readFrame()).to.deep.equal(WELCOME);
          peer.socket.end();
        },
        expected: AuthenticationError,
      },
      {
        name: 'a peer that answers right, then sends something that is not a challenge',
        act: async (peer) => {
          peer.sendFrame(modernReply(KEY, await peer.readChallenge()));
          expect(await peer.readFrame()).to.deep.equal(WELCOME);
          peer.sendFrame('hello');
        },
        expected: AuthenticationError,
      },
      {
        name: 'a peer that answers right, then sends a challenge shorter than 20 bytes',
        act: async (peer) => {
          peer.sendFrame(modernReply(KEY, await peer.readChallenge()));
          expect(await peer.readFrame()).to.deep.equal(WELCOME);
          peer.sendFrame(Buffer.concat([CHALLENGE, randomBytes(19)]));
        },
        expected: AuthenticationError,
      },
      {
        name: 'a peer that answers right, then challenges with an unknown digest',
        act: async (peer) => {
          peer.sendFrame(modernReply(KEY, await peer.readChallenge()));
          expect(await peer.readFrame()).to.deep.equal(WELCOME);
          peer.sendFrame(Buffer.concat([CHALLENGE, Buffer.from('{sha1}'), randomBytes(40)]));
        },
        expected: AuthenticationError,
      },
      {
        name: "a peer that answers right, then rejects the Listener's answer",
        act: async (peer) => {
          peer.sendFrame(modernReply(KEY, await peer.readChallenge()));
          expect(await peer.readFrame()).to.deep.equal(WELCOME);
          peer.sendFrame(Buffer.concat([CHALLENGE, Buffer.from('{sha256}'), randomBytes(40)]));
          await peer.readFrame();
          peer.sendFrame(FAILURE);
        },
        expected: AuthenticationError,
      },
      {
        name: 'a peer that answers right, challenges, then closes before the verdict',
        act: async (peer) => {
          peer.sendFrame(modernReply(KEY, await peer.readChallenge()));
          expect(await peer.readFrame()).to.deep.equal(WELCOME);
          peer.sendFrame(Buffer.concat([CHALLENGE, Buffer.from('{sha256}'), randomBytes(40)]));
          await peer.readFrame();
          peer.socket.end();
        },
        expected: AuthenticationError,
      },
    ];

    for (const c of cases) {
      it(`rejects ${c.name} cleanly and accepts the next good client`, async () => {
        listener = await Listener.listen(LOCALHOST, { authkey: KEY, authTimeout: 5000 });
        const accepted = listener.accept({ timeout: 5000 });
        const reported = nextHandshakeError(listener);
        const peer = await RawPeer.connect(listener.address);
        const local = peer.socket.localPort;
        await c.act(peer);
        const [err, from] = await reported;
        expect(err).to.be.instanceOf(c.expected);
        if (c.code !== undefined) expect(err).to.have.property('code', c.code);
        expect(from).to.deep.equal(['127.0.0.1', local]);
        // the Listener closed the peer (and said #FAILURE# first when the reply failed verification)
        await within(peer.ended, 5000, 'the peer being closed');
        if (c.failure) {
          const frames = await peer.readAll().catch(() => [] as Buffer[]);
          expect(frames.map((f) => f.toString('latin1'))).to.include('#FAILURE#');
        }
        peer.destroy();
        // accept() was never rejected by the failure: it gets the next good client
        const [client, server] = await Promise.all([Client(listener.address, { authkey: KEY }), accepted]);
        await client.send('good');
        expect(await server.recv()).to.equal('good');
        await client.close();
        await server.close();
        await unhandled.check();
      });
    }

    it('accepts a raw peer that speaks the protocol right (so the cases above fail for the right reason)', async () => {
      listener = await Listener.listen(LOCALHOST, { authkey: KEY });
      const accepted = listener.accept({ timeout: 5000 });
      const peer = await RawPeer.connect(listener.address);
      const challenge = await peer.readChallenge();
      expect(challenge.subarray(0, 8).toString()).to.equal('{sha256}');
      expect(challenge).to.have.lengthOf(8 + 40);
      peer.sendFrame(modernReply(KEY, challenge));
      expect(await peer.readFrame()).to.deep.equal(WELCOME);
      const ours = Buffer.concat([Buffer.from('{sha3_384}'), randomBytes(40)]);
      peer.sendFrame(Buffer.concat([CHALLENGE, ours]));
      expect(await peer.readFrame()).to.deep.equal(modernReply(KEY, ours));
      peer.sendFrame(WELCOME);
      const server = await accepted;
      peer.sendFrame('raw hello');
      expect((await server.recvBytes()).toString()).to.equal('raw hello');
      await server.close();
      peer.destroy();
    });

    it('accepts a peer that writes every byte of its handshake separately', async () => {
      listener = await Listener.listen(LOCALHOST, { authkey: KEY });
      const accepted = listener.accept({ timeout: 5000 });
      const peer = await RawPeer.connect(listener.address);
      peer.socket.setNoDelay(true);
      const trickle = async (payload: Buffer): Promise<void> => {
        for (const byte of frame(payload)) {
          peer.sendRaw(Buffer.from([byte]));
          await new Promise((resolve) => setImmediate(resolve));
        }
      };
      await trickle(modernReply(KEY, await peer.readChallenge()));
      expect(await peer.readFrame()).to.deep.equal(WELCOME);
      const ours = Buffer.concat([Buffer.from('{sha256}'), randomBytes(40)]);
      await trickle(Buffer.concat([CHALLENGE, ours]));
      expect(await peer.readFrame()).to.deep.equal(modernReply(KEY, ours));
      await trickle(WELCOME);
      const server = await accepted;
      await server.close();
      peer.destroy();
    });

    it('accepts a peer that pipelines its reply, its challenge, its verdict and a first message', async () => {
      listener = await Listener.listen(LOCALHOST, { authkey: KEY });
      const accepted = listener.accept({ timeout: 5000 });
      const peer = await RawPeer.connect(listener.address);
      const ours = Buffer.concat([Buffer.from('{sha256}'), randomBytes(40)]);
      const reply = modernReply(KEY, await peer.readChallenge());
      // all in one write, before reading anything back
      peer.sendRaw(Buffer.concat([frame(reply), frame(Buffer.concat([CHALLENGE, ours])), frame(WELCOME), frame('first')]));
      expect(await peer.readFrame()).to.deep.equal(WELCOME);
      expect(await peer.readFrame()).to.deep.equal(modernReply(KEY, ours));
      const server = await accepted;
      expect((await server.recvBytes()).toString()).to.equal('first');
      await server.close();
      peer.destroy();
    });

    it('accepts a Python <= 3.11 style peer (raw HMAC-MD5 reply, 20-byte challenge)', async () => {
      listener = await Listener.listen(LOCALHOST, { authkey: KEY });
      const accepted = listener.accept({ timeout: 5000 });
      const peer = await RawPeer.connect(listener.address);
      const challenge = await peer.readChallenge();
      // the legacy client MACs everything after #CHALLENGE#, digest prefix included
      peer.sendFrame(hmac('md5', KEY, challenge));
      expect(await peer.readFrame()).to.deep.equal(WELCOME);
      const legacy = randomBytes(20);
      peer.sendFrame(Buffer.concat([CHALLENGE, legacy]));
      expect(await peer.readFrame()).to.deep.equal(hmac('md5', KEY, legacy));
      peer.sendFrame(WELCOME);
      const server = await accepted;
      await server.close();
      peer.destroy();
    });

    it('closes the peers whose handshake is pending when the Listener closes, without reporting or throwing', async () => {
      listener = await Listener.listen(LOCALHOST, { authkey: KEY });
      let reports = 0;
      listener.on('handshakeError', () => reports++);
      const peer = await RawPeer.connect(listener.address);
      await peer.readChallenge();
      await listener.close();
      await within(peer.ended, 5000, 'the pending peer being closed');
      expect(reports).to.equal(0);
      peer.destroy();
      await unhandled.check();
    });
  });

  describe('handshakes are concurrent', () => {
    let listener: Listener;
    afterEach(async () => listener?.close());

    it('null timeouts mean no limit, as Python\'s None (authTimeout on the Listener, timeout on the Client)', async () => {
      listener = await Listener.listen(LOCALHOST, { authkey: KEY, authTimeout: null });
      const client = await Client(listener.address, { authkey: KEY, timeout: null });
      const server = await listener.accept();
      await client.send('no limits');
      expect(await server.recv()).to.equal('no limits');
      await Promise.all([client.close(), server.close()]);
    });

    it('ten silent raw sockets do not stop a good client from being accepted; authTimeout closes them', async () => {
      listener = await Listener.listen(LOCALHOST, { authkey: KEY, authTimeout: 300 });
      const errors: Error[] = [];
      listener.on('handshakeError', (err: Error) => errors.push(err));
      // connected first (the kernel queues them ahead of the good client), then silent
      const silent = await Promise.all(Array.from({ length: 10 }, () => RawPeer.connect(listener.address)));
      const [client, server] = await Promise.all([
        Client(listener.address, { authkey: KEY }),
        listener.accept({ timeout: 1000 }),
      ]);
      await client.send('through');
      expect(await server.recv()).to.equal('through');
      // each silent one was challenged too (its handshake ran alongside)
      await Promise.all(silent.map((p) => p.readChallenge()));
      await within(Promise.all(silent.map((p) => p.ended)), 5000, 'the silent sockets being closed');
      expect(silent.every((p) => p.socket.readableEnded || p.socket.destroyed)).to.equal(true);
      await within(
        (async () => {
          while (errors.length < 10) await once(listener, 'handshakeError');
        })(),
        5000,
        'ten handshake errors',
      );
      for (const err of errors) {
        expect(err).to.be.instanceOf(AuthenticationError);
        expect(err.message).to.match(/did not finish the handshake within 300 ms/);
      }
      // the accepted connection is not subject to authTimeout
      await new Promise((resolve) => setTimeout(resolve, 400));
      await server.send('still open');
      expect(await client.recv()).to.equal('still open');
      for (const p of silent) p.destroy();
      await client.close();
      await server.close();
      await unhandled.check();
    });

    it('several good clients handshake at once while a slow one is mid-handshake, and the slow one still gets in', async () => {
      listener = await Listener.listen(LOCALHOST, { authkey: KEY, authTimeout: 10_000 });
      const slow = await RawPeer.connect(listener.address);
      const challenge = await slow.readChallenge(); // mid-handshake: challenged, not answering yet
      const clients = await Promise.all(
        Array.from({ length: 6 }, async (_, i) => {
          const c = await Client(listener.address, { authkey: KEY });
          await c.send(i);
          return c;
        }),
      );
      const servers = await Promise.all(clients.map(() => listener.accept({ timeout: 1000 })));
      const ids = await Promise.all(servers.map((s) => s.recv()));
      expect([...ids].sort()).to.deep.equal([0, 1, 2, 3, 4, 5]);
      // now the slow one finishes, and is accepted after all
      slow.sendFrame(modernReply(KEY, challenge));
      expect(await slow.readFrame()).to.deep.equal(WELCOME);
      const ours = Buffer.concat([Buffer.from('{sha256}'), randomBytes(40)]);
      slow.sendFrame(Buffer.concat([CHALLENGE, ours]));
      expect(await slow.readFrame()).to.deep.equal(modernReply(KEY, ours));
      slow.sendFrame(WELCOME);
      const last = await listener.accept({ timeout: 5000 });
      slow.sendFrame('slow but sure');
      expect((await last.recvBytes()).toString()).to.equal('slow but sure');
      await Promise.all([...clients, ...servers, last].map((c) => c.close()));
      slow.destroy();
      await unhandled.check();
    });
  });

  describe('a Client against a raw fake listener', () => {
    let server: Awaited<ReturnType<typeof rawServer>> | undefined;
    afterEach(async () => {
      await server?.close();
      server = undefined;
    });

    async function clientError(handle: (peer: RawPeer) => Promise<void>, timeout = 5000): Promise<Error> {
      server = await rawServer(handle);
      const err = await within(rejection(Client(server.address, { authkey: KEY, timeout })), timeout + 5000, 'Client()');
      expect(err).to.be.instanceOf(AuthenticationError);
      return err;
    }

    it('sends its own challenge together with its reply, before the verdict (one round trip fewer)', async () => {
      // Over a Unix socket: over TCP the Client waits for the verdict first (next test).
      const dir = mkdtempSync(join(tmpdir(), 'mpconn-auth-'));
      after(() => rmSync(dir, { recursive: true, force: true }));
      let challengeBeforeVerdict: Buffer | null = null;
      server = await rawServer(async (peer) => {
        const challenge = Buffer.concat([Buffer.from('{sha256}'), randomBytes(40)]);
        peer.sendFrame(Buffer.concat([CHALLENGE, challenge]));
        const reply = (await peer.readFrame())!;
        // No #WELCOME# yet: the Client's challenge must already be on its way.
        challengeBeforeVerdict = await peer.readChallenge();
        peer.sendFrame(reply.equals(modernReply(KEY, challenge)) ? WELCOME : FAILURE);
        peer.sendFrame(modernReply(KEY, challengeBeforeVerdict));
        await peer.readFrame(); // our verdict
        peer.sendFrame('pipelined ok');
      }, { path: join(dir, 'listener') });
      const conn = await Client(server.address, { authkey: KEY, timeout: 5000 });
      expect((await conn.recvBytes()).toString()).to.equal('pipelined ok');
      expect(challengeBeforeVerdict!.subarray(0, 8).toString()).to.equal('{sha256}');
      await conn.close();
    });

    it('over TCP sends its challenge only after #WELCOME# (a CPython listener\'s answer is then not held back by Nagle)', async () => {
      const order: string[] = [];
      server = await rawServer(async (peer) => {
        const challenge = Buffer.concat([Buffer.from('{sha256}'), randomBytes(40)]);
        peer.sendFrame(Buffer.concat([CHALLENGE, challenge]));
        const reply = (await peer.readFrame())!;
        order.push('reply');
        // Nothing else may arrive before our verdict: give a pipelined challenge time to show up.
        await new Promise((resolve) => setTimeout(resolve, 100));
        order.push(peer.bufferedLength === 0 ? 'none' : 'early');
        peer.sendFrame(reply.equals(modernReply(KEY, challenge)) ? WELCOME : FAILURE);
        const theirs = await peer.readFrame();
        order.push('challenge');
        peer.sendFrame(modernReply(KEY, theirs!.subarray(CHALLENGE.length)));
        await peer.readFrame(); // our verdict
        peer.sendFrame('sequential ok');
      });
      const conn = await Client(server.address, { authkey: KEY, timeout: 5000 });
      expect((await conn.recvBytes()).toString()).to.equal('sequential ok');
      expect(order).to.deep.equal(['reply', 'none', 'challenge']);
      await conn.close();
    });

    it('replies to a 20-byte (Python <= 3.11) challenge with the raw HMAC-MD5, and accepts a legacy reply', async () => {
      const seen: Buffer[] = [];
      server = await rawServer(async (peer) => {
        const legacy = randomBytes(20);
        peer.sendFrame(Buffer.concat([CHALLENGE, legacy]));
        const reply = (await peer.readFrame())!;
        seen.push(reply);
        peer.sendFrame(reply.equals(hmac('md5', KEY, legacy)) ? WELCOME : FAILURE);
        const challenge = await peer.readChallenge();
        seen.push(challenge);
        peer.sendFrame(hmac('md5', KEY, challenge)); // Python <= 3.11 answer_challenge
        seen.push((await peer.readFrame())!);
        peer.sendFrame('legacy ok');
      });
      const conn = await Client(server.address, { authkey: KEY });
      expect((await conn.recvBytes()).toString()).to.equal('legacy ok');
      expect(seen[0]).to.have.lengthOf(16);
      expect(seen[1].subarray(0, 8).toString()).to.equal('{sha256}');
      expect(seen[1]).to.have.lengthOf(48);
      expect(seen[2]).to.deep.equal(WELCOME);
      await conn.close();
    });

    for (const digest of DIGESTS) {
      it(`answers a {${digest}} challenge with {${digest}} + HMAC-${digest} of the whole challenge`, async () => {
        const seen: Buffer[] = [];
        let done!: () => void;
        const finished = new Promise<void>((resolve) => (done = resolve));
        server = await rawServer(async (peer) => {
          const challenge = Buffer.concat([Buffer.from(`{${digest}}`), randomBytes(40)]);
          peer.sendFrame(Buffer.concat([CHALLENGE, challenge]));
          const reply = (await peer.readFrame())!;
          seen.push(reply);
          peer.sendFrame(reply.equals(modernReply(KEY, challenge)) ? WELCOME : FAILURE);
          peer.sendFrame(modernReply(KEY, await peer.readChallenge()));
          seen.push((await peer.readFrame())!);
          done();
        });
        const conn = await Client(server.address, { authkey: KEY });
        await within(finished, 5000, 'the fake listener reading the verdict');
        expect(seen[0].subarray(0, digest.length + 2).toString()).to.equal(`{${digest}}`);
        expect(seen[0]).to.have.lengthOf(digest.length + 2 + MAC_LENGTH[digest]);
        expect(seen[1]).to.deep.equal(WELCOME);
        await conn.close();
      });
    }

    it('authenticates with a listener that writes every byte separately', async () => {
      server = await rawServer(async (peer) => {
        peer.socket.setNoDelay(true);
        const trickle = async (payload: Buffer): Promise<void> => {
          for (const byte of frame(payload)) {
            peer.sendRaw(Buffer.from([byte]));
            await new Promise((resolve) => setImmediate(resolve));
          }
        };
        const challenge = Buffer.concat([Buffer.from('{sha384}'), randomBytes(40)]);
        await trickle(Buffer.concat([CHALLENGE, challenge]));
        const reply = (await peer.readFrame())!;
        await trickle(reply.equals(modernReply(KEY, challenge)) ? WELCOME : FAILURE);
        await trickle(modernReply(KEY, await peer.readChallenge()));
        if ((await peer.readFrame())!.equals(WELCOME)) await trickle(Buffer.from('in'));
      });
      const conn = await Client(server.address, { authkey: KEY });
      expect((await conn.recvBytes()).toString()).to.equal('in');
      await conn.close();
    });

    it('rejects a challenge shorter than 20 bytes', async () => {
      const err = await clientError(async (peer) => peer.sendFrame(Buffer.concat([CHALLENGE, randomBytes(19)])));
      expect(err.message).to.match(/too short/);
      expect(err).to.have.property('reason', 'bad-message');
    });

    it('rejects a challenge with an unknown digest', async () => {
      const err = await clientError(async (peer) =>
        peer.sendFrame(Buffer.concat([CHALLENGE, Buffer.from('{sha1}'), randomBytes(40)])),
      );
      expect(err.message).to.match(/digest/);
      expect(err).to.have.property('reason', 'bad-message');
    });

    it('rejects a first message that is not a challenge, and suggests the listener has no authkey', async () => {
      const err = await clientError(async (peer) => peer.sendFrame('welcome to the service'));
      expect(err.message).to.match(/expected a challenge/);
      expect(err.message).to.match(/without an authkey/);
      expect(err).to.have.property('reason', 'no-challenge');
    });

    it('rejects a 300-byte first message, saying it broke the limit (not that the listener closed)', async () => {
      const err = await clientError(async (peer) => peer.sendFrame(Buffer.concat([CHALLENGE, Buffer.alloc(289)])));
      expect(err.cause).to.be.instanceOf(ProtocolError);
      expect(err.cause).to.have.property('code', 'ERR_MESSAGE_TOO_LONG');
      expect(err.message).to.not.match(/closed the connection/);
      expect(err.message).to.match(/256|too long|limit/);
      expect(err).to.have.property('reason', 'protocol');
    });

    it('rejects a listener that closes right away', async () => {
      const err = await clientError(async (peer) => peer.destroy());
      expect(err.message).to.match(/closed the connection/);
      expect(err).to.have.property('reason', 'closed');
    });

    it('rejects #FAILURE# as the verdict on its answer', async () => {
      const err = await clientError(async (peer) => {
        peer.sendFrame(Buffer.concat([CHALLENGE, Buffer.from('{sha256}'), randomBytes(40)]));
        await peer.readFrame();
        peer.sendFrame(FAILURE);
      });
      expect(err.message).to.match(/rejected/);
      expect(err).to.have.property('reason', 'rejected');
    });

    it('fails with the "no challenge received" message when the listener says nothing', async () => {
      const err = await clientError(async (peer) => {
        await peer.readFrame().catch(() => null);
      }, 300);
      expect(err.message).to.match(/no challenge received/);
    });

    it('fails with a timeout message naming the handshake when the listener stops answering mid-way', async () => {
      const err = await clientError(async (peer) => {
        peer.sendFrame(Buffer.concat([CHALLENGE, Buffer.from('{sha256}'), randomBytes(40)]));
        await peer.readFrame(); // and then nothing
      }, 400);
      expect(err.message).to.match(/did not finish within the 400 ms timeout/);
      expect(err.message).to.not.match(/no challenge received/);
      expect(err).to.have.property('reason', 'timeout');
    });

    it('rejects a listener whose answer to our challenge is wrong, and tells it #FAILURE#', async () => {
      let verdict: Buffer | null = null;
      const err = await clientError(async (peer) => {
        const challenge = Buffer.concat([Buffer.from('{sha256}'), randomBytes(40)]);
        peer.sendFrame(Buffer.concat([CHALLENGE, challenge]));
        await peer.readFrame();
        peer.sendFrame(WELCOME);
        await peer.readChallenge();
        peer.sendFrame(Buffer.concat([Buffer.from('{sha256}'), randomBytes(32)]));
        verdict = await peer.readFrame();
      });
      expect(err.message).to.match(/wrong/);
      expect(err).to.have.property('reason', 'wrong-key');
      await within(
        (async () => {
          while (verdict === null) await new Promise((resolve) => setTimeout(resolve, 10));
        })(),
        5000,
        'the verdict',
      );
      expect(verdict).to.deep.equal(FAILURE);
    });
  });

  describe('deliverChallenge and answerChallenge', () => {
    const pairs: Connection[] = [];
    async function pipe(): Promise<[Connection, Connection]> {
      const pair = await Pipe();
      pairs.push(...pair);
      return pair;
    }
    afterEach(async () => {
      await Promise.all(pairs.splice(0).map((c) => c.close()));
    });

    for (const digest of DIGESTS) {
      it(`authenticate each other with digest ${digest}`, async () => {
        const [a, b] = await pipe();
        await Promise.all([deliverChallenge(a, KEY, digest), answerChallenge(b, KEY)]);
        await Promise.all([deliverChallenge(b, KEY, digest), answerChallenge(a, KEY)]);
        await a.sendBytes(Buffer.from('after'));
        expect((await b.recvBytes()).toString()).to.equal('after');
      });
    }

    it('deliverChallenge sends {sha256} + 40 random bytes by default', async () => {
      const [a, b] = await pipe();
      const delivered = deliverChallenge(a, KEY);
      const first = await b.recvBytes();
      expect(first.subarray(0, CHALLENGE.length)).to.deep.equal(CHALLENGE);
      expect(first.subarray(CHALLENGE.length, CHALLENGE.length + 8).toString()).to.equal('{sha256}');
      expect(first).to.have.lengthOf(CHALLENGE.length + 8 + 40);
      await b.close();
      expect(await rejection(delivered)).to.be.instanceOf(Error);
    });

    it('deliverChallenge accepts a raw 16-byte HMAC-MD5 reply (a Python <= 3.11 answer_challenge)', async () => {
      const [a, b] = await pipe();
      const delivered = deliverChallenge(a, KEY, 'sha384');
      const challenge = (await b.recvBytes()).subarray(CHALLENGE.length);
      await b.sendBytes(hmac('md5', KEY, challenge));
      await delivered;
      expect(await b.recvBytes()).to.deep.equal(WELCOME);
    });

    it('deliverChallenge rejects a reply for a different challenge and sends #FAILURE#', async () => {
      const [a, b] = await pipe();
      const delivered = deliverChallenge(a, KEY);
      await b.recvBytes();
      await b.sendBytes(modernReply(KEY, Buffer.concat([Buffer.from('{sha256}'), randomBytes(40)])));
      const err = await rejection(delivered);
      expect(err).to.be.instanceOf(AuthenticationError);
      expect(await b.recvBytes()).to.deep.equal(FAILURE);
    });

    it('answerChallenge replies to a 20-byte challenge with exactly the raw HMAC-MD5 (Python <= 3.11 deliver_challenge)', async () => {
      const [a, b] = await pipe();
      const legacy = randomBytes(20);
      await a.sendBytes(Buffer.concat([CHALLENGE, legacy]));
      const answered = answerChallenge(b, KEY);
      expect(await a.recvBytes()).to.deep.equal(hmac('md5', KEY, legacy));
      await a.sendBytes(WELCOME);
      await answered;
    });

    it('answerChallenge rejects anything but #WELCOME# as the verdict', async () => {
      const [a, b] = await pipe();
      await a.sendBytes(Buffer.concat([CHALLENGE, randomBytes(20)]));
      const answered = answerChallenge(b, KEY);
      await a.recvBytes();
      await a.sendBytes(Buffer.from('#WELCOME#!'));
      expect(await rejection(answered)).to.be.instanceOf(AuthenticationError);
    });

    it('deliverChallenge rejects an unknown digest with a RangeError', async () => {
      const [a] = await pipe();
      for (const digest of ['sha1', 'SHA256', 'sha3-256', 'sha512', '']) {
        expect(await rejection(deliverChallenge(a, KEY, digest)), digest).to.be.instanceOf(RangeError);
      }
    });

    it('property: equal keys authenticate, different keys fail on both sides', async function () {
      this.timeout(60_000);
      const [x, y] = await pipe();
      const key = fc.oneof(fc.string({ maxLength: 40 }), fc.uint8Array({ maxLength: 80 }));
      const bytes = (k: string | Uint8Array): Buffer => Buffer.from(k as Uint8Array);
      await fc.assert(
        fc.asyncProperty(key, key, fc.constantFrom(...DIGESTS), async (k1, k2, digest) => {
          const same = bytes(k1).equals(bytes(k2));
          const results = await Promise.allSettled([deliverChallenge(x, k1, digest), answerChallenge(y, k2)]);
          if (same) {
            expect(results.map((r) => r.status)).to.deep.equal(['fulfilled', 'fulfilled']);
          } else {
            for (const r of results) {
              expect(r.status).to.equal('rejected');
              expect((r as PromiseRejectedResult).reason).to.be.instanceOf(AuthenticationError);
            }
          }
          // both sides consumed exactly the handshake's messages: the pair is still in step
          await x.sendBytes(Buffer.from('sync'));
          expect((await y.recvBytes()).toString()).to.equal('sync');
        }),
        { numRuns: 60 },
      );
    });
  });

  describe('authkey values', () => {
    let listener: Listener | undefined;
    afterEach(async () => {
      await listener?.close();
      listener = undefined;
    });
    const notKeys: [string, unknown][] = [
      ['a number', 42],
      ['an object', { key: 'x' }],
      ['an array of bytes', [1, 2, 3]],
      ['an ArrayBuffer', new ArrayBuffer(4)],
      ['a boolean', true],
    ];

    for (const [what, value] of notKeys) {
      it(`rejects ${what} as an authkey with a TypeError everywhere`, async () => {
        expect(await rejection(Listener.listen(LOCALHOST, { authkey: value as string })), 'Listener.listen').to.be.instanceOf(
          TypeError,
        );
        listener = await Listener.listen(LOCALHOST);
        expect(await rejection(Client(listener.address, { authkey: value as string })), 'Client').to.be.instanceOf(
          TypeError,
        );
        const [a, b] = await Pipe();
        expect(await rejection(deliverChallenge(a, value as string)), 'deliverChallenge').to.be.instanceOf(TypeError);
        expect(await rejection(answerChallenge(b, value as string)), 'answerChallenge').to.be.instanceOf(TypeError);
        // nothing was sent: the pair is still clean
        await a.sendBytes(Buffer.from('clean'));
        expect((await b.recvBytes()).toString()).to.equal('clean');
        await a.close();
        await b.close();
      });
    }

    it('deliverChallenge and answerChallenge take no null key', async () => {
      const [a, b] = await Pipe();
      expect(await rejection(deliverChallenge(a, null as unknown as string))).to.be.instanceOf(TypeError);
      expect(await rejection(answerChallenge(b, undefined as unknown as string))).to.be.instanceOf(TypeError);
      await a.close();
      await b.close();
    });

    it('a bad authkey does not leave a socket bound', async () => {
      const path = `/tmp/mpconn-auth-test-${process.pid}-${Date.now()}.sock`;
      expect(await rejection(Listener.listen(path, { authkey: 1 as unknown as string }))).to.be.instanceOf(TypeError);
      listener = await Listener.listen(path);
      expect(listener.address).to.equal(path);
    });

    for (const [serverKey, clientKey, label] of [
      ['', '', "'' and ''"],
      [new Uint8Array(0), '', "new Uint8Array(0) and ''"],
      ['', new Uint8Array(0), "'' and new Uint8Array(0)"],
    ] as const) {
      it(`an empty key is a key: ${label} authenticate`, async () => {
        listener = await Listener.listen(LOCALHOST, { authkey: serverKey });
        await expectGoodClientAccepted(listener, clientKey);
      });
    }

    it('an empty key is a key: a Listener with one challenges a Client without one', async () => {
      listener = await Listener.listen(LOCALHOST, { authkey: '' });
      const client = await Client(listener.address);
      expect(await rejection(client.recv({ timeout: 5000 }))).to.be.instanceOf(AuthenticationError);
      await client.close();
    });

    it('an empty key is a key: a Client with one fails against a Listener without one', async () => {
      listener = await Listener.listen(LOCALHOST);
      const err = await rejection(Client(listener.address, { authkey: new Uint8Array(0), timeout: 300 }));
      expect(err).to.be.instanceOf(AuthenticationError);
      expect(err.message).to.match(/no challenge received/);
    });

    it('an empty key and a non-empty key do not authenticate', async () => {
      listener = await Listener.listen(LOCALHOST, { authkey: '' });
      expect(await rejection(Client(listener.address, { authkey: 'x' }))).to.be.instanceOf(AuthenticationError);
    });

    it('the Listener keeps the key it was given, even if the caller reuses or wipes the buffer (Python bytes are immutable)', async () => {
      const key = Buffer.from('a key in a buffer');
      listener = await Listener.listen(LOCALHOST, { authkey: key });
      key.fill(0);
      await expectGoodClientAccepted(listener, 'a key in a buffer');
    });

    it('Client() and deliverChallenge keep the key they were called with while the handshake runs', async () => {
      listener = await Listener.listen(LOCALHOST, { authkey: 'a key in a buffer' });
      const key = Buffer.from('a key in a buffer');
      const connecting = Client(listener.address, { authkey: key });
      key.fill(0); // the handshake has not even started: it waits for the socket
      const [client, server] = await Promise.all([connecting, listener.accept({ timeout: 5000 })]);
      await client.close();
      await server.close();
      const [a, b] = await Pipe();
      const key2 = Buffer.from('another key');
      const delivered = deliverChallenge(a, key2);
      key2.fill(0); // the reply is verified after the peer answers
      await Promise.all([delivered, answerChallenge(b, 'another key')]);
      await a.close();
      await b.close();
    });

    it('null or undefined authkey means no authentication', async () => {
      listener = await Listener.listen(LOCALHOST, { authkey: null });
      for (const opts of [{ authkey: null }, { authkey: undefined }, {}]) {
        const [client, server] = await Promise.all([Client(listener.address, opts), listener.accept()]);
        await client.send('plain');
        expect(await server.recv()).to.equal('plain');
        await client.close();
        await server.close();
      }
    });
  });

  describe('Python-compatible names', () => {
    it('deliver_challenge and answer_challenge are deliverChallenge and answerChallenge', async () => {
      expect(deliver_challenge).to.equal(deliverChallenge);
      expect(answer_challenge).to.equal(answerChallenge);
      const [a, b] = await Pipe();
      await Promise.all([deliver_challenge(a, KEY), answer_challenge(b, KEY)]);
      await a.close();
      await b.close();
    });
  });
});
