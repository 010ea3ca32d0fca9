// M3: manager calls per second and median call latency, with 1 and 8
// concurrent Python client processes, against the Node ManagerServer and
// against CPython's own manager server, measured in the same run.
//
//   npm run build && node dist/bench/managers-server.js [--seconds 2] [--warmup 1] [--runs 3] [--clients 1,8] [--python PATH] [--out FILE] [--mpconn DIST] [--cpu-prof DIR]
//
// --cpu-prof DIR runs each Node server process under `node --cpu-prof`, its
// profile written to DIR (summarise with dist/bench/profile-summary.js); the
// profiler's own cost then shows in that server's CPU figures.
//
// Each client is an unmodified CPython program: SyncManager(address, authkey)
// .connect(), one m.dict() of its own, then as many calls as it can for the
// run's duration, alternating d[k] = i and d.get(k), each call timed. Before
// the timed part every client calls for --warmup seconds, untimed (both
// servers alike: it is there for the Node server's JIT, which otherwise
// compiles on its helper threads during the first seconds and bills that CPU
// to the measured calls; a long-running server pays it once). Three servers
// are measured: the Node ManagerServer, CPython's own SyncManager server, and
// the Node floor (bench/raw/manager-floor.ts: bare node:net answering the same
// calls in its 'data' handler, no Connection, no promise), which shows how
// much of the gap to a goal is the ManagerServer's and how much is Node's.
// Each runs in its own process; all clients start together on a "go". Each
// run starts with the next server, so none is always first (balanced when
// --runs is a multiple of 3). Not a test: nothing gates on a time.
//
// Besides calls/s and latency, each row has the CPU per call (user + system,
// from /proc) of the server process and of the client processes, and the
// ceiling any server could reach here: the clients alone need that much CPU
// per call, so on C cores no server can serve more than C × 1e6 / (client CPU
// µs per call) calls/s. The server's user-mode part of its CPU is given too
// (in parentheses): on a VM its system time swings between runs with how the
// scheduler wakes the two ends of each round trip, its user time much less.
// The figures also go to bench/results/managers-server.json.
import { spawn, type ChildProcess } from 'node:child_process';
import { once } from 'node:events';
import { mkdirSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { createInterface } from 'node:readline';
import { fileURLToPath, pathToFileURL } from 'node:url';
import { clockTicks, CpuLedger, processTicks, processUserTicks, startInterval } from './lib/cpu.js';
import { describeMachine, findPython } from './lib/machine.js';
import { latencySummary, median } from './lib/role.js';

const AUTHKEY = 'mpconn-bench-managers';
// --mpconn DIR serves from another build's dist/ (a before/after comparison); default: this build.
const mpconnAt = process.argv.indexOf('--mpconn');
const MPCONN =
  mpconnAt >= 0 && process.argv[mpconnAt + 1] !== undefined
    ? pathToFileURL(path.resolve(process.argv[mpconnAt + 1]!, 'src', 'index.js')).href
    : new URL('../src/index.js', import.meta.url).href;
const ROOT = fileURLToPath(new URL('../../', import.meta.url));
const CORES = os.availableParallelism?.() ?? os.cpus().length;

function option(name: string, fallback: string): string {
  const i = process.argv.indexOf(`--${name}`);
  return i >= 0 && process.argv[i + 1] !== undefined ? process.argv[i + 1]! : fallback;
}

const seconds = Number(option('seconds', '2'));
const warmup = Number(option('warmup', '1'));
const runs = Math.max(1, Number(option('runs', '3')));
const clientCounts = option('clients', '1,8').split(',').map(Number);
const python = findPython(process.argv.includes('--python') ? option('python', '') : undefined) ?? 'python3';
const outFile = path.resolve(option('out', path.join(ROOT, 'bench', 'results', 'managers-server.json')));
const cpuProfDir = process.argv.includes('--cpu-prof') ? path.resolve(option('cpu-prof', 'cpu-profiles')) : null;

const NODE_SERVER = `
import { ManagerServer } from '${MPCONN}';
const server = await ManagerServer.listen(['127.0.0.1', 0], { authkey: '${AUTHKEY}' });
console.log(server.address[1]);
process.stdin.resume();
process.stdin.on('end', () => server.close().then(() => process.exit(0)));
`;

// The Node floor (bench/raw/manager-floor.ts): bare node:net, no Connection, no promise.
const FLOOR_SERVER = `
import { listenManagerFloor } from '${new URL('./raw/manager-floor.js', import.meta.url).href}';
const server = await listenManagerFloor('127.0.0.1', 0, Buffer.from('${AUTHKEY}'));
console.log(server.address().port);
process.stdin.resume();
process.stdin.on('end', () => process.exit(0));
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
clock = time.perf_counter
i = 0
end = clock() + float(sys.argv[3])
while i < 400 or clock() < end:
    d[i % 64] = i
    d.get(i % 64)
    i += 1
print('ready', flush=True)
sys.stdin.readline()
seconds = float(sys.argv[2])
lat = []
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
sys.stdin.readline()  # stays alive until its CPU time has been read
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

/** `floor`: the least a Node server can do per call (bench/raw/manager-floor.ts), for what separates ManagerServer from Node's limit. */
type Kind = 'node' | 'cpython' | 'floor';
const KINDS: readonly Kind[] = ['node', 'cpython', 'floor'];

async function startServer(kind: Kind): Promise<{ port: string; pid: number; stop(): Promise<void> }> {
  const server =
    kind === 'cpython'
      ? start(python, ['-u', '-c', CPYTHON_SERVER])
      : start(process.execPath, [
          ...(cpuProfDir === null ? [] : ['--cpu-prof', `--cpu-prof-dir=${path.join(cpuProfDir, kind)}`]),
          '--input-type=module',
          '-e',
          kind === 'node' ? NODE_SERVER : FLOOR_SERVER,
        ]);
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
  /** The server process's user-mode CPU time per call (the part its code spends, without the kernel's). */
  serverUserUs: number;
  /** The client processes' CPU time (user + system, all of them) per call. */
  clientCpuUs: number;
  /** The share of the machine's CPU that processes other than these used meanwhile. */
  otherShare: number | null;
}

async function measure(kind: Kind, clients: number): Promise<RunResult> {
  const server = await startServer(kind);
  try {
    const procs = Array.from({ length: clients }, () =>
      start(python, ['-u', '-c', CLIENT, server.port, String(seconds), String(warmup)]),
    );
    for (const p of procs) {
      const line = await p.next();
      if (line !== 'ready') throw new Error(`a ${kind} client said ${JSON.stringify(line)}`);
    }
    const ledger = new CpuLedger();
    ledger.track(server.pid);
    for (const p of procs) ledger.track(p.child.pid);
    const ticks = (): { server: number; serverUser: number; clients: number } => ({
      server: processTicks(server.pid) ?? 0,
      serverUser: processUserTicks(server.pid) ?? 0,
      clients: procs.reduce((sum, p) => sum + (processTicks(p.child.pid!) ?? 0), 0),
    });
    const before = ticks();
    const others = startInterval(ledger, CORES);
    for (const p of procs) p.child.stdin!.write('go\n');
    const results = (await Promise.all(procs.map((p) => p.next()))).map(
      (line) => JSON.parse(line) as { calls: number; elapsed: number; lat: number[] },
    );
    const after = ticks();
    const { otherShare } = others();
    for (const p of procs) p.child.stdin!.end();
    await Promise.all(procs.map((p) => once(p.child, 'exit')));
    const calls = results.reduce((sum, r) => sum + r.calls, 0);
    const perCall = (t: number): number => ((t / clockTicks()) * 1e6) / calls;
    const callsPerSecond = results.reduce((sum, r) => sum + r.calls / r.elapsed, 0);
    const { medianUs } = latencySummary(results.flatMap((r) => r.lat));
    return {
      callsPerSecond,
      medianUs,
      serverCpuUs: perCall(after.server - before.server),
      serverUserUs: perCall(after.serverUser - before.serverUser),
      clientCpuUs: perCall(after.clients - before.clients),
      otherShare,
    };
  } finally {
    await server.stop();
  }
}

interface Summary {
  callsPerSecond: number;
  medianUs: number;
  serverCpuUs: number;
  serverUserUs: number;
  clientCpuUs: number;
  /** min(clients, CORES) × 1e6 / clientCpuUs: what a server costing nothing would allow (a client makes one call at a time, so it uses one core at most). */
  ceiling: number;
  /** Median over the runs; null without /proc/stat. */
  otherShare: number | null;
  runs: RunResult[];
}

function summary(rs: RunResult[], clients: number): Summary {
  const clientCpuUs = median(rs.map((f) => f.clientCpuUs));
  const shares = rs.map((f) => f.otherShare).filter((x): x is number => x !== null);
  return {
    callsPerSecond: median(rs.map((f) => f.callsPerSecond)),
    medianUs: median(rs.map((f) => f.medianUs)),
    serverCpuUs: median(rs.map((f) => f.serverCpuUs)),
    serverUserUs: median(rs.map((f) => f.serverUserUs)),
    clientCpuUs,
    ceiling: (Math.min(clients, CORES) * 1e6) / clientCpuUs,
    otherShare: shares.length > 0 ? median(shares) : null,
    runs: rs,
  };
}

/** The goal of issue #14/#15: at least CPython's calls/s with one client, twice it with more. */
const goalFactor = (clients: number): number => (clients === 1 ? 1 : 2);

/**
 * The most CPU per call a server could spend and still serve `callsPerSecond`:
 * each client makes one call at a time, so the clients and the server keep
 * at most min(clients, cores) cores busy, and no more than other processes
 * (`otherShare` of the machine) left; the clients' own CPU per call comes off
 * that, and the rest is all a server could have. An upper bound: it counts no time for waking
 * either end of a round trip.
 */
function leftForServer(callsPerSecond: number, clients: number, clientCpuUs: number, otherShare: number | null): number {
  const cores = Math.min(clients, CORES, CORES * (1 - (otherShare ?? 0)));
  return (cores * 1e6) / callsPerSecond - clientCpuUs;
}

const started = new Date();
const machine = describeMachine(ROOT, python);
const rows: Array<{ clients: number; node: Summary; cpython: Summary; floor: Summary }> = [];
process.stderr.write(`M3 with ${python}, ${runs} runs of ${seconds} s per figure (after ${warmup} s of warm-up), ${CORES} cores\n`);
for (const clients of clientCounts) {
  const figures: Record<Kind, RunResult[]> = { node: [], cpython: [], floor: [] };
  for (let run = 0; run < runs; run++) {
    // Each run starts with the next server: none is always first (or last).
    for (let k = 0; k < KINDS.length; k++) {
      const kind = KINDS[(run + k) % KINDS.length]!;
      figures[kind].push(await measure(kind, clients));
      process.stderr.write('.');
    }
  }
  rows.push({
    clients,
    node: summary(figures.node, clients),
    cpython: summary(figures.cpython, clients),
    floor: summary(figures.floor, clients),
  });
}
process.stderr.write('\n');

const pct = (x: number | null): string => (x === null ? '?' : `${Math.round(x * 100)}%`);
console.log('M3: manager calls (SyncManager dict, d[k] = i / d.get(k)), CPython clients over TCP loopback');
console.log(
  '| clients | Node calls/s | CPython calls/s | calls/s Node/CPython | Node median µs | CPython median µs | latency CPython/Node | ' +
    'Node server CPU µs/call (user) | CPython server CPU µs/call (user) | client CPU µs/call (Node run / CPython run) | ' +
    'ceiling calls/s (Node run / CPython run) | Node / its ceiling | 2× CPython / ceiling | other load |',
);
console.log('|---|---|---|---|---|---|---|---|---|---|---|---|---|---|');
for (const { clients, node, cpython: cpy } of rows) {
  console.log(
    `| ${clients} | ${Math.round(node.callsPerSecond)} | ${Math.round(cpy.callsPerSecond)} | ${(node.callsPerSecond / cpy.callsPerSecond).toFixed(2)}× | ` +
      `${node.medianUs} | ${cpy.medianUs} | ${(cpy.medianUs / node.medianUs).toFixed(2)}× | ${node.serverCpuUs.toFixed(0)} (${node.serverUserUs.toFixed(0)}) | ${cpy.serverCpuUs.toFixed(0)} (${cpy.serverUserUs.toFixed(0)}) | ` +
      `${node.clientCpuUs.toFixed(0)} / ${cpy.clientCpuUs.toFixed(0)} | ${Math.round(node.ceiling)} / ${Math.round(cpy.ceiling)} | ` +
      `${pct(node.callsPerSecond / node.ceiling)} | ${pct((2 * cpy.callsPerSecond) / node.ceiling)} | ${pct(node.otherShare)} / ${pct(cpy.otherShare)} |`,
  );
}
// Each run measured the three servers back to back: their ratio within a run is the figure least moved by the machine's state.
const perRun = (a: Summary, b: Summary): number[] => a.runs.map((r, i) => r.callsPerSecond / b.runs[i]!.callsPerSecond);
const spread = (a: Summary, b: Summary): string => {
  const ratios = perRun(a, b);
  return `${Math.min(...ratios).toFixed(2)}–${Math.max(...ratios).toFixed(2)}×`;
};
for (const { clients, node, cpython: cpy, floor } of rows) {
  console.log(
    `${clients} client(s), calls/s ratio within each run: Node/CPython ${spread(node, cpy)}, floor/CPython ${spread(floor, cpy)}, ` +
      `Node/floor ${spread(node, floor)}`,
  );
}
console.log('');
console.log('The Node floor (bench/raw/manager-floor.ts: bare node:net, the request decoded and answered in the data handler, no Connection, no promise), same runs:');
console.log(
  '| clients | floor calls/s | floor/CPython | ManagerServer/floor | floor median µs | floor server CPU µs/call (user) | ' +
    'client CPU µs/call (floor run) | goal | server CPU µs/call the goal leaves | goal / floor |',
);
console.log('|---|---|---|---|---|---|---|---|---|---|');
for (const { clients, node, cpython: cpy, floor } of rows) {
  const goal = goalFactor(clients) * cpy.callsPerSecond;
  const leaves = leftForServer(goal, clients, floor.clientCpuUs, floor.otherShare);
  console.log(
    `| ${clients} | ${Math.round(floor.callsPerSecond)} | ${(floor.callsPerSecond / cpy.callsPerSecond).toFixed(2)}× | ` +
      `${(node.callsPerSecond / floor.callsPerSecond).toFixed(2)}× | ${floor.medianUs} | ` +
      `${floor.serverCpuUs.toFixed(0)} (${floor.serverUserUs.toFixed(0)}) | ${floor.clientCpuUs.toFixed(0)} | ` +
      `${goalFactor(clients)}× CPython = ${Math.round(goal)} calls/s | ${leaves.toFixed(0)} | ${pct(goal / floor.callsPerSecond)} |`,
  );
}
console.log(
  '"Server CPU the goal leaves": at the goal\'s calls/s, the clients (one call at a time each, so at most min(clients, cores) cores) ' +
    'need their own CPU per call and other processes took theirs; what is left is the most any server could spend per call, ' +
    'not counting the time to wake either end of a round trip. A floor that spends more cannot reach the goal here.',
);
console.log(
  `Ceiling: min(clients, ${CORES} cores) × 1e6 / the clients' own CPU µs per call (a client makes one call at a time), the calls/s no server could exceed on this machine; ` +
    '"2× CPython / ceiling" above 100% means the 2× goal is out of reach here. Other load: the CPU share other processes took meanwhile.',
);

