/**
 * Fairness: a loop of `await conn.sendBytes(...)` whose promises
 * resolve at once (the kernel keeps up) must not starve the process's other
 * connections or timers. While this process floods 1 GiB (× STRESS_SCALE)
 * over TCP to a reader child, a second connection in this process keeps
 * answering a pinger child's ping-pong with a median round trip under 5 ms
 * (the bound the issue sets), and a 10 ms interval timer keeps firing.
 *
 * The only timing assertions of the stress suite are here, and they are
 * generous: the median round trip, and no gap of a whole second between two
 * timer ticks. A flood that never yields to the event loop fails both by
 * orders of magnitude.
 */
import { expect } from 'chai';
import { performance } from 'node:perf_hooks';
import { crc32 } from 'node:zlib';
import { ConnectionStateError, EOFError, Listener, type Connection } from 'mpconn';
import { within } from '../helpers/wire.js';
import { budget, runFixture, SCALE } from './helpers.js';

const GiB = 1024 * 1024 * 1024;

describe('stress: fairness', function () {
  this.timeout(budget(120_000));

  it(`while one connection floods ${SCALE} GiB over TCP, another answers pings with a median under 5 ms and a timer keeps firing`, async () => {
    const total = Math.round(GiB * SCALE);
    const listener = await Listener.listen(['127.0.0.1', 0]);
    const address = JSON.stringify(listener.address);
    const reader = runFixture('stress-fair-peer', [address, 'raw-reader']);
    const pinger = runFixture('stress-fair-peer', [address, 'pinger']);
    const conns: Connection[] = [];
    try {
      let flood: Connection | undefined;
      let ping: Connection | undefined;
      for (let i = 0; i < 2; i++) {
        const conn = await within(listener.accept(), 30_000, 'the peers connecting');
        conns.push(conn);
        const { role } = (await conn.recv()) as { role: string };
        if (role === 'raw-reader') flood = conn;
        else ping = conn;
      }

      // The answering side: echo each ping, noting which ones came in during the flood.
      let flooding = false;
      const duringFlood = new Set<number>();
      const answering = (async () => {
        for (;;) {
          let msg: Buffer;
          try {
            msg = await ping!.recvBytes();
          } catch (err) {
            if (err instanceof EOFError || (err instanceof ConnectionStateError && err.code === 'ERR_CLOSED')) return;
            throw err;
          }
          if (flooding) duringFlood.add(msg.readUInt32BE(0));
          await ping!.sendBytes(msg);
        }
      })();

      const ticks: number[] = [];
      const timer = setInterval(() => ticks.push(performance.now()), 10);
      // Let the ping-pong settle in before the flood starts.
      await new Promise((resolve) => setTimeout(resolve, 200));
      const chunk = Buffer.alloc(1024 * 1024, 0x5a);
      const sizes = [64 * 1024, 256 * 1024, 1024 * 1024, 4 * 1024];
      flooding = true;
      const started = performance.now();
      let sent = 0;
      let frames = 0;
      let checksum = 0;
      for (let i = 0; sent < total; i++, frames++) {
        const size = Math.min(sizes[i % sizes.length]!, total - sent);
        checksum = crc32(chunk.subarray(0, size), checksum); // the producer's own work per message
        await flood!.sendBytes(chunk, 0, size);
        sent += size;
      }
      const ended = performance.now();
      flooding = false;
      clearInterval(timer);
      await flood!.close();
      await ping!.close();
      await answering;

      const read = await within(reader.json<{ bytes: number }>(), 60_000, 'the reader');
      const { rtts } = await within(pinger.json<{ rtts: [number, number][] }>(), 30_000, 'the pinger');
      expect(read.bytes).to.equal(total + 4 * frames);

      const during = rtts.filter(([seq]) => duringFlood.has(seq)).map(([, ms]) => ms).sort((a, b) => a - b);
      const median = during[Math.floor(during.length / 2)] ?? Infinity;
      const floodTicks = ticks.filter((t) => t >= started && t <= ended);
      const gaps = [started, ...floodTicks, ended].slice(1).map((t, i, all) => t - (i === 0 ? started : all[i - 1]!));
      const worstGap = Math.max(...gaps);
      const context =
        `flood of ${total} bytes took ${(ended - started).toFixed(0)} ms; ${during.length} pings answered during it, ` +
        `median ${median.toFixed(2)} ms, p90 ${(during[Math.floor(during.length * 0.9)] ?? NaN).toFixed(2)} ms; ` +
        `${floodTicks.length} timer ticks, longest gap ${worstGap.toFixed(0)} ms`;
      if (process.env.STRESS_VERBOSE) console.log(context);
      expect(during.length, context).to.be.at.least(10);
      expect(median, context).to.be.below(5);
      expect(floodTicks.length, context).to.be.at.least(1);
      expect(worstGap, context).to.be.below(1000);
    } finally {
      reader.kill();
      pinger.kill();
      await Promise.all(conns.map((c) => c.close()));
      await listener.close();
    }
  });
});
