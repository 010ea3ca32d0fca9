/**
 * `diagnostics_channel` events and `NODE_DEBUG=mpconn` lines for connect,
 * accept, handshake (ok and failed), close and framing errors.
 */
import diagnostics from 'node:diagnostics_channel';
import { once } from 'node:events';
import net from 'node:net';
import { expect } from 'chai';
import { AuthenticationError, Client, Listener, ProtocolError } from '../src/index.js';
import { publish } from '../src/internal.js';
import type { ChildLines } from './helpers/child-lines.js';
import { MPCONN, runNode } from './helpers/node.js';
import { forEachPython, pythonsKilledAfterEach } from './helpers/python.js';
import { header, rejectionOf, until } from './helpers/wire.js';

const NAMES = [
  'mpconn:client:connect',
  'mpconn:listener:accept',
  'mpconn:handshake:ok',
  'mpconn:handshake:error',
  'mpconn:connection:close',
  'mpconn:connection:error',
] as const;

type Event = { channel: string; message: Record<string, unknown> };

/** Subscribes to every mpconn channel; `stop()` unsubscribes. */
function record(): { events: Event[]; of(channel: string): Record<string, unknown>[]; stop(): void } {
  const events: Event[] = [];
  const handlers = NAMES.map((name) => {
    const handler = (message: unknown): void => void events.push({ channel: name, message: message as Record<string, unknown> });
    diagnostics.subscribe(name, handler);
    return [name, handler] as const;
  });
  return {
    events,
    of: (channel) => events.filter((e) => e.channel === channel).map((e) => e.message),
    stop: () => {
      for (const [name, handler] of handlers) diagnostics.unsubscribe(name, handler);
    },
  };
}

const LOCALHOST: [string, number] = ['127.0.0.1', 0];

