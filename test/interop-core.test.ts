/**
 * Wire compatibility without authentication against every CPython 3.x found:
 * a Python `multiprocessing.connection.Listener` with an mpconn `Client`, and
 * an mpconn `Listener` with a Python `Client`, over TCP and Unix sockets. For
 * each size, mpconn sends first and Python answers with the length and SHA-256
 * of what it received; then Python sends its own random message followed by
 * its SHA-256. Checksums travel as messages, never the data through stdout.
 *
 * One Python process per (version, direction) does every size on both
 * transports, plus the hand-built `-1` + 8-byte long header both ways (Python
 * decodes it only from 3.8 on: 3.6 and 3.7 predate the long form).
 */
import { expect } from 'chai';
import { createHash, randomBytes } from 'node:crypto';
import { once } from 'node:events';
import net from 'node:net';
import { Client, Connection, EOFError, Listener, type Address } from 'mpconn';
import { forEachPython, newestPython, type Python, type PythonProcess, runPython } from './helpers/python.js';
import { longFrame, rejectionOf, within } from './helpers/wire.js';

const MiB = 1 << 20;
const SIZES = [0, 1, 16384, 16385, MiB, 64 * MiB];
const LONG_FRAME_SIZE = 70_000;

const PEER = String.raw`
import hashlib, json, os, struct, sys
from multiprocessing.connection import Client, Listener

mode = sys.argv[1]
sizes = [int(s) for s in sys.argv[2].split(',')]
big = os.urandom(max(sizes))

def sha(data):
    return hashlib.sha256(data).hexdigest()

def report(data):
    return ('%d %s' % (len(data), sha(data))).encode()

def raw_write(conn, data):
    # Straight onto the socket, bypassing send_bytes.
    view = memoryview(data)
    while len(view):
        view = view[os.write(conn.fileno(), view):]

def exchange(conn):
    for n in sizes:
        conn.send_bytes(report(conn.recv_bytes()))
        out = os.urandom(n) if n <= (1 << 20) else memoryview(big)[:n]
        conn.send_bytes(out)
        conn.send_bytes(report(out))
    # A frame in the long form (-1, then an 8-byte length), built by hand.
    payload = os.urandom(int(sys.argv[3]))
    raw_write(conn, struct.pack('!i', -1) + struct.pack('!Q', len(payload)) + payload)
    conn.send_bytes(report(payload))
    assert conn.recv_bytes() == b'bye'
    conn.close()

if mode == 'listen':
    tcp = Listener(('127.0.0.1', 0))
    unix = Listener(family='AF_UNIX')
    print(json.dumps([list(tcp.address), unix.address]))
    for listener in (tcp, unix):
        exchange(listener.accept())
        if sys.version_info >= (3, 8):
            # mpconn writes a long-form frame by hand on a raw socket: decode it.
            conn = listener.accept()
            conn.send_bytes(report(conn.recv_bytes()))
            conn.close()
        listener.close()
else:
    tcp_address, unix_address = json.loads(sys.argv[4])
    exchange(Client(tuple(tcp_address)))
    exchange(Client(unix_address))
print('done')
`;

function sha256(data: Uint8Array): string {
  return createHash('sha256').update(data).digest('hex');
}

/** What mpconn sends for each size: random bytes (one 64 MiB buffer, hashed once, for the largest). */
const outgoing = new Map<number, { bytes: Buffer; sha: string }>();
function payloadOf(size: number): { bytes: Buffer; sha: string } {
  let p = outgoing.get(size);
  if (p === undefined) {
    const bytes = randomBytes(size);
    p = { bytes, sha: sha256(bytes) };
    outgoing.set(size, p);
  }
  return p;
}

function parseReport(message: Buffer): { length: number; sha: string } {
  const [length, sha] = message.toString('latin1').split(' ');
  return { length: Number(length), sha: sha! };
}

/** mpconn's half of the Python script's `exchange`. */
async function exchange(conn: Connection, label: string): Promise<void> {
  for (const size of SIZES) {
    const what = `${label}, ${size} bytes`;
    const out = payloadOf(size);
    await conn.sendBytes(out.bytes);
    expect(parseReport(await conn.recvBytes()), `${what}: what Python received`).to.deep.equal({
      length: size,
      sha: out.sha,
    });
    const got = await conn.recvBytes();
    const theirs = parseReport(await conn.recvBytes());
    expect(theirs.length, `${what}: what Python sent`).to.equal(size);
    expect(got.length, `${what}: length received from Python`).to.equal(size);
    expect(sha256(got), `${what}: checksum of what Python sent`).to.equal(theirs.sha);
  }
  const long = await conn.recvBytes();
  const report = parseReport(await conn.recvBytes());
  expect(report.length, `${label}: Python's hand-built long frame`).to.equal(LONG_FRAME_SIZE);
  expect(long.length).to.equal(LONG_FRAME_SIZE);
  expect(sha256(long), `${label}: checksum of Python's hand-built long frame`).to.equal(report.sha);
  await conn.sendBytes(Buffer.from('bye'));
  expect(await rejectionOf(conn.recvBytes()), `${label}: Python closed`).to.be.instanceOf(EOFError);
  await conn.close();
}

