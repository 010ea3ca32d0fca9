/**
 * System "raw": the minimal node:net length-prefix framer (bench/raw/framer.ts).
 * Variants: W1/W4 sender `write` (one socket.write per message) or `coalesced`
 * (64 KiB batches of frames); W3/W6 receiver `alloc` (a buffer per message) or
 * `count` (counts bytes only); W2 `write`; W5 `floor` (connect + one round trip).
 */
import { once } from 'node:events';
import type net from 'node:net';
import { Decoder, Encoder } from '@msgpack/msgpack';
import { checksum, senderBuffer, smallObject, stamp, type SmallObject } from '../lib/payload.js';
import { cpuMs, emit, latencySummary, roleArgs, serveCommands, type BenchAddress, type RoleResult, type Transport } from '../lib/role.js';
import { ConnectionQueue, connectRaw, endSocket } from '../lib/sockets.js';
import { RawDecoder, sendCoalesced, sendEachWrite, sendLarge } from '../raw/framer.js';

const args = roleArgs();
const { workload, variant } = args;

/** Reads frames from `socket` until `total` arrived; `onMessage` sees each (index, payload). */
function receiveFrames(
  socket: net.Socket,
  total: number,
  onMessage: (i: number, payload: Buffer | null, length: number) => void,
  delivery: 'message' | 'count' = 'message',
): { done: Promise<void>; decoder: RawDecoder } {
  let count = 0;
  let resolveDone!: () => void;
  let rejectDone!: (err: Error) => void;
  const done = new Promise<void>((resolve, reject) => {
    resolveDone = resolve;
    rejectDone = reject;
  });
  const decoder = new RawDecoder(
    (payload, length) => {
      onMessage(count, payload, length);
      if (++count === total) resolveDone();
    },
    delivery,
    total - 1,
  );
  socket.on('data', (chunk: Buffer) => decoder.push(chunk));
  socket.on('error', rejectDone);
  socket.on('close', () => {
    if (count < total) rejectDone(new Error(`connection closed after ${count} of ${total} messages`));
  });
  return { done, decoder };
}

async function server(): Promise<void> {
  const queues = new Map<Transport, ConnectionQueue>();
  const addresses: Partial<Record<Transport, BenchAddress>> = {};
  for (const t of args.transports) {
    const queue = new ConnectionQueue(t);
    addresses[t] = await queue.listen(t, args.addresses[t] ?? null);
    queues.set(t, queue);
  }
  const closeAll = async (): Promise<void> => {
    for (const q of queues.values()) await q.close();
  };
  if (workload === 'W5') {
    // Echo whatever arrives; the run is over when `total` connections came and went.
    let closed = 0;
    let target = Infinity;
    let reached: (() => void) | null = null;
    for (const [t, queue] of queues) {
      queue.server.removeAllListeners('connection');
      queue.server.on('connection', (socket: net.Socket) => {
        if (t === 'tcp') socket.setNoDelay(true);
        socket.on('data', (d) => socket.write(d));
        socket.on('error', () => {});
        socket.on('close', () => {
          if (++closed >= target) reached?.();
        });
      });
    }
    emit('ready', { addresses });
    serveCommands(async (spec) => {
      const before = closed;
      target = before + spec.warmup + spec.count;
      if (closed < target) await new Promise<void>((resolve) => (reached = resolve));
      reached = null;
      return { accepted: closed - before };
    }, closeAll);
    return;
  }
  emit('ready', { addresses });
  serveCommands(async (spec) => {
    const socket = await queues.get(spec.transport)!.next();
    const total = spec.warmup + spec.count;
    let result: RoleResult;
    if (workload === 'W2') {
      let echoed = 0;
      const { done } = receiveFrames(socket, total, (_i, payload, length) => {
        const frame = Buffer.allocUnsafe(4 + length);
        frame.writeInt32BE(length, 0);
        payload!.copy(frame, 4);
        socket.write(frame);
        echoed++;
      });
      await done;
      result = { echoed };
    } else {
      let t0 = 0;
      let cpu0 = process.cpuUsage();
      let bytes = 0;
      let last: Buffer | null = null;
      let lastObject: SmallObject | null = null;
      const msgpack = workload === 'W4' ? new Decoder() : null;
      const delivery = variant === 'count' ? 'count' : 'message';
      const start = (): void => {
        t0 = performance.now();
        cpu0 = process.cpuUsage();
      };
      if (spec.warmup === 0) start();
      const { done, decoder } = receiveFrames(
        socket,
        total,
        (i, payload, length) => {
          bytes += length;
          if (msgpack !== null) {
            const obj = msgpack.decode(payload!) as SmallObject;
            if (i === total - 1) lastObject = obj;
          } else if (i === total - 1 && payload !== null) last = payload;
          if (i === spec.warmup - 1) start();
        },
        delivery,
      );
      await done;
      const seconds = (performance.now() - t0) / 1000;
      const cpu = cpuMs(cpu0);
      result = {
        messages: decoder.frames,
        bytes,
        checksum: last !== null ? checksum(last) : delivery === 'count' ? decoder.crc : null,
        lastObject,
        seconds,
        timedMessages: spec.count,
        timedBytes: spec.count * spec.size,
        cpuMs: cpu,
      };
    }
    await endSocket(socket);
    return result;
  }, closeAll);
}

