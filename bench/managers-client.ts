/**
 * Manager client benchmark (not a test): the Node `ManagerClient` and
 * CPython's own client against the same CPython SyncManager server, in the
 * same run, runs interleaved.
 *
 *   M1  a proxy method call round trip (`q.qsize()` on a Queue proxy)
 *   M2  proxy creation and release (`m.Queue()`, then `release` / Python's `del q`)
 *
 * CPython's M2 includes what its client does for each proxy: `create`, then
 * an `incref` for the proxy and a `decref` of the temporary reference (three
 * connections), then a `decref` on `del` (a fourth); mpconn's makes two
 * (`create`, then `decref` on release). That difference is part of the figure.
 *
 *   node dist/bench/managers-client.js [--runs N] [--quick] [--python PATH] [--only M1|M2] [--out FILE]
 *
 * Besides wall time, each side's client CPU per operation (user + system of
 * the client process only) is printed: on a shared machine it is the steadier
 * figure. Profile the Node side with `node --cpu-prof dist/bench/managers-client.js --only M1`.
 * The figures also go to bench/results/managers-client.json (figures, machine, date).
 */
import { spawn } from 'node:child_process';
import { mkdirSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { createInterface } from 'node:readline';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';
import { ManagerClient } from 'mpconn';
import { describeMachine, findPython } from './lib/machine.js';
import { median } from './lib/role.js';

const { values: opts } = parseArgs({
  options: {
    runs: { type: 'string' },
    quick: { type: 'boolean', default: false },
    python: { type: 'string' },
    only: { type: 'string' },
    out: { type: 'string' },
    help: { type: 'boolean', default: false },
  },
  strict: true,
});
if (opts.help) {
  process.stdout.write('Usage: node dist/bench/managers-client.js [--runs N] [--quick] [--python PATH] [--only M1|M2] [--out FILE]\n');
  process.exit(0);
}
const runs = Number(opts.runs ?? (opts.quick ? 3 : 5));
const python = findPython(opts.python);
if (python === null) {
  console.error('no CPython found ($(pyenv root)/versions/3.12.*/bin/python, or --python PATH): nothing to compare with');
  process.exit(1);
}
const ROOT = fileURLToPath(new URL('../../', import.meta.url));
const outFile = path.resolve(opts.out ?? path.join(ROOT, 'bench', 'results', 'managers-client.json'));
const started = new Date();
const AUTHKEY = 'mpconn-bench-manager';
// Operations per measured run: enough that a run lasts well over the timer's resolution.
const COUNTS = { M1: opts.quick ? 500 : 2000, M2: opts.quick ? 10 : 30 } as const;
type Figure = keyof typeof COUNTS;

const SERVER = `
import sys
from multiprocessing.managers import SyncManager
m = SyncManager(address=('127.0.0.1', 0), authkey=sys.argv[1].encode())
s = m.get_server()
print('%s %d' % s.address, flush=True)
s.serve_forever()
`;

const CLIENT = `
import sys, time
from multiprocessing.managers import SyncManager
host, port = sys.argv[1], int(sys.argv[2])
m = SyncManager(address=(host, port), authkey=sys.argv[3].encode())
m.connect()
q = m.Queue()
q.qsize()
print('ready', flush=True)
for line in sys.stdin:
    figure, n = line.split()
    n = int(n)
    t = time.perf_counter()
    c = time.process_time()
    if figure == 'M1':
        for _ in range(n):
            q.qsize()
    else:
        for _ in range(n):
            p = m.Queue()
            del p
    print('%f %f' % ((time.perf_counter() - t) * 1e6 / n, (time.process_time() - c) * 1e6 / n), flush=True)
`;

function lines(child: ReturnType<typeof spawn>): () => Promise<string> {
  const queue: string[] = [];
  const waiting: ((l: string) => void)[] = [];
  createInterface({ input: child.stdout! }).on('line', (l) => {
    const w = waiting.shift();
    if (w) w(l);
    else queue.push(l);
  });
  return () => {
    const l = queue.shift();
    return l !== undefined ? Promise.resolve(l) : new Promise((resolve) => waiting.push(resolve));
  };
}

const server = spawn(python, ['-u', '-c', SERVER, AUTHKEY], { stdio: ['pipe', 'pipe', 'inherit'] });
const serverLine = lines(server);
const [host, portText] = (await serverLine()).split(' ');
const address: [string, number] = [host!, Number(portText)];

const pyClient = spawn(python, ['-u', '-c', CLIENT, host!, portText!, AUTHKEY], { stdio: ['pipe', 'pipe', 'inherit'] });
const pyLine = lines(pyClient);
await pyLine(); // ready

const manager = await ManagerClient.connect(address, { authkey: AUTHKEY });
const q = await manager.Queue();
await q.qsize();

/** Wall-clock and CPU (user + system) microseconds per operation of one run. */
interface Sample {
  wall: number;
  cpu: number;
}

async function nodeRun(figure: Figure, n: number): Promise<Sample> {
  const t = performance.now();
  const c = process.cpuUsage();
  if (figure === 'M1') {
    for (let i = 0; i < n; i++) await q.qsize();
  } else {
    for (let i = 0; i < n; i++) await manager.release(await manager.Queue());
  }
  const wall = ((performance.now() - t) * 1000) / n;
  const cpu = process.cpuUsage(c);
  return { wall, cpu: (cpu.user + cpu.system) / n };
}

async function pythonRun(figure: Figure, n: number): Promise<Sample> {
  pyClient.stdin!.write(`${figure} ${n}\n`);
  const [wall, cpu] = (await pyLine()).split(' ').map(Number);
  return { wall: wall!, cpu: cpu! };
}

const results: { figure: Figure; node: Sample; cpython: Sample; runs: { node: Sample[]; cpython: Sample[] } }[] = [];
const medianOf = (xs: Sample[]): Sample => ({ wall: median(xs.map((x) => x.wall)), cpu: median(xs.map((x) => x.cpu)) });
try {
  const figures = (['M1', 'M2'] as const).filter((f) => opts.only === undefined || opts.only.split(',').includes(f));
  for (const figure of figures) {
    const n = COUNTS[figure];
    // Warm-up (JIT, connection pools, server threads), not measured.
    await nodeRun(figure, Math.ceil(n / 10));
    await pythonRun(figure, Math.ceil(n / 10));
    const node: Sample[] = [];
    const cpython: Sample[] = [];
    for (let r = 0; r < runs; r++) {
      // Alternate which goes first, so a burst of background load does not land on one side only.
      if (r % 2 === 0) {
        node.push(await nodeRun(figure, n));
        cpython.push(await pythonRun(figure, n));
      } else {
        cpython.push(await pythonRun(figure, n));
        node.push(await nodeRun(figure, n));
      }
      process.stderr.write('.');
    }
    results.push({ figure, node: medianOf(node), cpython: medianOf(cpython), runs: { node, cpython } });
  }
} finally {
  process.stderr.write('\n');
  await manager.close();
  pyClient.stdin!.end();
  pyClient.kill();
  server.kill();
}

const pyVersion = python.match(/versions\/([^/]+)\//)?.[1] ?? python;
const names: Record<Figure, string> = {
  M1: 'M1 proxy call round trip (q.qsize())',
  M2: 'M2 proxy create + release (Queue())',
};
console.log(`Manager client, against a CPython ${pyVersion} SyncManager on 127.0.0.1 (median of ${runs} runs, µs per operation)\n`);
console.log('| figure | mpconn ManagerClient | CPython client | CPython / mpconn | client CPU µs/op mpconn | client CPU µs/op CPython |');
console.log('|---|---:|---:|---:|---:|---:|');
for (const r of results) {
  console.log(
    `| ${names[r.figure]} | ${r.node.wall.toFixed(1)} | ${r.cpython.wall.toFixed(1)} | ${(r.cpython.wall / r.node.wall).toFixed(2)} | ${r.node.cpu.toFixed(1)} | ${r.cpython.cpu.toFixed(1)} |`,
  );
}
console.log("\nA ratio above 1: the Node client takes less time per operation than CPython's.");
console.log('Client CPU is the client process alone (user + system), the steadier figure on a busy machine.');

const json = {
  schema: 1,
  figures: 'M1, M2',
  date: started.toISOString(),
  unit: 'µs per operation (wall, and client CPU: user + system of the client process)',
  options: { runs, quick: opts.quick, only: opts.only ?? null, counts: COUNTS, python },
  machine: { ...describeMachine(ROOT, python), loadavgEnd: os.loadavg() },
  results: results.map((r) => ({ ...r, title: names[r.figure], ratio: r.cpython.wall / r.node.wall })),
};
mkdirSync(path.dirname(outFile), { recursive: true });
writeFileSync(outFile, JSON.stringify(json, null, 2) + '\n');
process.stderr.write(`results written to ${path.relative(process.cwd(), outFile)}\n`);
