/**
 * System "raw": the minimal node:net length-prefix framer (bench/raw/framer.ts).
 * Variants: W1/W4 sender `write` (one socket.write per message) or `coalesced`
 * (64 KiB batches of frames); W3/W6 receiver `alloc` (a buffer per message) or
 * `count` (counts bytes only); W2 `write` (callbacks) or `promise` (one awaited
 * promise per send and per receive, both sides); W5 `floor` (connect + one
 * round trip) or `auth` (the authentication handshake bytes, bench/raw/handshake.ts).
 */
import { once } from 'node:events';
import type net from 'node:net';
import { Decoder, Encoder } from '@msgpack/msgpack';
import { checksum, senderBuffer, smallObject, stamp, stampAt, type SmallObject } from '../lib/payload.js';
import { AUTHKEY, cpuMs, emit, latencySummary, roleArgs, serveCommands, type BenchAddress, type RoleResult, type Transport } from '../lib/role.js';
import { ConnectionQueue, connectRaw, endSocket } from '../lib/sockets.js';
import { PromiseFramer, RawDecoder, sendCoalesced, sendEachWrite, sendLarge } from '../raw/framer.js';
import { clientHandshake, serverHandshake } from '../raw/handshake.js';

const args = roleArgs();
const { workload, variant } = args;
const authkey = Buffer.from(AUTHKEY);

/** Reads frames from `socket` until `total` arrived; `onMessage` sees each (index, bytes, start, length). */
function receiveFrames(
  socket: net.Socket,
  total: number,
  onMessage: (i: number, bytes: Buffer | null, start: number, length: number) => void,
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
    (bytes, start, length) => {
      onMessage(count, bytes, start, length);
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
        socket.on('error', () => {});
        if (variant === 'auth') {
          // Like mpconn's server (accept, then close): the server closes once authenticated.
          // Pipelined over Unix sockets only, as mpconn's Client does (see src/auth/challenge.ts).
          serverHandshake(socket, authkey, t === 'unix', () => socket.destroy(), () => {});
        } else socket.on('data', (d) => socket.write(d));
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
    if (workload === 'W2' && variant === 'promise') {
      const framer = new PromiseFramer(socket);
      for (let i = 0; i < total; i++) {
        const m = await framer.recv();
        await framer.send(m);
      }
      result = { echoed: total };
    } else if (workload === 'W2') {
      let echoed = 0;
      const { done } = receiveFrames(socket, total, (_i, bytes, start, length) => {
        const frame = Buffer.allocUnsafe(4 + length);
        frame.writeInt32BE(length, 0);
        bytes!.copy(frame, 4, start, start + length);
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
      const startClock = (): void => {
        t0 = performance.now();
        cpu0 = process.cpuUsage();
      };
      if (spec.warmup === 0) startClock();
      const { done, decoder } = receiveFrames(
        socket,
        total,
        (i, payload, at, length) => {
          bytes += length;
          if (msgpack !== null) {
            // A plain Uint8Array view: Buffer#subarray goes through the species constructor, slower per message.
            const obj = msgpack.decode(new Uint8Array(payload!.buffer, payload!.byteOffset + at, length)) as SmallObject;
            if (i === total - 1) lastObject = obj;
          } else if (i === total - 1 && payload !== null) last = payload.subarray(at, at + length);
          if (i === spec.warmup - 1) startClock();
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
        if (variant === 'auth') await clientHandshake(socket, authkey, transport === 'unix');
        else {
          socket.write(ping);
          await once(socket, 'data');
        }
        if (i >= spec.warmup) lat[i - spec.warmup] = (performance.now() - t) * 1000;
        socket.destroy();
      }
      const seconds = (performance.now() - tTimed) / 1000;
      return { connects: total, seconds, timedConnects: spec.count, ...latencySummary(lat), cpuMs: cpuMs(cpu0) };
    }
    const socket = await connectRaw(transport, address);
    socket.on('error', () => {});
    let extra: RoleResult = {};
    if (workload === 'W2' && variant === 'promise') {
      const lat = new Float64Array(spec.count);
      const out = senderBuffer(spec.size);
      const framer = new PromiseFramer(socket);
      let reply: Buffer | null = null;
      for (let i = 0; i < total; i++) {
        stamp(out, i);
        const t = performance.now();
        await framer.send(out);
        reply = await framer.recv();
        if (i >= spec.warmup) lat[i - spec.warmup] = (performance.now() - t) * 1000;
      }
      extra = { roundTrips: total, lastReplyChecksum: reply !== null ? checksum(reply) : null, ...latencySummary(lat) };
    } else if (workload === 'W2') {
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
        const decoder = new RawDecoder((bytes, start, length) => {
          const dt = performance.now() - t;
          if (i >= spec.warmup) lat[i - spec.warmup] = dt * 1000;
          if (++i === total) {
            lastReply = checksum(bytes!.subarray(start, start + length));
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
          ? (into: Buffer, offset: number, i: number): number => {
              // TypedArray#set is a V8 builtin: for 64 bytes far cheaper than Buffer#copy's native call.
              into.set(payload, offset);
              stampAt(into, offset, payload.length, i);
              return payload.length;
            }
          : (into: Buffer, offset: number, i: number): number => {
              const bytes = encoder.encodeSharedRef(smallObject(i));
              into.set(bytes, offset);
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
