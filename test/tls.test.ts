/**
 * The `tls` option of Listener.listen and Client (AF_INET), with a
 * certificate made by `openssl` at test time.
 */
import { execFileSync } from 'node:child_process';
import { once } from 'node:events';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import net from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { randomBytes } from 'node:crypto';
import tls from 'node:tls';
import { expect } from 'chai';
import { type Address, AuthenticationError, Client, type Connection, EOFError, Listener, MpconnError } from 'mpconn';
import { modernReply, RawPeer, WELCOME } from './helpers/auth-raw.js';
import { frame, rejectionOf as rejection, until, within } from './helpers/wire.js';

interface Certificate {
  key: Buffer;
  cert: Buffer;
}

/** A self-signed EC certificate for `localhost` and 127.0.0.1, or the reason there is none. */
function makeCertificate(dir: string): Certificate | string {
  try {
    execFileSync('openssl', ['version'], { stdio: 'ignore' });
  } catch {
    return 'openssl was not found on PATH';
  }
  const key = join(dir, 'key.pem');
  const cert = join(dir, 'cert.pem');
  execFileSync(
    'openssl',
    [
      'req', '-x509', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:prime256v1', '-nodes',
      '-keyout', key, '-out', cert, '-days', '2', '-subj', '/CN=localhost',
      '-addext', 'subjectAltName=DNS:localhost,IP:127.0.0.1',
    ],
    { stdio: ['ignore', 'ignore', 'pipe'] },
  );
  return { key: readFileSync(key), cert: readFileSync(cert) };
}

/** A TCP relay to `target` that keeps every byte it carries, to see what is on the wire. */
async function recordingProxy(target: Address): Promise<{ port: number; wire: () => Buffer; close: () => void }> {
  const [host, port] = target as [string, number];
  const chunks: Buffer[] = [];
  const sockets = new Set<net.Socket>();
  const server = net.createServer((down) => {
    const up = net.connect({ host, port });
    for (const s of [down, up]) {
      sockets.add(s);
      s.on('error', () => {});
      s.on('data', (d: Buffer) => chunks.push(d));
    }
    down.pipe(up);
    up.pipe(down);
  });
  server.listen(0, '127.0.0.1');
  await once(server, 'listening');
  return {
    port: (server.address() as net.AddressInfo).port,
    wire: () => Buffer.concat(chunks),
    close: () => {
      for (const s of sockets) s.destroy();
      server.close();
    },
  };
}

const dir = mkdtempSync(join(tmpdir(), 'mpconn-tls-test-'));
const certificate = makeCertificate(dir);
after(() => rmSync(dir, { recursive: true, force: true }));