describe('diagnostics_channel', function () {
  this.timeout(20_000);
  let recorder: ReturnType<typeof record> | null = null;
  let listener: Listener | null = null;
  afterEach(async () => {
    recorder?.stop();
    recorder = null;
    await listener?.close();
    listener = null;
  });

  it('publishes connect, accept and handshake ok with the connection objects and addresses', async () => {
    recorder = record();
    listener = await Listener.listen(LOCALHOST, { authkey: 'key' });
    const [client, server] = await Promise.all([Client(listener.address, { authkey: 'key' }), listener.accept()]);
    const [connect] = recorder.of('mpconn:client:connect');
    expect(connect).to.deep.include({ connection: client, address: listener.address, family: 'AF_INET' });
    const [accept] = recorder.of('mpconn:listener:accept');
    expect(accept!.listener).to.equal(listener);
    expect(accept!.connection).to.equal(server);
    const [peerHost, peerPort] = accept!.peer as [string, number];
    expect(peerHost).to.equal('127.0.0.1');
    expect(peerPort).to.be.a('number').and.not.equal((listener.address as [string, number])[1]);
    const ok = recorder.of('mpconn:handshake:ok');
    expect(ok.map((m) => m.side).sort()).to.deep.equal(['client', 'listener']);
    expect(ok.find((m) => m.side === 'client')).to.deep.include({ connection: client, peer: listener.address });
    expect(ok.find((m) => m.side === 'listener')).to.deep.include({ connection: server, peer: accept!.peer });
    expect(recorder.of('mpconn:handshake:error')).to.deep.equal([]);
    await client.close();
    server.destroy();
    const closes = recorder.of('mpconn:connection:close');
    expect(closes).to.deep.equal([
      { connection: client, reason: 'close' },
      { connection: server, reason: 'destroy', error: undefined },
    ]);
  });

  it('publishes handshake errors on both sides with the AuthenticationError', async () => {
    recorder = record();
    listener = await Listener.listen(LOCALHOST, { authkey: 'right' });
    const reported = once(listener, 'handshakeError');
    const err = await rejectionOf(Client(listener.address, { authkey: 'wrong' }));
    await reported;
    const errors = recorder.of('mpconn:handshake:error');
    const client = errors.find((m) => m.side === 'client');
    const server = errors.find((m) => m.side === 'listener');
    expect(client).to.deep.equal({ side: 'client', error: err, peer: listener.address });
    expect(err).to.be.instanceOf(AuthenticationError);
    expect(server!.error).to.be.instanceOf(AuthenticationError);
    expect((server!.peer as [string, number])[0]).to.equal('127.0.0.1');
    expect(recorder.of('mpconn:handshake:ok')).to.deep.equal([]);
  });

  it('publishes framing errors with the ProtocolError, once', async () => {
    recorder = record();
    listener = await Listener.listen(LOCALHOST);
    const raw = net.connect((listener.address as [string, number])[1], '127.0.0.1');
    const server = await listener.accept();
    raw.write(header(-2)); // only -1 is a valid negative length
    const err = await rejectionOf(server.recv());
    expect(err).to.be.instanceOf(ProtocolError);
    await until(() => recorder!.of('mpconn:connection:error').length > 0, 5000, 'a connection:error event');
    expect(recorder.of('mpconn:connection:error')).to.deep.equal([{ connection: server, error: err }]);
    raw.destroy();
    await server.close();
  });

  it('publishes nothing after unsubscribing (events are only built for subscribers)', async () => {
    const r = record();
    r.stop();
    listener = await Listener.listen(LOCALHOST);
    const [client, server] = await Promise.all([Client(listener.address), listener.accept()]);
    await client.close();
    await server.close();
    expect(r.events).to.deep.equal([]);
    for (const name of NAMES) expect(diagnostics.channel(name).hasSubscribers, name).to.equal(false);
    // and the message itself is not built when nobody listens
    let built = 0;
    publish(diagnostics.channel(NAMES[0]!), () => ({ built: ++built }));
    expect(built).to.equal(0);
    const seen: unknown[] = [];
    const onMessage = (m: unknown): void => void seen.push(m);
    diagnostics.subscribe(NAMES[0]!, onMessage);
    try {
      publish(diagnostics.channel(NAMES[0]!), () => ({ built: ++built }));
    } finally {
      diagnostics.unsubscribe(NAMES[0]!, onMessage);
    }
    expect(built).to.equal(1);
    expect(seen).to.deep.equal([{ built: 1 }]);
  });

  forEachPython(undefined, (py) => {
    describe(`CPython ${py.version} clients`, () => {
      const run = pythonsKilledAfterEach(py);

      it('a good key and a wrong key give handshake ok and handshake error events with the peer', async () => {
        recorder = record();
        listener = await Listener.listen(LOCALHOST, { authkey: 'key' });
        const [, port] = listener.address as [string, number];
        const python = run(
          `
import signal, sys
from multiprocessing.connection import Client
from multiprocessing import AuthenticationError
signal.alarm(30)
c = Client(('127.0.0.1', ${port}), authkey=b'key')
c.send_bytes(b'hi')
print('ok', c.recv_bytes().decode(), flush=True)
c.close()
try:
    Client(('127.0.0.1', ${port}), authkey=b'wrong')
    print('connected with a wrong key', flush=True)
except AuthenticationError:
    print('refused', flush=True)
`,
        );
        const failed = once(listener, 'handshakeError');
        const conn = await listener.accept();
        expect((await conn.recvBytes()).toString()).to.equal('hi');
        await conn.sendBytes(Buffer.from('back'));
        expect(await python.line()).to.equal('ok back');
        await failed;
        expect(await python.line()).to.equal('refused');
        const ok = recorder.of('mpconn:handshake:ok');
        expect(ok).to.have.length(1);
        expect(ok[0]).to.deep.include({ side: 'listener', connection: conn });
        const [error] = recorder.of('mpconn:handshake:error');
        expect(error!.side).to.equal('listener');
        expect(error!.error).to.be.instanceOf(AuthenticationError);
        expect((error!.peer as [string, number])[0]).to.equal('127.0.0.1');
        expect(recorder.of('mpconn:listener:accept')).to.have.length(2);
        await conn.close();
        expect((await python.exit()).code).to.equal(0);
      });
    });
  });
});