async function client(): Promise<void> {
  emit('ready');
  const encoder = new Encoder();
  serveCommands(async (spec) => {
    const transport = spec.transport;
    const address = spec.address!;
    const total = spec.warmup + spec.count;
    const cpu0 = process.cpuUsage();
    const t0 = performance.now();
    if (workload === 'W5') {
      const lat = new Float64Array(spec.count);
      let tTimed = t0;
      const ping = Buffer.from([0, 0, 0, 0]);
      for (let i = 0; i < total; i++) {
        if (i === spec.warmup) tTimed = performance.now();
        const t = performance.now();
        const socket = await connectRaw(transport, address);
        socket.write(ping);
        await once(socket, 'data');
        if (i >= spec.warmup) lat[i - spec.warmup] = (performance.now() - t) * 1000;
        socket.destroy();
      }
      const seconds = (performance.now() - tTimed) / 1000;
      return { connects: total, seconds, timedConnects: spec.count, ...latencySummary(lat), cpuMs: cpuMs(cpu0) };
    }
    const socket = await connectRaw(transport, address);
    socket.on('error', () => {});
    let extra: RoleResult = {};
    if (workload === 'W2') {
      const lat = new Float64Array(spec.count);
      const out = senderBuffer(spec.size);
      let lastReply: number | null = null;
      await new Promise<void>((resolve, reject) => {
        let i = 0;
        let t = 0;
        const send = (): void => {
          stamp(out, i);
          const frame = Buffer.allocUnsafe(4 + out.length);
          frame.writeInt32BE(out.length, 0);
          out.copy(frame, 4);
          t = performance.now();
          socket.write(frame);
        };
        const decoder = new RawDecoder((payload) => {
          const dt = performance.now() - t;
          if (i >= spec.warmup) lat[i - spec.warmup] = dt * 1000;
          if (++i === total) {
            lastReply = checksum(payload!);
            resolve();
          } else send();
        });
        socket.on('data', (chunk: Buffer) => decoder.push(chunk));
        socket.once('close', () => reject(new Error(`closed after ${i} round trips`)));
        send();
      });
      extra = { roundTrips: total, lastReplyChecksum: lastReply, ...latencySummary(lat) };
    } else if (workload === 'W1' || workload === 'W4') {
      const payload = senderBuffer(spec.size);
      const fill =
        workload === 'W1'
          ? (into: Buffer, i: number): number => {
              payload.copy(into, 0);
              stamp(into.subarray(0, payload.length), i);
              return payload.length;
            }
          : (into: Buffer, i: number): number => {
              const bytes = encoder.encodeSharedRef(smallObject(i));
              into.set(bytes, 0);
              return bytes.length;
            };
      const max = workload === 'W1' ? spec.size : 256;
      if (variant === 'coalesced') await sendCoalesced(socket, total, fill, max);
      else await sendEachWrite(socket, total, fill, max);
    } else {
      // W3, W6: large messages.
      await sendLarge(socket, total, spec.size, [senderBuffer(spec.size, 0), senderBuffer(spec.size, 1)], stamp);
    }
    const seconds = (performance.now() - t0) / 1000;
    await endSocket(socket);
    return { sent: total, seconds, cpuMs: cpuMs(cpu0), ...extra };
  });
}

if (args.side === 'server') await server();
else await client();