describe('TLS (the tls option, AF_INET)', function () {
  this.timeout(20_000);
  if (typeof certificate === 'string') {
    it(`SKIPPED: ${certificate}, so no test certificate could be made and the TLS tests did not run`);
    return;
  }
  const { key, cert } = certificate;
  const trusted = { ca: cert };
  let listener: Listener | null = null;
  const open: Connection[] = [];
  afterEach(async () => {
    await Promise.all(open.splice(0).map((c) => c.close()));
    await listener?.close();
    listener = null;
  });
  const keep = (conn: Connection): Connection => {
    open.push(conn);
    return conn;
  };
  const portOf = (l: Listener): number => (l.address as [string, number])[1];

  it('a listener that ends its stream with its last handshake message: the Client still sees the end (EOFError, no hang)', async () => {
    // The answer and TLS's close_notify are written together, so the client may
    // decrypt both in one read: the handshake's end and the stream's end come at once.
    const sockets = new Set<tls.TLSSocket>();
    const server = tls.createServer({ key, cert, allowHalfOpen: true }, (socket) => {
      sockets.add(socket);
      const peer = RawPeer.accepted(socket);
      void (async () => {
        const ours = Buffer.concat([Buffer.from('{sha256}'), randomBytes(40)]);
        peer.sendFrame(Buffer.concat([Buffer.from('#CHALLENGE#'), ours]));
        expect(await peer.readFrame()).to.deep.equal(modernReply('k', ours));
        peer.sendFrame(WELCOME);
        const theirs = await peer.readChallenge();
        socket.end(frame(modernReply('k', theirs)));
      })().catch(() => socket.destroy());
    });
    server.listen(0, '127.0.0.1');
    await once(server, 'listening');
    try {
      const port = (server.address() as net.AddressInfo).port;
      for (let i = 0; i < 5; i++) {
        const client = keep(await Client(['127.0.0.1', port], { authkey: 'k', tls: { ...trusted, servername: 'localhost' } }));
        expect(await within(rejection(client.recv()), 5000, 'the end of the stream')).to.be.instanceOf(EOFError);
      }
    } finally {
      for (const s of sockets) s.destroy();
      server.close();
    }
  });

  it('client and server exchange messages in both directions', async () => {
    listener = await Listener.listen(['localhost', 0], { tls: { key, cert } });
    const client = keep(await Client(['localhost', portOf(listener)], { tls: trusted }));
    const server = keep(await listener.accept());
    await client.send({ over: 'tls', bytes: Uint8Array.from([1, 2, 3]) });
    expect(await server.recv()).to.deep.equal({ over: 'tls', bytes: Uint8Array.from([1, 2, 3]) });
    await server.sendBytes(Buffer.from('reply bytes'));
    expect((await client.recvBytes()).toString()).to.equal('reply bytes');
    await client.close();
    expect(await server.recv().catch((e: unknown) => (e as Error).name)).to.equal('EOFError');
  });

  it('carries the messages encrypted: a relay in between sees none of their bytes', async () => {
    listener = await Listener.listen(['127.0.0.1', 0], { tls: { key, cert }, serializer: 'json' });
    const proxy = await recordingProxy(listener.address);
    try {
      const client = keep(await Client(['localhost', proxy.port], { tls: trusted, serializer: 'json' }));
      const server = keep(await listener.accept());
      await client.send('a plaintext marker 1234567890');
      expect(await server.recv()).to.equal('a plaintext marker 1234567890');
      await server.send('the reply marker 0987654321');
      expect(await client.recv()).to.equal('the reply marker 0987654321');
      const wire = proxy.wire();
      expect(wire.length).to.be.greaterThan(0);
      expect(wire.includes('plaintext marker')).to.equal(false);
      expect(wire.includes('reply marker')).to.equal(false);
    } finally {
      proxy.close();
    }
  });

  it('a client that does not trust the certificate fails with a clear error, and the listener keeps serving', async () => {
    listener = await Listener.listen(['localhost', 0], { tls: { key, cert } });
    const err = await rejection(Client(['localhost', portOf(listener)], { tls: {} }));
    expect(err.code).to.equal('DEPTH_ZERO_SELF_SIGNED_CERT');
    expect(err.message).to.match(/self[- ]signed certificate/);
    // Node's TLS client checks the certificate after the TLS handshake, so the
    // listener may see a connection that ends at once; it delivers no message.
    const client = keep(await Client(['localhost', portOf(listener)], { tls: trusted }));
    await client.send('after the refused one');
    const received: unknown[] = [];
    for await (const conn of listener) {
      keep(conn);
      const message = await conn.recv().catch(() => null);
      if (message !== null) {
        received.push(message);
        break;
      }
    }
    expect(received).to.deep.equal(['after the refused one']);
  });

  it('a peer that connects and never starts TLS is closed after authTimeout and reported', async () => {
    listener = await Listener.listen(['127.0.0.1', 0], { tls: { key, cert }, authTimeout: 300 });
    const reported = once(listener, 'handshakeError');
    const silent = net.connect({ host: '127.0.0.1', port: portOf(listener) });
    silent.on('error', () => {});
    await once(silent, 'connect');
    await once(silent, 'close'); // Node's own TLS handshake timeout is 120 s: the test would time out
    const [serverErr] = (await reported) as [Error];
    expect(serverErr).to.be.instanceOf(AuthenticationError);
    expect(serverErr.message).to.match(/^TLS handshake failed: .*timeout/i);
  });

  it('peers still in their TLS handshake count in maxPending: over it the oldest are closed (ERR_TOO_MANY_PENDING), a TLS client still gets in', async () => {
    listener = await Listener.listen(['127.0.0.1', 0], { tls: { key, cert }, maxPending: 3, authTimeout: 60_000 });
    const dropped: [Error, unknown][] = [];
    const handshakeErrors: Error[] = [];
    listener.on('acceptError', (err: Error, peer: unknown) => dropped.push([err, peer]));
    listener.on('handshakeError', (err: Error) => handshakeErrors.push(err));
    const silent = Array.from({ length: 8 }, () => net.connect({ host: '127.0.0.1', port: portOf(listener!) }));
    try {
      for (const s of silent) s.on('error', () => {}).resume();
      await Promise.all(silent.map((s) => once(s, 'connect')));
      await until(() => dropped.length === 5, 10_000, '5 silent peers dropped');
      for (const [err, peer] of dropped) {
        expect(err).to.be.instanceOf(MpconnError);
        expect((err as MpconnError).code).to.equal('ERR_TOO_MANY_PENDING');
        expect(peer).to.be.an('array');
      }
      // The oldest five are closed (Node's own TLS handshake timeout is 120 s, authTimeout here 60 s: only the limit closes them).
      await within(Promise.all(silent.slice(0, 5).map((s) => (s.destroyed ? null : once(s, 'close')))), 10_000, 'oldest closed');
      expect(silent.slice(5).every((s) => !s.destroyed)).to.equal(true);
      // A real TLS client takes the place of the oldest silent one left and is accepted.
      const accepted = listener.accept();
      const client = keep(await Client(['localhost', portOf(listener)], { tls: trusted }));
      await client.send('through');
      expect(await keep(await within(accepted, 10_000, 'accept')).recv()).to.equal('through');
      expect(dropped).to.have.length(6);
      expect(handshakeErrors).to.deep.equal([]); // a dropped peer is reported once, as dropped
    } finally {
      for (const s of silent) s.destroy();
    }
  });

  it('a peer that leaves in its TLS handshake gives its place back: later ones are not dropped for it', async () => {
    listener = await Listener.listen(['127.0.0.1', 0], { tls: { key, cert }, maxPending: 3, authTimeout: 60_000 });
    const dropped: Error[] = [];
    listener.on('acceptError', (err: Error) => dropped.push(err));
    const reported = once(listener, 'handshakeError');
    const leaving = net.connect({ host: '127.0.0.1', port: portOf(listener) }).on('error', () => {});
    await once(leaving, 'connect');
    leaving.resetAndDestroy(); // an RST: the listener's socket errors at once (a FIN would leave it half open, pending)
    const [err] = (await within(reported, 10_000, 'the leaving peer reported')) as [Error];
    expect(err.message).to.match(/^TLS handshake failed: /);
    // Two silent peers and a TLS client fill maxPending exactly: none is dropped if the leaver's place was given back.
    const silent = [0, 1].map(() => net.connect({ host: '127.0.0.1', port: portOf(listener!) }).on('error', () => {}).resume());
    try {
      await Promise.all(silent.map((s) => once(s, 'connect')));
      const accepted = listener.accept();
      const client = keep(await Client(['localhost', portOf(listener)], { tls: trusted }));
      await client.send('in');
      expect(await keep(await within(accepted, 10_000, 'accept')).recv()).to.equal('in');
      expect(dropped).to.deep.equal([]);
      expect(silent.every((s) => !s.destroyed)).to.equal(true);
    } finally {
      for (const s of silent) s.destroy();
    }
  });

  it('close() closes the peers still in their TLS handshake', async () => {
    listener = await Listener.listen(['127.0.0.1', 0], { tls: { key, cert }, maxPending: 1, authTimeout: 60_000 });
    let dropped = 0;
    listener.on('acceptError', () => dropped++);
    const [first, second] = [0, 1].map(() => net.connect({ host: '127.0.0.1', port: portOf(listener!) }).on('error', () => {}).resume());
    await once(first!, 'connect');
    await once(second!, 'connect');
    // The second took the first's place: the listener holds it, pending.
    await until(() => dropped === 1 && first!.destroyed, 10_000, 'the first peer dropped for the second');
    expect(second!.destroyed).to.equal(false);
    const closed = once(second!, 'close');
    await listener.close();
    await within(closed, 5_000, 'the pending peer closed by close()');
  });

  it('a client that speaks plain TCP to a TLS listener is reported and closed', async () => {
    listener = await Listener.listen(['localhost', 0], { tls: { key, cert } });
    const reported = once(listener, 'handshakeError');
    const plain = keep(await Client(['localhost', portOf(listener)]));
    await plain.send('not a TLS ClientHello');
    const [serverErr] = (await reported) as [Error];
    expect(serverErr).to.be.instanceOf(AuthenticationError);
    expect(serverErr.message).to.match(/^TLS handshake failed: /);
    expect(await plain.recv().catch((e: unknown) => e)).to.be.instanceOf(Error);
  });

  it('a client refuses a certificate issued for another name', async () => {
    listener = await Listener.listen(['127.0.0.1', 0], { tls: { key, cert } });
    const err = await rejection(Client(['127.0.0.1', portOf(listener)], { tls: { ...trusted, servername: 'db.example.org' } }));
    expect(err.code).to.equal('ERR_TLS_CERT_ALTNAME_INVALID');
    expect(err.message).to.include('db.example.org');
  });

  describe('with an authkey', () => {
    const authkey = 'tls and hmac';

    it('authenticates, and the challenge runs inside TLS (a relay sees no #CHALLENGE#)', async () => {
      listener = await Listener.listen(['127.0.0.1', 0], { tls: { key, cert }, authkey });
      const proxy = await recordingProxy(listener.address);
      try {
        const client = keep(await Client(['localhost', proxy.port], { tls: trusted, authkey }));
        const server = keep(await listener.accept());
        await client.send('authenticated over tls');
        expect(await server.recv()).to.equal('authenticated over tls');
        const wire = proxy.wire();
        expect(wire.includes('#CHALLENGE#')).to.equal(false);
        expect(wire.includes('#WELCOME#')).to.equal(false);
      } finally {
        proxy.close();
      }
    });

    it('(control) the same relay does see #CHALLENGE# and #WELCOME# without TLS', async () => {
      listener = await Listener.listen(['127.0.0.1', 0], { authkey });
      const proxy = await recordingProxy(listener.address);
      try {
        keep(await Client(['127.0.0.1', proxy.port], { authkey }));
        keep(await listener.accept());
        const wire = proxy.wire();
        expect(wire.includes('#CHALLENGE#')).to.equal(true);
        expect(wire.includes('#WELCOME#')).to.equal(true);
      } finally {
        proxy.close();
      }
    });

    it('a wrong key still fails as AuthenticationError on both sides, over a trusted TLS channel', async () => {
      listener = await Listener.listen(['localhost', 0], { tls: { key, cert }, authkey });
      const reported = once(listener, 'handshakeError');
      const err = await rejection(Client(['localhost', portOf(listener)], { tls: trusted, authkey: 'another key' }));
      expect(err).to.be.instanceOf(AuthenticationError);
      expect(err.code).to.equal('ERR_AUTH');
      const [serverErr] = (await reported) as [Error];
      expect(serverErr).to.be.instanceOf(AuthenticationError);
      expect(serverErr.message).not.to.match(/TLS/); // TLS itself went fine: the key was wrong
    });

    it('a client without TLS fails as AuthenticationError (no challenge comes) and the listener keeps serving', async () => {
      listener = await Listener.listen(['localhost', 0], { tls: { key, cert }, authkey });
      // the plain client waits for a challenge the TLS listener never sends in clear: its timeout ends it
      const err = await rejection(Client(['localhost', portOf(listener)], { authkey, timeout: 1_000 }));
      expect(err).to.be.instanceOf(AuthenticationError);
      expect(err.message).to.match(/no challenge received/);
      const client = keep(await Client(['localhost', portOf(listener)], { tls: trusted, authkey }));
      const server = keep(await listener.accept());
      await client.send('served');
      expect(await server.recv()).to.equal('served');
    });
  });

  it('is refused for Unix socket addresses, with a TypeError', async () => {
    const path = join(dir, 'no-tls.sock');
    expect(await rejection(Listener.listen(path, { tls: { key, cert } }))).to.be.instanceOf(TypeError);
    expect(await rejection(Client(path, { tls: trusted }))).to.be.instanceOf(TypeError);
  });
});
