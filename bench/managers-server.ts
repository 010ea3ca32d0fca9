// M3: manager calls per second and median call latency, with 1 and 8
// concurrent Python client processes, against the Node ManagerServer and
// against CPython's own manager server, measured in the same run.
//
//   npm run build && node dist/bench/managers-server.js [--seconds 2] [--runs 3] [--clients 1,8] [--python PATH]
//
// Each client is an unmodified CPython program: SyncManager(address, authkey)
// .connect(), one m.dict() of its own, then as many calls as it can for the
// run's duration, alternating d[k] = i and d.get(k), each call timed. Both
// servers run in their own process; all clients start together on a "go".
// Rounds alternate which server goes first. Not a test: nothing gates on a time.
import { spawn, type ChildProcess } from 'node:child_process';
import { once } from 'node:events';
import { createInterface } from 'node:readline';
import { clockTicks, processTicks } from './lib/cpu.js';
import { findPython } from './lib/machine.js';
import { latencySummary } from './lib/role.js';

const AUTHKEY = 'mpconn-bench-managers';
const MPCONN = new URL('../src/index.js', import.meta.url).href;

function option(name: string, fallback: string): string {
  const i = process.argv.indexOf(`--${name}`);
  return i >= 0 && process.argv[i + 1] !== undefined ? process.argv[i + 1]! : fallback;
}

const seconds = Number(option('seconds', '2'));
const runs = Number(option('runs', '3'));
const clientCounts = option('clients', '1,8').split(',').map(Number);
const python = findPython(process.argv.includes('--python') ? option('python', '') : undefined) ?? 'python3';

const NODE_SERVER = `
import { ManagerServer } from '${MPCONN}';
const server = await ManagerServer.listen(['127.0.0.1', 0], { authkey: '${AUTHKEY}' });
console.log(server.address[1]);
process.stdin.resume();
process.stdin.on('end', () => server.close().then(() => process.exit(0)));
`;

const CPYTHON_SERVER = `
import sys, threading
from multiprocessing.managers import SyncManager
m = SyncManager(address=('127.0.0.1', 0), authkey=b'${AUTHKEY}')
s = m.get_server()
print(s.address[1], flush=True)
threading.Thread(target=lambda: (sys.stdin.read(), __import__('os')._exit(0)), daemon=True).start()
s.serve_forever()
`;

const CLIENT = `
import json, sys, time
from multiprocessing.managers import SyncManager
m = SyncManager(address=('127.0.0.1', int(sys.argv[1])), authkey=b'${AUTHKEY}')
m.connect()
d = m.dict()
for i in range(200):
    d[i % 64] = i
    d.get(i % 64)
print('ready', flush=True)
sys.stdin.readline()
seconds = float(sys.argv[2])
lat = []
clock = time.perf_counter
start = clock()
end = start + seconds
i = 0
while True:
    t = clock()
    if t >= end:
        break
    if i & 1:
        d.get(i % 64)
    else:
        d[i % 64] = i
    lat.append(int((clock() - t) * 1e6))
    i += 1
elapsed = clock() - start
print(json.dumps({'calls': i, 'elapsed': elapsed, 'lat': lat}), flush=True)
`;

interface Lines {
  child: ChildProcess;
  next(): Promise<string>;
}

function start(cmd: string, args: string[]): Lines {
  const child = spawn(cmd, args, { stdio: ['pipe', 'pipe', 'inherit'] });
  const queue: string[] = [];
  const waiters: Array<(line: string) => void> = [];
  createInterface({ input: child.stdout! }).on('line', (line) => {
    const w = waiters.shift();
    if (w) w(line);
    else queue.push(line);
  });
  return {
    child,
    next: () => {
      const line = queue.shift();
      return line !== undefined ? Promise.resolve(line) : new Promise((resolve) => waiters.push(resolve));
    },
  };
}

type Kind = 'node' | 'cpython';

