/**
 * A header that lies about its length must not make mpconn allocate what it
 * claims. The measured part runs in a child `node --expose-gc`, so
 * the test runner's own heap does not blur the figures: the child reports its
 * memory (rss, external, arrayBuffers) before, while the lying frame is
 * pending (once the socket has read every byte sent), and after the close.
 */
import { expect } from 'chai';
import { MPCONN, runNode } from './helpers/node.js';
import { within } from './helpers/wire.js';

const MB = 1_000_000;

const CHILD = String.raw`
import { once } from 'node:events';
import { mkdtempSync, rmSync } from 'node:fs';
import net from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Connection } from '${MPCONN}';

const [headerKind, sentAfterHeader, receiver] = process.argv.slice(1);
const dir = mkdtempSync(join(tmpdir(), 'mpconn-memory-'));
const server = net.createServer({ allowHalfOpen: true }).listen(join(dir, 's'));
await once(server, 'listening');
const accepted = once(server, 'connection');
const raw = net.connect({ path: join(dir, 's'), allowHalfOpen: true });
const [[near]] = await Promise.all([accepted, once(raw, 'connect')]);
server.close();
rmSync(dir, { recursive: true, force: true });
const conn = Connection.fromStream(near);

const settle = async () => {
  for (let i = 0; i < 3; i++) {
    await new Promise((resolve) => setImmediate(resolve));
    globalThis.gc();
  }
};
const sample = () => {
  const m = process.memoryUsage();
  return { rss: m.rss, external: m.external, arrayBuffers: m.arrayBuffers };
};
const write = (data) => new Promise((resolve, reject) => raw.write(data, (err) => (err ? reject(err) : resolve())));
const readAll = async (n) => {
  while (near.bytesRead < n) await new Promise((resolve) => setTimeout(resolve, 5));
};

await settle();
const before = sample();

// nobody waiting, a recv() waiting, or a recvBytesInto() with a small buffer waiting
let pending = null;
if (receiver === 'recv') pending = conn.recv();
if (receiver === 'into') pending = conn.recvBytesInto(new Uint8Array(1024));
pending?.catch(() => {});

let header;
if (headerKind === 'long') {
  header = Buffer.alloc(12);
  header.writeInt32BE(-1, 0);
  header.writeBigUInt64BE(4n * 1024n * 1024n * 1024n, 4); // 4 GiB
} else {
  header = Buffer.alloc(4);
  header.writeInt32BE(0x7fffffff, 0); // 2 GiB - 1, the largest short length
}
await write(header);
const body = Number(sentAfterHeader);
for (let sent = 0; sent < body; sent += 1 << 20) await write(Buffer.alloc(Math.min(1 << 20, body - sent), 0x61));
await readAll(header.length + body); // the connection has seen every byte: the frame is pending now
await new Promise((resolve) => setTimeout(resolve, 200)); // silence
const during = sample();

raw.end(); // then the peer closes, inside the frame
let err;
try {
  await (pending ?? conn.recvBytes());
} catch (e) {
  err = e;
}
await settle();
const after = sample();
console.log(JSON.stringify({ name: err?.name, code: err?.code, before, during, after }));
await conn.close();
raw.destroy();
`;

interface Sample {
  rss: number;
  external: number;
  arrayBuffers: number;
}

async function measure(
  headerKind: 'long' | 'short',
  sentAfterHeader: number,
  receiver: 'none' | 'recv' | 'into',
): Promise<{ name: string; code: string; before: Sample; during: Sample; after: Sample }> {
  const child = runNode(CHILD, [headerKind, String(sentAfterHeader), receiver], ['--expose-gc']);
  try {
    const line = await within(child.line(), 60_000, 'memory child');
    const result = await child.exit();
    expect(result.code, result.stderr).to.equal(0);
    return JSON.parse(line);
  } finally {
    child.kill();
  }
}

function growth(from: Sample, to: Sample): Sample {
  return {
    rss: to.rss - from.rss,
    external: to.external - from.external,
    arrayBuffers: to.arrayBuffers - from.arrayBuffers,
  };
}

function expectSmall(g: Sample, limit: number, what: string): void {
  const text = `${what}: rss ${(g.rss / MB).toFixed(1)} MB, external ${(g.external / MB).toFixed(1)} MB, arrayBuffers ${(
    g.arrayBuffers / MB
  ).toFixed(1)} MB`;
  expect(g.rss, text).to.be.below(limit);
  expect(g.external, text).to.be.below(limit);
  expect(g.arrayBuffers, text).to.be.below(limit);
}

describe('memory: a header that lies about its length', function () {
  this.timeout(120_000);

  const cases: ['long' | 'short', string, 'none' | 'recv' | 'into'][] = [
    ['long', 'a -1 + 8-byte header claiming 4 GiB, with a recv() waiting', 'recv'],
    ['long', 'a -1 + 8-byte header claiming 4 GiB, with nobody receiving yet', 'none'],
    ['short', 'a 4-byte header claiming 2 GiB, with a recvBytesInto() waiting', 'into'],
  ];
  for (const [kind, what, receiver] of cases) {
    it(`${what}, then silence and a close: ProtocolError ERR_TRUNCATED, memory grows by well under 100 MB`, async () => {
      const r = await measure(kind, 0, receiver);
      expect(r.name).to.equal('ProtocolError');
      expect(r.code).to.equal('ERR_TRUNCATED');
      expectSmall(growth(r.before, r.during), 20 * MB, 'while the frame was pending');
      expectSmall(growth(r.before, r.after), 20 * MB, 'after the close');
    });
  }

  it('a header claiming 4 GiB followed by 16 MB of payload costs about those 16 MB, not 4 GiB, and frees them on close', async () => {
    const sent = 16 * MB;
    const r = await measure('long', sent, 'recv');
    expect(r.code).to.equal('ERR_TRUNCATED');
    expectSmall(growth(r.before, r.during), sent + 40 * MB, 'while the frame was pending');
    expectSmall(growth(r.before, r.after), 20 * MB, 'after the close');
  });
});