const json = {
  schema: 1,
  figure: 'M3',
  date: started.toISOString(),
  options: { seconds, warmup, runs, clients: clientCounts, python, mpconn: MPCONN, cpuProf: cpuProfDir !== null },
  machine: { ...machine, loadavgEnd: os.loadavg() },
  rows: rows.map(({ clients, node, cpython, floor }) => {
    const floorRuns = perRun(floor, cpython);
    return {
      clients,
      node,
      cpython,
      floor,
      ratios: {
        floorCallsPerSecond: floor.callsPerSecond / cpython.callsPerSecond,
        /** The goal: this many times CPython's calls/s (1 with one client, else 2). */
        goalFactor: goalFactor(clients),
        /** µs of server CPU per call the goal's calls/s leaves, from the floor run's client CPU and other load (see leftForServer). */
        serverCpuLeftAtGoalFloorRun: leftForServer(goalFactor(clients) * cpython.callsPerSecond, clients, floor.clientCpuUs, floor.otherShare),
        /** calls/s ratios within each run (the three servers measured back to back). */
        perRun: perRun(node, cpython).map((nodeOverCpython, i) => ({ nodeOverCpython, floorOverCpython: floorRuns[i]! })),
        nodeOfFloor: node.callsPerSecond / floor.callsPerSecond,
        callsPerSecond: node.callsPerSecond / cpython.callsPerSecond,
        latency: cpython.medianUs / node.medianUs,
        serverCpu: node.serverCpuUs / cpython.serverCpuUs,
        serverUser: node.serverUserUs / cpython.serverUserUs,
        nodeOfCeiling: node.callsPerSecond / node.ceiling,
        twiceCpythonOfCeiling: (2 * cpython.callsPerSecond) / node.ceiling,
      },
    };
  }),
};
mkdirSync(path.dirname(outFile), { recursive: true });
writeFileSync(outFile, JSON.stringify(json, null, 2) + '\n');
process.stderr.write(`results written to ${path.relative(process.cwd(), outFile)}\n`);