describe('NODE_DEBUG=mpconn', function () {
  this.timeout(20_000);
  let child: ChildLines | null = null;
  afterEach(() => {
    child?.kill();
    child = null;
  });

  function runDebug(code: string, nodeDebug: string): ChildLines {
    return runNode(code, [], [], { NODE_DEBUG: nodeDebug });
  }

  const program = `
import net from 'node:net';
import { Client, Listener } from '${MPCONN}';
const listener = await Listener.listen(['127.0.0.1', 0], { authkey: 'key' });
const [client, server] = await Promise.all([Client(listener.address, { authkey: 'key' }), listener.accept()]);
await client.close();
await server.close();
const failed = new Promise((resolve) => listener.once('handshakeError', resolve));
await Client(listener.address, { authkey: 'wrong' }).catch(() => {});
await failed;
await listener.close();
const plain = await Listener.listen(['127.0.0.1', 0]);
const raw = net.connect(plain.address[1], '127.0.0.1');
const conn = await plain.accept();
raw.write(Buffer.from([0xff, 0xff, 0xff, 0xfe]));
await conn.recv().catch(() => {});
raw.destroy();
conn.destroy();
await plain.close();
const small = await Listener.listen(['127.0.0.1', 0], { authkey: 'key', maxPending: 1 });
const dropped = new Promise((resolve) => small.once('acceptError', resolve));
const silent = [net.connect(small.address[1], '127.0.0.1'), net.connect(small.address[1], '127.0.0.1')];
await dropped;
for (const s of silent) s.destroy();
await small.close();
console.log('done');
`;

  it('prints a line for connect, accept, handshake ok and failed, close, destroy, a framing error and a dropped pending peer', async () => {
    child = runDebug(program, 'mpconn');
    expect(await child.line()).to.equal('done');
    const { stderr, code } = await child.exit();
    expect(code).to.equal(0);
    const lines = stderr.split('\n').filter((l) => l.startsWith('MPCONN '));
    const expected = [
      /^MPCONN \d+: client: connected to 127\.0\.0\.1:\d+ \(AF_INET\)$/,
      /^MPCONN \d+: listener 127\.0\.0\.1:\d+: accepted a connection from 127\.0\.0\.1:\d+$/,
      /^MPCONN \d+: client: handshake with 127\.0\.0\.1:\d+ ok$/,
      /^MPCONN \d+: listener 127\.0\.0\.1:\d+: handshake with 127\.0\.0\.1:\d+ ok$/,
      /^MPCONN \d+: connection: close \((flushing for at most 30000 ms|nothing to flush)\)$/,
      /^MPCONN \d+: client: handshake with 127\.0\.0\.1:\d+ failed: /,
      /^MPCONN \d+: listener 127\.0\.0\.1:\d+: handshake with 127\.0\.0\.1:\d+ failed: /,
      /^MPCONN \d+: connection: framing error ERR_BAD_LENGTH: invalid frame header: length -2/,
      /^MPCONN \d+: connection: destroyed$/,
      /^MPCONN \d+: listener 127\.0\.0\.1:\d+: dropped a pending connection from 127\.0\.0\.1:\d+ \(maxPending\)$/,
    ];
    for (const pattern of expected) expect(lines.some((l) => pattern.test(l)), `${pattern} in\n${lines.join('\n')}`).to.equal(true);
  });

  it('prints nothing without NODE_DEBUG=mpconn', async () => {
    child = runDebug(program, 'net');
    expect(await child.line()).to.equal('done');
    const { stderr, code } = await child.exit();
    expect(code).to.equal(0);
    expect(stderr).to.not.match(/^MPCONN /m);
  });
});

