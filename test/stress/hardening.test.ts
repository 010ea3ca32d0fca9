/**
 * Hardening, the heavy part: the attacks of the hardening issue at its sizes
 * (times STRESS_SCALE), each measured in a child process of its own: nested
 * bombs of 8-32 MB, a 1 GiB handshake message announced to a Client, a
 * 16 MiB frame trickled one byte per write. Each asserts the memory bound
 * (RSS / heap growth, never time) and that the next message still arrives.
 */
import { expect } from 'chai';
import { spawn } from 'node:child_process';
import { once } from 'node:events';
import { mkdtempSync, rmSync } from 'node:fs';
import net from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Client, Listener, type Connection } from 'mpconn';
import { childLines } from '../helpers/child-lines.js';
import { newestPython, runPython } from '../helpers/python.js';
import { floodingListener } from '../helpers/auth-raw.js';
import { MPCONN, runNode } from '../helpers/node.js';
import { within } from '../helpers/wire.js';
import { budget, fixture, runFixture, SCALE, scaled } from './helpers.js';

const MB = 1_000_000;
const MiB = 1 << 20;

describe('stress: hardening', function () {
  describe('nested bombs cost about their size, reject with a code, and the connection goes on', function () {
    this.timeout(budget(60_000));
    // [case, expected outcome, bound on peak RSS growth as a multiple of the message]
    const cases: [string, string, number][] = [
      ['msgpack-nested-8MB', 'ProtocolError ERR_DECODE', 3],
      ['msgpack-nested-32MB', 'ProtocolError ERR_DECODE', 3],
      ['msgpack-nested-maps-16MB', 'ProtocolError ERR_DECODE', 3],
      ['json-nested-10MB', 'ProtocolError ERR_DECODE', 3],
      ['json-nested-objects-10MB', 'ProtocolError ERR_DECODE', 3],
      ['pickle-nested-tuples-10MB', 'UnpicklingError ERR_UNPICKLING', 3],
      // A pickle can push millions of empty lists before the first APPEND nests them: that costs what
      // the same number of lists costs in any value (a tuple of them is legitimate), no more.
      ['pickle-nested-lists-10MB', 'UnpicklingError ERR_UNPICKLING', 40],
      // Legitimate and wide: what JS charges for four million empty arrays, bounded by the message.
      ['msgpack-wide-4MB', 'value', 64],
    ];
    for (const [name, outcome, factor] of cases) {
      it(`${name}: ${outcome}, peak RSS growth below 16 MB + ${factor}x the message`, async () => {
        const child = runFixture('hardening-bombs', [name, String(SCALE)], ['--max-old-space-size=1024']);
        try {
          const r = JSON.parse(await within(child.line(), budget(60_000), name)) as {
            bytes: number;
            outcome: string;
            peakGrowth: number;
            next: string;
          };
          const context = `${name}: ${r.outcome}, peak RSS +${(r.peakGrowth / MB).toFixed(1)} MB for ${(r.bytes / MB).toFixed(1)} MB`;
          expect(r.outcome, context).to.equal(outcome);
          expect(r.peakGrowth, context).to.be.below(16 * MB + factor * r.bytes);
          expect(r.next, context).to.equal('["next",1]');
          const exit = await child.exit();
          expect(exit.code, exit.stderr).to.equal(0);
        } finally {
          child.kill();
        }
      });
    }
  });

  describe('a Client facing a listener that announces a 1 GiB challenge', function () {
    this.timeout(budget(60_000));

    const CLIENT = String.raw`
import { Client } from '${MPCONN}';
const [badPort, goodPort] = process.argv.slice(1).map(Number);
const peak = () => process.resourceUsage().maxRSS * 1024;
const before = peak();
let outcome;
try {
  await Client(['127.0.0.1', badPort], { authkey: 'key', timeout: 60000 });
  outcome = 'connected';
} catch (err) {
  outcome = err.name + ' ' + err.code + ' / ' + (err.cause && err.cause.code);
}
const peakGrowth = peak() - before;
const conn = await Client(['127.0.0.1', goodPort], { authkey: 'key' });
await conn.send('next');
const reply = await conn.recv();
await conn.close();
console.log(JSON.stringify({ outcome, peakGrowth, reply }));
`;

    it('fails with AuthenticationError (cause ERR_MESSAGE_TOO_LONG) having grown by a few MB, then connects to a good listener', async () => {
      const fake = await floodingListener(scaled(1024) * MiB);
      const good = await Listener.listen(['127.0.0.1', 0], { authkey: 'key' });
      const served = (async () => {
        const conn = await good.accept();
        await conn.send(`${await conn.recv()}: ok`);
        await conn.recv().catch(() => {}); // until the client closes
        await conn.close();
      })();
      const lines = runNode(CLIENT, [String(fake.port), String((good.address as [string, number])[1])]);
      try {
        const r = JSON.parse(await within(lines.line(), budget(60_000), 'client child')) as {
          outcome: string;
          peakGrowth: number;
          reply: string;
        };
        expect(r.outcome).to.equal('AuthenticationError ERR_AUTH / ERR_MESSAGE_TOO_LONG');
        expect(r.peakGrowth, `peak RSS +${(r.peakGrowth / MB).toFixed(1)} MB`).to.be.below(32 * MB);
        expect(fake.written(), 'bytes the fake wrote before the client hung up').to.be.below(128 * MiB);
        expect(r.reply).to.equal('next: ok');
        await within(served, 10_000, 'good listener served');
      } finally {
        lines.kill();
        fake.close();
        await good.close();
      }
    });
  });

  describe('a Listener whose process runs out of file descriptors', function () {
    this.timeout(budget(60_000));

    it('survives a flood past its descriptor limit (no crash, no error event needed) and serves the next client', async () => {
      const child = spawn('/bin/sh', ['-c', `ulimit -n 64 && exec "${process.execPath}" "${fixture('hardening-emfile')}"`], {
        stdio: ['pipe', 'pipe', 'pipe'],
      });
      const lines = childLines(child, 'emfile child');
      const flood: net.Socket[] = [];
      try {
        const first = await within(lines.line(), 20_000, 'listening');
        expect(first).to.match(/^port \d+$/);
        const port = Number(first.split(' ')[1]);
        for (let i = 0; i < scaled(300); i++) {
          const s = net.connect(port, '127.0.0.1');
          s.on('error', () => {});
          s.resume();
          flood.push(s);
        }
        await Promise.all(flood.map((s) => Promise.race([once(s, 'connect'), once(s, 'close')])));
        // some of the flood got in and are held by the echo loop; the rest were shed by the OS or libuv
        await new Promise((resolve) => setTimeout(resolve, 300));
        for (const s of flood) s.destroy();
        let conn: Connection | undefined;
        for (let attempt = 0; conn === undefined; attempt++) {
          // the child frees the flood's descriptors as their closes arrive
          try {
            conn = await Client(['127.0.0.1', port], { timeout: 5_000 });
          } catch (err) {
            if (attempt > 20) throw err;
            await new Promise((resolve) => setTimeout(resolve, 100));
          }
        }
        await conn.send('next');
        expect(await within(conn.recv(), 10_000, 'echo')).to.equal('next: ok');
        await conn.close();
        for (;;) {
          const line = await within(lines.line(), 10_000, 'served line');
          if (line === 'served next') break;
          expect(line).to.match(/^(acceptError E[A-Z]+|served .*)$/);
        }
        child.stdin!.end('stop\n');
        const exit = await within(lines.exit(), 20_000, 'child exit');
        expect(exit.code, exit.stderr).to.equal(0);
      } finally {
        for (const s of flood) s.destroy();
        lines.kill();
      }
    });
  });

  describe('a 16 MiB frame trickled one byte per write', function () {
    this.timeout(budget(120_000));

    // The sender is a CPython process: its socket.send(b'a') is one syscall per byte, which the
    // receiver mostly reads as chunks of a few bytes (Node's own writes would be batched by writev).
    const SENDER = String.raw`
import socket, struct, sys
path, length, trickled = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
s = socket.socket(socket.AF_UNIX)
s.connect(path)
s.sendall(struct.pack('!i', length))
one = b'a'
for _ in range(trickled):
    s.send(one)
print('trickled', flush=True)
sys.stdin.readline()
s.sendall(b'a' * (length - trickled))
s.sendall(struct.pack('!i', 4) + b'next')
sys.stdin.readline()
s.close()
`;
    const py = newestPython();

    (py === undefined ? it.skip : it)('costs the receiver what arrived plus at most 1 MiB (and a little), then delivers the frame and the next message', async () => {
      const dir = mkdtempSync(join(tmpdir(), 'mpconn-trickle-'));
      const path = join(dir, 's');
      const child = runFixture('hardening-trickle', [path], ['--expose-gc']);
      let sender: ReturnType<typeof runPython> | undefined;
      try {
        expect(await within(child.line(), 20_000, 'receiver listening')).to.equal('listening');
        const length = 16 * MiB;
        const trickled = Math.min(length - MiB, scaled(3) * MB);
        sender = runPython(py!, SENDER, [path, String(length), String(trickled)]);
        expect(await within(sender.line(), budget(60_000), 'python trickling')).to.equal('trickled');
        await new Promise((resolve) => setTimeout(resolve, 200)); // let the receiver read what was sent
        child.write('measure\n');
        const growth = JSON.parse(await within(child.line(), 20_000, 'measure')) as Record<string, number>;
        const context = `after ${(trickled / MB).toFixed(1)} MB trickled: ${Object.entries(growth)
          .map(([k, v]) => `${k} +${(v / MB).toFixed(1)} MB`)
          .join(', ')}`;
        if (process.env.STRESS_VERBOSE) console.log(context);
        // arrived + the 1 MiB block + slack for the allocator and the runtime
        expect(growth.external! + growth.heap!, context).to.be.below(trickled + MiB + 8 * MB);
        expect(growth.rss!, context).to.be.below(trickled + MiB + 32 * MB);
        sender.process.stdin!.write('\n');
        const done = JSON.parse(await within(child.line(), 30_000, 'frame received')) as { length: number; sum: number; next: string };
        expect(done).to.deep.equal({ length, sum: (0x61 * (length / 4096)) >>> 0, next: 'next' });
        sender.process.stdin!.write('\n');
        const exit = await child.exit();
        expect(exit.code, exit.stderr).to.equal(0);
      } finally {
        sender?.kill();
        child.kill();
        rmSync(dir, { recursive: true, force: true });
      }
    });
  });
});
