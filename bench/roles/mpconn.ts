/**
 * System "mpconn", through its public API only. Variants: W1/W4 `batch`
 * (the receiver loops on recvBytesMany / recvMany, the sender awaits every
 * 256th send instead of each); W3 `bytes`
 * (recvBytes) or `into` (recvBytesInto a reused buffer); W5 `auth` (authkey on
 * both sides) or `noauth`. Senders use the idiomatic `await conn.sendBytes()` /
 * `await conn.send()` loop with one reused buffer.
 */
import { Client, Listener, type Address, type Connection } from '../../src/index.js';
import { checksum, senderBuffer, smallObject, stamp, type SmallObject } from '../lib/payload.js';
import { AUTHKEY, cpuMs, emit, latencySummary, roleArgs, serveCommands, type BenchAddress, type RoleResult, type Transport } from '../lib/role.js';

const args = roleArgs();
const { workload, variant } = args;
const authkey = workload === 'W5' && variant === 'auth' ? AUTHKEY : null;
/** W1/W4 `batch`: the sender awaits every PIPELINE-th send. */
const PIPELINE = 256;

function toAddress(a: BenchAddress): Address {
  return typeof a === 'string' ? a : [a[0], a[1]];
}

async function server(): Promise<void> {
  const listeners = new Map<Transport, Listener>();
  const addresses: Partial<Record<Transport, BenchAddress>> = {};
  for (const t of args.transports) {
    const listener = await Listener.listen(t === 'unix' ? (args.addresses.unix as string) : ['127.0.0.1', 0], { authkey });
    listeners.set(t, listener);
    const bound = listener.address;
    addresses[t] = typeof bound === 'string' ? bound : Array.isArray(bound) ? [bound[0], bound[1]] : [(bound as { host: string }).host, (bound as { port: number }).port];
  }
  emit('ready', { addresses });
  let into: Buffer | null = null;
  serveCommands(async (spec) => {
    const listener = listeners.get(spec.transport)!;
    const total = spec.warmup + spec.count;
    if (workload === 'W5') {
      for (let i = 0; i < total; i++) {
        const conn = await listener.accept();
        await conn.close();
      }
      return { accepted: total };
    }
    const conn = await listener.accept();
    let result: RoleResult;
    if (workload === 'W2') {
      for (let i = 0; i < total; i++) {
        const m = await conn.recvBytes();
        await conn.sendBytes(m);
      }
      result = { echoed: total };
    } else {
      let t0 = performance.now();
      let cpu0 = process.cpuUsage();
      let bytes = 0;
      let messages = 0;
      let crc: number | null = null;
      let lastObject: SmallObject | null = null;
      if (variant === 'batch') {
        // A batch of whatever is buffered per call; the warm-up's batches stop where the clock starts.
        let last: unknown = null;
        while (messages < total) {
          const warming = messages < spec.warmup;
          const max = spec.warmup - messages;
          let batch: unknown[];
          if (workload === 'W4') batch = warming ? await conn.recvMany({ max }) : await conn.recvMany();
          else {
            const buffers = warming ? await conn.recvBytesMany({ max }) : await conn.recvBytesMany();
            for (const b of buffers) bytes += b.length;
            batch = buffers;
          }
          messages += batch.length;
          last = batch[batch.length - 1];
          if (warming && messages === spec.warmup) {
            t0 = performance.now();
            cpu0 = process.cpuUsage();
          }
        }
        if (workload === 'W4') lastObject = last as SmallObject;
        else crc = checksum(last as Buffer);
      } else if (workload === 'W4') {
        let last: unknown = null;
        for (let i = 0; i < total; i++) {
          last = await conn.recv();
          messages++;
          if (i === spec.warmup - 1) {
            t0 = performance.now();
            cpu0 = process.cpuUsage();
          }
        }
        lastObject = last as SmallObject;
      } else if (variant === 'into') {
        if (into === null || into.length < spec.size) into = Buffer.allocUnsafe(spec.size);
        let n = 0;
        for (let i = 0; i < total; i++) {
          n = await conn.recvBytesInto(into);
          bytes += n;
          messages++;
          if (i === spec.warmup - 1) {
            t0 = performance.now();
            cpu0 = process.cpuUsage();
          }
        }
        crc = checksum(into.subarray(0, n));
      } else {
        let last: Buffer | null = null;
        for (let i = 0; i < total; i++) {
          last = await conn.recvBytes();
          bytes += last.length;
          messages++;
          if (i === spec.warmup - 1) {
            t0 = performance.now();
            cpu0 = process.cpuUsage();
          }
        }
        crc = last !== null ? checksum(last) : null;
      }
      const seconds = (performance.now() - t0) / 1000;
      result = { messages, bytes, checksum: crc, lastObject, seconds, timedMessages: spec.count, timedBytes: spec.count * spec.size, cpuMs: cpuMs(cpu0) };
    }
    await conn.close();
    return result;
  }, async () => {
    for (const l of listeners.values()) await l.close();
  });
}