async function startServer(kind: Kind): Promise<{ port: string; pid: number; stop(): Promise<void> }> {
  const server =
    kind === 'node'
      ? start(process.execPath, ['--input-type=module', '-e', NODE_SERVER])
      : start(python, ['-u', '-c', CPYTHON_SERVER]);
  const port = await server.next();
  return {
    port,
    pid: server.child.pid!,
    async stop() {
      server.child.stdin!.end();
      const exited = once(server.child, 'exit');
      const timer = setTimeout(() => server.child.kill('SIGKILL'), 5000);
      await exited;
      clearTimeout(timer);
    },
  };
}

interface RunResult {
  callsPerSecond: number;
  medianUs: number;
  /** The server process's CPU time (user + system) per call. */
  serverCpuUs: number;
}

async function measure(kind: Kind, clients: number): Promise<RunResult> {
  const server = await startServer(kind);
  try {
    const procs = Array.from({ length: clients }, () => start(python, ['-u', '-c', CLIENT, server.port, String(seconds)]));
    for (const p of procs) {
      const line = await p.next();
      if (line !== 'ready') throw new Error(`a ${kind} client said ${JSON.stringify(line)}`);
    }
    const ticksBefore = processTicks(server.pid) ?? 0;
    for (const p of procs) p.child.stdin!.write('go\n');
    const results = (await Promise.all(procs.map((p) => p.next()))).map(
      (line) => JSON.parse(line) as { calls: number; elapsed: number; lat: number[] },
    );
    const serverTicks = (processTicks(server.pid) ?? 0) - ticksBefore;
    await Promise.all(procs.map((p) => once(p.child, 'exit')));
    const calls = results.reduce((sum, r) => sum + r.calls, 0);
    const serverCpuUs = ((serverTicks / clockTicks()) * 1e6) / calls;
    const callsPerSecond = results.reduce((sum, r) => sum + r.calls / r.elapsed, 0);
    const { medianUs } = latencySummary(results.flatMap((r) => r.lat));
    return { callsPerSecond, medianUs, serverCpuUs };
  } finally {
    await server.stop();
  }
}

function median(values: number[]): number {
  const s = [...values].sort((a, b) => a - b);
  return s[Math.floor(s.length / 2)]!;
}

const table: string[] = [];
process.stderr.write(`M3 with ${python}, ${runs} runs of ${seconds} s per figure\n`);
for (const clients of clientCounts) {
  const figures: Record<Kind, RunResult[]> = { node: [], cpython: [] };
  for (let run = 0; run < runs; run++) {
    const order: Kind[] = run % 2 === 0 ? ['node', 'cpython'] : ['cpython', 'node'];
    for (const kind of order) {
      figures[kind].push(await measure(kind, clients));
      process.stderr.write('.');
    }
  }
  const summary = (rs: RunResult[]): { cps: number; us: number; cpu: number } => ({
    cps: median(rs.map((f) => f.callsPerSecond)),
    us: median(rs.map((f) => f.medianUs)),
    cpu: median(rs.map((f) => f.serverCpuUs)),
  });
  const node = summary(figures.node);
  const cpy = summary(figures.cpython);
  table.push(
    `| ${clients} | ${Math.round(node.cps)} | ${Math.round(cpy.cps)} | ${(node.cps / cpy.cps).toFixed(2)}× | ` +
      `${node.us} | ${cpy.us} | ${(cpy.us / node.us).toFixed(2)}× | ${node.cpu.toFixed(0)} | ${cpy.cpu.toFixed(0)} |`,
  );
}
process.stderr.write('\n');
console.log('M3: manager calls (SyncManager dict, d[k] = i / d.get(k)), CPython clients over TCP loopback');
console.log(
  '| clients | Node calls/s | CPython calls/s | calls/s Node/CPython | Node median µs | CPython median µs | latency CPython/Node | Node server CPU µs/call | CPython server CPU µs/call |',
);
console.log('|---|---|---|---|---|---|---|---|---|');
for (const row of table) console.log(row);
