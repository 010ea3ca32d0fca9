/**
 * System "ipc": Node's own child_process IPC channel. The orchestrator starts
 * only the parent; it forks this same file as the child with
 * `serialization: variant` ('json' or 'advanced'). W1: the child sends 64-char
 * strings, the parent receives; W2: the parent pings, the child echoes; W4: the
 * child sends the small object. Control messages are objects with a `ctl` key.
 */
import { fork, type ChildProcess } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { checksum, ipcString, smallObject, type SmallObject } from '../lib/payload.js';
import { cpuMs, emit, latencySummary, roleArgs, serveCommands, type RoleResult, type RunSpec } from '../lib/role.js';

const args = roleArgs();
const { workload, variant } = args;

interface Ctl {
  ctl: 'run' | 'ready' | 'sent';
  spec?: RunSpec;
  seconds?: number;
  cpuMs?: number;
}
const isCtl = (m: unknown): m is Ctl => typeof m === 'object' && m !== null && 'ctl' in m;

function send(m: unknown, withCallback: boolean): Promise<void> | boolean {
  if (!withCallback) return process.send!(m);
  return new Promise<void>((resolve, reject) => {
    process.send!(m, undefined, undefined, (err) => (err ? reject(err) : resolve()));
  });
}

async function child(): Promise<void> {
  process.on('message', async (m: unknown) => {
    if (!isCtl(m)) {
      // W2: echo.
      process.send!(m);
      return;
    }
    if (m.ctl !== 'run') return;
    const spec = m.spec!;
    const total = spec.warmup + spec.count;
    if (workload === 'W2') return;
    const cpu0 = process.cpuUsage();
    const t0 = performance.now();
    // Backpressure: wait for the channel after every 1024 messages, or when send() says to.
    let wait = false;
    for (let i = 0; i < total; i++) {
      const msg = workload === 'W1' ? ipcString(i) : smallObject(i);
      if (wait || (i & 1023) === 1023) {
        await send(msg, true);
        wait = false;
      } else wait = !(send(msg, false) as boolean);
    }
    process.send!({ ctl: 'sent', seconds: (performance.now() - t0) / 1000, cpuMs: cpuMs(cpu0) } satisfies Ctl);
  });
  process.send!({ ctl: 'ready' } satisfies Ctl);
}

async function parent(): Promise<void> {
  const kid: ChildProcess = fork(fileURLToPath(import.meta.url), [JSON.stringify({ ...args, side: 'child' })], {
    serialization: variant as 'json' | 'advanced',
    stdio: ['ignore', 'ignore', 'inherit', 'ipc'],
  });
  await new Promise<void>((resolve, reject) => {
    kid.once('message', () => resolve());
    kid.once('exit', (code) => reject(new Error(`IPC child exited with ${code}`)));
  });
  let onData: (m: unknown) => void = () => {};
  let onCtl: (m: Ctl) => void = () => {};
  kid.on('message', (m: unknown) => (isCtl(m) ? onCtl(m) : onData(m)));
  emit('ready', { childPid: kid.pid });

  serveCommands(async (spec): Promise<RoleResult> => {
    const total = spec.warmup + spec.count;
    if (workload === 'W2') {
      const lat = new Float64Array(spec.count);
      let reply: unknown = null;
      for (let i = 0; i < total; i++) {
        const out = ipcString(i);
        const t = performance.now();
        const got = new Promise<unknown>((resolve) => (onData = resolve));
        kid.send(out);
        reply = await got;
        if (i >= spec.warmup) lat[i - spec.warmup] = (performance.now() - t) * 1000;
      }
      return { roundTrips: total, lastReplyChecksum: checksum(Buffer.from(String(reply))), ...latencySummary(lat) };
    }
    let count = 0;
    let bytes = 0;
    let last: unknown = null;
    let t0 = performance.now();
    let cpu0 = process.cpuUsage();
    const sent = new Promise<Ctl>((resolve) => (onCtl = resolve));
    await new Promise<void>((resolve) => {
      onData = (m) => {
        count++;
        if (workload === 'W1') bytes += (m as string).length;
        if (count === spec.warmup) {
          t0 = performance.now();
          cpu0 = process.cpuUsage();
        }
        if (count === total) {
          last = m;
          resolve();
        }
      };
      kid.send({ ctl: 'run', spec } satisfies Ctl);
    });
    const seconds = (performance.now() - t0) / 1000;
    const cpu = cpuMs(cpu0);
    const sender = await sent;
    return {
      messages: count,
      bytes,
      checksum: workload === 'W1' ? checksum(Buffer.from(last as string)) : null,
      lastObject: workload === 'W4' ? (last as SmallObject) : null,
      seconds,
      timedMessages: spec.count,
      timedBytes: spec.count * spec.size,
      cpuMs: cpu,
      sender: { seconds: sender.seconds, cpuMs: sender.cpuMs },
    };
  }, async () => {
    kid.kill();
  });
}

if ((args.side as string) === 'child') await child();
else await parent();