async function client(): Promise<void> {
  emit('ready');
  serveCommands(async (spec) => {
    const address = toAddress(spec.address!);
    const total = spec.warmup + spec.count;
    const cpu0 = process.cpuUsage();
    const t0 = performance.now();
    if (workload === 'W5') {
      const lat = new Float64Array(spec.count);
      let tTimed = t0;
      for (let i = 0; i < total; i++) {
        if (i === spec.warmup) tTimed = performance.now();
        const t = performance.now();
        const conn = await Client(address, { authkey });
        if (i >= spec.warmup) lat[i - spec.warmup] = (performance.now() - t) * 1000;
        await conn.close();
      }
      const seconds = (performance.now() - tTimed) / 1000;
      return { connects: total, seconds, timedConnects: spec.count, ...latencySummary(lat), cpuMs: cpuMs(cpu0) };
    }
    const conn: Connection = await Client(address);
    let extra: RoleResult = {};
    if (workload === 'W2') {
      const lat = new Float64Array(spec.count);
      const out = senderBuffer(spec.size);
      let reply: Buffer | null = null;
      for (let i = 0; i < total; i++) {
        stamp(out, i);
        const t = performance.now();
        await conn.sendBytes(out);
        reply = await conn.recvBytes();
        if (i >= spec.warmup) lat[i - spec.warmup] = (performance.now() - t) * 1000;
      }
      extra = { roundTrips: total, lastReplyChecksum: reply !== null ? checksum(reply) : null, ...latencySummary(lat) };
    } else if (variant === 'batch') {
      // Pipelined, as a streaming sender would write it: sends go out in call
      // order, so awaiting every PIPELINE-th one applies the backpressure (the
      // promises resolve in order). W1 cycles through 2 × PIPELINE buffers: a
      // buffer is reused only after the send that last carried it resolved.
      const ring = workload === 'W4' ? [] : Array.from({ length: 2 * PIPELINE }, () => senderBuffer(spec.size));
      let sent: Promise<void> = Promise.resolve();
      for (let i = 0; i < total; i++) {
        if (workload === 'W4') sent = conn.send(smallObject(i));
        else {
          const buf = ring[i % ring.length]!;
          stamp(buf, i);
          sent = conn.sendBytes(buf);
        }
        if (i % PIPELINE === PIPELINE - 1) await sent;
      }
      await sent;
    } else if (workload === 'W4') {
      for (let i = 0; i < total; i++) await conn.send(smallObject(i));
    } else {
      const buf = senderBuffer(spec.size);
      for (let i = 0; i < total; i++) {
        stamp(buf, i);
        await conn.sendBytes(buf);
      }
    }
    const seconds = (performance.now() - t0) / 1000;
    await conn.close();
    return { sent: total, seconds, cpuMs: cpuMs(cpu0), ...extra };
  });
}

if (args.side === 'server') await server();
else await client();