/** A long-form frame written by hand on a raw socket; Python answers with length and checksum. */
async function sendLongFrameByHand(address: Address, label: string): Promise<void> {
  const socket =
    typeof address === 'string'
      ? net.connect({ path: address, allowHalfOpen: true })
      : net.connect({ host: (address as [string, number])[0], port: (address as [string, number])[1], allowHalfOpen: true });
  await once(socket, 'connect');
  const payload = randomBytes(LONG_FRAME_SIZE + 1);
  socket.write(longFrame(payload));
  const conn = Connection.fromStream(socket);
  try {
    expect(parseReport(await conn.recvBytes()), `${label}: Python decoding mpconn's hand-built long frame`).to.deep.equal({
      length: payload.length,
      sha: sha256(payload),
    });
  } finally {
    await conn.close();
  }
}

async function finished(py: PythonProcess, version: string): Promise<void> {
  const result = await within(py.exit(), 60_000, `python ${version} exit`);
  expect(result.code, `python ${version} failed:\n${result.stderr}`).to.equal(0);
  expect(result.stdout.trim().split('\n').pop()).to.equal('done');
}

describe('interop: framing with CPython (no authentication)', function () {
  this.timeout(180_000);

  forEachPython(undefined, (py: Python) => {
    describe(`CPython ${py.version}`, () => {
      it('a Python Listener and an mpconn Client exchange 0 B to 64 MiB both ways, over TCP and a Unix socket', async () => {
        const peer = runPython(py, PEER, ['listen', SIZES.join(','), String(LONG_FRAME_SIZE)]);
        try {
          const [tcp, unix] = JSON.parse(await within(peer.line(), 30_000, 'python listener address')) as [
            [string, number],
            string,
          ];
          for (const [label, address] of [
            ['TCP', tcp],
            ['Unix socket', unix],
          ] as const) {
            await exchange(await Client(address), `${label}, Python ${py.version} listening`);
            if (py.minor >= 8) await sendLongFrameByHand(address, `${label}, Python ${py.version}`);
          }
          await finished(peer, py.version);
        } finally {
          peer.kill();
        }
      });

      it('an mpconn Listener and a Python Client exchange 0 B to 64 MiB both ways, over TCP and a Unix socket', async () => {
        const tcp = await Listener.listen(['127.0.0.1', 0]);
        const unix = await Listener.listen(null, { family: 'AF_UNIX' });
        const peer = runPython(py, PEER, [
          'connect',
          SIZES.join(','),
          String(LONG_FRAME_SIZE),
          JSON.stringify([tcp.address, unix.address]),
        ]);
        try {
          for (const [label, listener] of [
            ['TCP', tcp],
            ['Unix socket', unix],
          ] as const) {
            const conn = await within(listener.accept(), 30_000, `accepting Python ${py.version} over ${label}`);
            await exchange(conn, `${label}, Python ${py.version} connecting`);
          }
          await finished(peer, py.version);
        } finally {
          peer.kill();
          await tcp.close();
          await unix.close();
        }
      });
    });
  });
});

describe('interop: a burst of mpconn Clients against a busy Python Listener', function () {
  this.timeout(60_000);
  const newest = newestPython();

  forEachPython(newest === undefined ? undefined : { only: [newest.minor] }, (py: Python) => {
    it(`all connect over a Unix socket although CPython ${py.version} listens with backlog 1 and accepts one at a time`, async () => {
      const peer = runPython(
        py,
        `
import time
from multiprocessing.connection import Listener
listener = Listener(family='AF_UNIX')
print(listener.address)
time.sleep(0.5)  # busy: nothing is accepted, the accept queue (backlog 1) fills up
for i in range(6):
    conn = listener.accept()
    conn.send_bytes(b'%d' % i)
    conn.close()
listener.close()
print('done')
`,
      );
      try {
        const address = await within(peer.line(), 30_000, 'python listener address');
        const results = await Promise.allSettled(
          Array.from({ length: 6 }, async () => {
            const conn = await Client(address, { timeout: 30_000 });
            try {
              return (await conn.recvBytes()).toString();
            } finally {
              await conn.close();
            }
          }),
        );
        expect(results.filter((r) => r.status === 'rejected').map((r) => String((r as PromiseRejectedResult).reason))).to.deep.equal(
          [],
        );
        expect(results.map((r) => (r as PromiseFulfilledResult<string>).value).sort()).to.deep.equal(['0', '1', '2', '3', '4', '5']);
        await finished(peer, py.version);
      } finally {
        peer.kill();
      }
    });
  });
});
