/**
 * The benchmark: every workload of bench/lib/workloads.ts, over Unix sockets
 * and TCP loopback, for every system, sender and receiver in separate
 * processes, all in one run so the table compares systems under the same
 * conditions. `npm run bench -- --help` lists the options.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { createInterface } from 'node:readline';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';
import { CpuLedger, startInterval } from './lib/cpu.js';
import { describeMachine, findPython, type Machine } from './lib/machine.js';
import { median, type RoleArgs, type RoleResult, type RunSpec, type Transport, type WorkloadId } from './lib/role.js';
import { OTHER_LOAD_FLAG, ratiosOf, renderReport, type BenchReport, type Cell, type RunRecord, type Row, type WorkloadResult } from './lib/report.js';
import { isTransportOf, sizeLabel, WORKLOADS, type ConfigSpec, type RunResults, type WorkloadSpec } from './lib/workloads.js';

const HERE = path.dirname(fileURLToPath(import.meta.url)); // dist/bench
const ROOT = path.resolve(HERE, '..', '..');

const USAGE = `Usage: npm run bench -- [options]

  --quick               short runs (3 per figure), the whole run in about a minute
  --only W1,W3          workloads to run (default all: W1..W6)
  --transport unix|tcp  one transport (default both)
  --systems a,b         only configs whose id starts with one of these
                        (mpconn, raw, cpython, ipc, raw-coalesced, mpconn-into, ...)
  --runs N              measured runs per figure (default 5, quick 3); the median is reported
  --seconds S           target length of each measured run (default 1, quick ~0.1)
  --out FILE            where to write the JSON (default: bench/results/latest.json for a
                        full run of everything, bench/results/last-run.json otherwise)
  --retry-busy N        measure a row again, up to N times, when other processes took more
                        than 10% of the CPU meanwhile; the least disturbed attempt is kept
                        (default 2, quick 0)
  --cpu-prof            run the mpconn processes under node --cpu-prof
                        (profiles in bench/results/profiles/)
  --python PATH         the CPython to compare with (default $(pyenv root)/versions/3.12.*/bin/python)
  --verbose             print every run as it finishes
`;

const { values: opts } = parseArgs({
  options: {
    quick: { type: 'boolean', default: false },
    only: { type: 'string' },
    transport: { type: 'string' },
    systems: { type: 'string' },
    runs: { type: 'string' },
    seconds: { type: 'string' },
    out: { type: 'string' },
    'cpu-prof': { type: 'boolean', default: false },
    python: { type: 'string' },
    verbose: { type: 'boolean', default: false },
    'retry-busy': { type: 'string' },
    help: { type: 'boolean', default: false },
  },
  strict: true,
});

if (opts.help) {
  process.stdout.write(USAGE);
  process.exit(0);
}

const quick = opts.quick!;
const runs = opts.runs !== undefined ? Number(opts.runs) : quick ? 3 : 5;
const secondsOverride = opts.seconds !== undefined ? Number(opts.seconds) : undefined;
const retryBusy = opts['retry-busy'] !== undefined ? Number(opts['retry-busy']) : quick ? 0 : 2;
const only = opts.only?.split(',').map((s) => s.trim().toUpperCase()).filter(Boolean);
const transports: Transport[] = opts.transport !== undefined ? [opts.transport as Transport] : ['unix', 'tcp'];
const systemFilter = opts.systems?.split(',').map((s) => s.trim()).filter(Boolean);
if (!Number.isInteger(runs) || runs < 1) usageError('--runs takes a positive integer');
if (!Number.isInteger(retryBusy) || retryBusy < 0) usageError('--retry-busy takes a count (0 or more)');
if (secondsOverride !== undefined && !(secondsOverride > 0)) usageError('--seconds takes a positive number');
if (transports.some((t) => t !== 'unix' && t !== 'tcp')) usageError('--transport is unix or tcp');
for (const w of only ?? []) if (!WORKLOADS.some((x) => x.id === w)) usageError(`unknown workload ${w}`);
const partial = only !== undefined || opts.transport !== undefined || systemFilter !== undefined || quick || opts.runs !== undefined || opts.seconds !== undefined;
const outFile = path.resolve(opts.out ?? path.join(ROOT, 'bench', 'results', partial ? 'last-run.json' : 'latest.json'));
const profileDir = path.join(ROOT, 'bench', 'results', 'profiles');
/** CPU time of this process and every process it starts, to tell our load from other processes'. */
const ledger = new CpuLedger();
const CORES = os.availableParallelism?.() ?? os.cpus().length;

function usageError(message: string): never {
  process.stderr.write(`bench: ${message}\n\n${USAGE}`);
  process.exit(2);
}

const log = (s: string): void => void process.stderr.write(s);

// ---------------------------------------------------------------------------
// Role processes

interface RoleEvent {
  event: string;
  [key: string]: unknown;
}

class RoleProcess {
  readonly child: ChildProcess;
  readonly label: string;
  readonly #events: RoleEvent[] = [];
  readonly #waiters: { resolve: (e: RoleEvent) => void; reject: (err: Error) => void }[] = [];
  #stderr = '';
  #exited: Error | null = null;
  readonly exited: Promise<void>;

  constructor(command: string, argv: string[], label: string) {
    this.label = label;
    this.child = spawn(command, argv, { cwd: ROOT, stdio: ['pipe', 'pipe', 'pipe'] });
    ledger.track(this.child.pid);
    this.child.stdin!.on('error', () => {});
    createInterface({ input: this.child.stdout! }).on('line', (line) => {
      let e: RoleEvent;
      try {
        e = JSON.parse(line) as RoleEvent;
      } catch {
        this.#tail(`stdout: ${line}\n`);
        return;
      }
      const w = this.#waiters.shift();
      if (w !== undefined) w.resolve(e);
      else this.#events.push(e);
    });
    this.child.stderr!.on('data', (d: Buffer) => this.#tail(d.toString()));
    this.exited = new Promise((resolve) => {
      this.child.on('exit', (code, signal) => {
        this.#exited = new Error(`${label} exited (${code ?? signal})${this.#stderr ? `: ${this.#stderr.trim().split('\n').slice(-6).join(' | ')}` : ''}`);
        for (const w of this.#waiters.splice(0)) w.reject(this.#exited);
        resolve();
      });
      this.child.on('error', (err) => {
        this.#exited = err;
        for (const w of this.#waiters.splice(0)) w.reject(err);
        resolve();
      });
    });
  }

  #tail(s: string): void {
    this.#stderr = (this.#stderr + s).slice(-4000);
  }

  send(obj: unknown): void {
    if (this.#exited === null) this.child.stdin!.write(JSON.stringify(obj) + '\n');
  }

  next(timeoutMs: number): Promise<RoleEvent> {
    const e = this.#events.shift();
    if (e !== undefined) return Promise.resolve(e);
    if (this.#exited !== null) return Promise.reject(this.#exited);
    return new Promise((resolve, reject) => {
      const waiter = {
        resolve: (ev: RoleEvent) => {
          clearTimeout(timer);
          resolve(ev);
        },
        reject: (err: Error) => {
          clearTimeout(timer);
          reject(err);
        },
      };
      const timer = setTimeout(() => {
        const i = this.#waiters.indexOf(waiter);
        if (i >= 0) this.#waiters.splice(i, 1);
        reject(new Error(`${this.label}: no answer within ${Math.round(timeoutMs / 1000)} s`));
      }, timeoutMs);
      this.#waiters.push(waiter);
    });
  }

  /** Processes this one started (Node's IPC child), counted in the CPU ledger with it. */
  readonly descendants: number[] = [];

  #releaseCpu(): void {
    ledger.release(this.child.pid);
    for (const pid of this.descendants) ledger.release(pid);
  }

  /** Asks the process to exit; kills it (this process, by its id) if it does not. */
  async stop(): Promise<void> {
    if (this.#exited !== null) return;
    this.#releaseCpu();
    this.send({ cmd: 'exit' });
    this.child.stdin!.end();
    const timer = setTimeout(() => this.kill(), 5000);
    await this.exited;
    clearTimeout(timer);
  }

  kill(): void {
    if (this.#exited !== null) return;
    this.#releaseCpu();
    this.child.kill('SIGKILL');
  }
}

interface Pair {
  server: RoleProcess;
  client: RoleProcess | null;
  /** Where the server listens, by transport. */
  addresses: RoleArgs['addresses'];
}

interface Context {
  python: string | null;
  tmp: string;
  seq: number;
}

function spawnRole(ctx: Context, args: RoleArgs, label: string): RoleProcess {
  const json = JSON.stringify(args);
  if (args.system === 'cpython') return new RoleProcess(ctx.python!, [path.join(ROOT, 'bench', 'python', 'role.py'), json], label);
  const nodeArgs: string[] = [];
  if (opts['cpu-prof'] && args.system === 'mpconn') {
    mkdirSync(profileDir, { recursive: true });
    const name = `${args.workload}-${args.variant}-${args.side}-${ctx.seq}.cpuprofile`;
    nodeArgs.push('--cpu-prof', `--cpu-prof-dir=${profileDir}`, `--cpu-prof-name=${name}`);
  }
  return new RoleProcess(process.execPath, [...nodeArgs, path.join(HERE, 'roles', `${args.system}.js`), json], label);
}

async function startPair(ctx: Context, w: WorkloadSpec, config: ConfigSpec, transports: Transport[]): Promise<Pair> {
  const seq = ctx.seq++;
  const base = { workload: w.id, system: config.system, variant: config.variant, transports };
  const listenAt: RoleArgs['addresses'] = transports.includes('unix') ? { unix: path.join(ctx.tmp, `${w.id}-${config.id}-${seq}.sock`) } : {};
  const label = `${w.id} ${config.id}`;
  // Both start at once: the client learns the address from each run's spec.
  const server = spawnRole(ctx, { ...base, side: 'server', addresses: listenAt }, `${label} server`);
  const client = config.system === 'ipc' ? null : spawnRole(ctx, { ...base, side: 'client', addresses: {} }, `${label} client`);
  try {
    const [ready, ok] = await Promise.all([server.next(30_000), client?.next(30_000)]);
    if (ready.event !== 'ready') throw new Error(`${label} server: ${String(ready.message ?? ready.event)}`);
    if (ok !== undefined && ok.event !== 'ready') throw new Error(`${label} client: ${String(ok.message ?? ok.event)}`);
    if (typeof ready.childPid === 'number') {
      server.descendants.push(ready.childPid);
      ledger.track(ready.childPid);
    }
    return { server, client, addresses: ready.addresses as RoleArgs['addresses'] };
  } catch (err) {
    server.kill();
    client?.kill();
    throw err;
  }
}

/** A process that failed to start is not a measurement: try once more (e.g. dist/ was being rebuilt under it). */
async function startPairRetrying(ctx: Context, w: WorkloadSpec, config: ConfigSpec, transports: Transport[]): Promise<Pair> {
  try {
    return await startPair(ctx, w, config, transports);
  } catch {
    await new Promise((r) => setTimeout(r, 1000));
    return startPair(ctx, w, config, transports);
  }
}

async function stopPair(pair: Pair): Promise<void> {
  await Promise.all([pair.client?.stop(), pair.server.stop()]);
}

function killPair(pair: Pair): Promise<void> {
  pair.client?.kill();
  pair.server.kill();
  return Promise.all([pair.client?.exited, pair.server.exited]).then(() => undefined);
}

async function runOnce(pair: Pair, spec: RunSpec, timeoutMs: number): Promise<RunResults> {
  pair.server.send({ cmd: 'run', spec });
  pair.client?.send({ cmd: 'run', spec: { ...spec, address: pair.addresses[spec.transport] ?? null } });
  const [s, c] = await Promise.all([pair.server.next(timeoutMs), pair.client?.next(timeoutMs) ?? Promise.resolve(null)]);
  for (const [side, e] of [['server', s], ['client', c]] as const) {
    if (e !== null && e.event !== 'result') throw new Error(`${side}: ${String(e.message ?? e.event)}`);
  }
  return { server: strip(s), client: c === null ? null : strip(c) };
}

function strip(e: RoleEvent): RoleResult {
  const { event: _event, ...rest } = e;
  return rest;
}

// ---------------------------------------------------------------------------
// Measuring

function warmupFor(plan: ReturnType<WorkloadSpec['plan']>, count: number): number {
  return Math.max(plan.minWarmup, Math.ceil(count * plan.warmupFraction));
}

function timeoutFor(w: WorkloadSpec, size: number, count: number, seconds: number): number {
  if (w.freshProcesses) return 30_000 + ((count + 1) * size) / 20e6 * 1000;
  return 30_000 + seconds * 20_000;
}

async function measure(
  ctx: Context,
  w: WorkloadSpec,
  config: ConfigSpec,
  transports: Transport[],
  pairs: Map<string, Pair | Error>,
  spec: RunSpec,
  timeoutMs: number,
): Promise<RunRecord> {
  const record: RunRecord = { run: spec.run, count: spec.count, warmup: spec.warmup, ok: false };
  let pair = pairs.get(config.id);
  const fresh = w.freshProcesses === true;
  try {
    if (fresh || pair === undefined || pair instanceof Error) {
      pair = await startPairRetrying(ctx, w, config, fresh ? [spec.transport] : transports);
      if (!fresh) {
        pairs.set(config.id, pair);
        // A pair restarted after a failure is cold: warm it up (untimed) like its calibration did.
        if (spec.run >= 0) await runOnce(pair, spec, timeoutMs);
      }
    }
    const r = await runOnce(pair, spec, timeoutMs);
    record.server = r.server;
    record.client = r.client;
    const wrong = w.verify(r, config, spec.size, spec.warmup + spec.count);
    if (wrong !== null) throw new Error(`verification failed: ${wrong}`);
    record.metrics = w.extract(r, spec.size);
    record.ok = Object.values(record.metrics).every((v) => Number.isFinite(v));
    if (!record.ok) record.error = `non-finite figure ${JSON.stringify(record.metrics)}`;
    if (fresh) await stopPair(pair);
  } catch (err) {
    record.error = err instanceof Error ? err.message : String(err);
    if (pair !== undefined && !(pair instanceof Error)) await killPair(pair);
    if (!fresh) pairs.delete(config.id);
  }
  return record;
}

function describeRun(w: WorkloadSpec, rec: RunRecord): string {
  if (!rec.ok) return `FAILED: ${rec.error}`;
  const m = rec.metrics!;
  const parts = w.metrics.map((x) => `${x.format(m[x.key]!)} ${x.label}`);
  const ms = (v: unknown): string => (typeof v === 'number' ? `${Math.round(v)}` : '-');
  const timedCpu = `${ms(rec.server?.cpuMs)}/${ms(rec.client?.cpuMs)}`;
  const runCpu = `${ms(rec.server?.runCpuMs)}/${ms(rec.client?.runCpuMs)}`;
  return `${parts.join(', ')}  (count ${rec.count}; CPU ms server/client: timed part ${timedCpu}, whole run ${runCpu})`;
}

async function runWorkload(ctx: Context, w: WorkloadSpec): Promise<Row[]> {
  const transportsOf = (c: ConfigSpec): Transport[] => transports.filter((t) => isTransportOf(c, t));
  const allConfigs = w.configs.filter((c) => transportsOf(c).length > 0 && selected(c) && (c.system !== 'cpython' || ctx.python !== null));
  // One pair of processes per config serves every transport (fewer process starts); W6 starts fresh ones per run.
  const pairs = new Map<string, Pair | Error>();
  const spawnStart = performance.now();
  if (!w.freshProcesses) {
    await Promise.all(
      allConfigs.map(async (c) => {
        try {
          pairs.set(c.id, await startPairRetrying(ctx, w, c, transportsOf(c)));
        } catch (err) {
          pairs.set(c.id, err instanceof Error ? err : new Error(String(err)));
        }
      }),
    );
  }
  if (!w.freshProcesses) log(`${w.id}: processes started in ${((performance.now() - spawnStart) / 1000).toFixed(1)} s\n`);
  const measureRow = async (size: number, transport: Transport, configs: ConfigSpec[]): Promise<Row> => {
    const plan = w.plan(quick, size);
    const target = secondsOverride ?? plan.targetSeconds;
    const row: Row = {
      transport,
      size,
      label: '',
      loadavg: os.loadavg(),
      seconds: 0,
      otherShare: null,
      stealShare: null,
      ownShare: null,
      cells: configs.map((c) => ({ config: c.id, label: c.label, system: c.system, variant: c.variant, count: null, runs: [], calibration: [], median: {}, spread: {} })),
    };
    const cellOf = (c: ConfigSpec): Cell => row.cells.find((x) => x.config === c.id)!;
    const groupStart = performance.now();
    const others = startInterval(ledger, CORES);
    log(`${w.id} ${transport}${w.sizes.length > 1 ? ` ${sizeLabel(size)}` : ''}: `);

    // Size each config's runs from calibration runs (which also warm it up): grow the
    // count until a run lasts a good part of the target, since a cold first run
    // (JIT, page faults) says little about the speed of the next ones.
    for (const c of configs) {
      const cell = cellOf(c);
      if (plan.calibrate === 0) {
        cell.count = plan.fixedCount;
        continue;
      }
      let count = plan.calibrate;
      for (let k = 0; ; k++) {
        const spec: RunSpec = { run: -1 - k, transport, count, warmup: warmupFor(plan, count), size, address: null };
        const rec = await measure(ctx, w, c, transportsOf(c), pairs, spec, 60_000);
        cell.calibration.push(rec);
        if (!rec.ok) {
          cell.error = `calibration: ${rec.error}`;
          log('x');
          break;
        }
        log('c');
        const { units, seconds } = w.timed({ server: rec.server!, client: rec.client ?? null });
        const perUnit = seconds / units;
        const wanted = Math.round(Math.min(plan.maxCount, Math.max(plan.minCount, target / perUnit)));
        // The first run only warms up; stop once a warm run lasted long enough to trust its speed.
        if ((k >= 1 && seconds >= target * 0.3) || k === 3 || count >= plan.maxCount) {
          cell.count = wanted;
          break;
        }
        count = Math.min(plan.maxCount, Math.max(Math.round(count * 1.5), Math.round((target * 0.5) / perUnit)));
      }
    }

    for (let r = 0; r < runs; r++) {
      // Rotate the order, so no system always runs first (or right after the same neighbour).
      const order = configs.map((_, i) => configs[(i + r) % configs.length]!);
      for (const c of order) {
        const cell = cellOf(c);
        if (cell.count === null) continue;
        const count = cell.count;
        const spec: RunSpec = { run: r, transport, count, warmup: warmupFor(plan, count), size, address: null };
        const rec = await measure(ctx, w, c, transportsOf(c), pairs, spec, timeoutFor(w, size, count, target));
        cell.runs.push(rec);
        if (rec.ok && plan.calibrate > 0) {
          // Still far too short (the calibration ran slow): lengthen the next runs.
          const { seconds } = w.timed({ server: rec.server!, client: rec.client ?? null });
          if (seconds < target * 0.4) cell.count = Math.round(Math.min(plan.maxCount, (count * target * 0.8) / seconds));
        }
        log(rec.ok ? '.' : 'x');
        if (opts.verbose) log(`\n  ${c.id} run ${r + 1}: ${describeRun(w, rec)}`);
      }
    }
    row.seconds = (performance.now() - groupStart) / 1000;
    Object.assign(row, others());
    const busy = row.otherShare !== null && row.otherShare > OTHER_LOAD_FLAG ? ` (other processes: ${(row.otherShare * 100).toFixed(0)}% of the CPU)` : '';
    log(` ${row.seconds.toFixed(1)} s${busy}\n`);

    for (const cell of row.cells) {
      const good = cell.runs.filter((x) => x.ok);
      if (good.length === 0) {
        cell.error ??= cell.runs.find((x) => !x.ok)?.error ?? 'no runs';
        continue;
      }
      for (const key of Object.keys(good[0]!.metrics!)) {
        const xs = good.map((x) => x.metrics![key]!);
        const m = median(xs);
        cell.median[key] = m;
        // With 5 or more runs, leave out the fastest and the slowest (as the median does).
        const kept = xs.length >= 5 ? [...xs].sort((a, b) => a - b).slice(1, -1) : xs;
        cell.spread[key] = m !== 0 ? (Math.max(...kept) - Math.min(...kept)) / Math.abs(m) : 0;
      }
      const failed = cell.runs.filter((x) => !x.ok);
      if (failed.length > 0) cell.error = `${failed.length} of ${cell.runs.length} runs failed: ${failed[0]!.error}`;
    }
    row.label = w.freshProcesses
      ? `${transport} ${sizeLabel(plan.fixedCount * size)}`
      : w.sizes.length > 1
        ? `${transport} ${sizeLabel(size)}`
        : transport;
    return row;
  };
  const rows: Row[] = [];
  try {
    for (const size of w.sizes) for (const transport of transports) {
      const configs = allConfigs.filter((c) => isTransportOf(c, transport));
      if (configs.length === 0) continue;
      // A row that other processes disturbed is measured again (--retry-busy), and the least disturbed attempt kept.
      const attempts: { otherShare: number | null; seconds: number }[] = [];
      let best: Row | null = null;
      for (let attempt = 0; attempt <= retryBusy; attempt++) {
        const row = await measureRow(size, transport, configs);
        attempts.push({ otherShare: row.otherShare, seconds: row.seconds });
        if (best === null || (row.otherShare ?? 0) < (best.otherShare ?? 0)) best = row;
        if (row.otherShare === null || row.otherShare <= OTHER_LOAD_FLAG || attempt === retryBusy) break;
        log(`  measuring ${w.id} ${row.label} again in 15 s\n`);
        await new Promise((r) => setTimeout(r, 15_000));
      }
      best!.attempts = attempts;
      rows.push(best!);
    }
  } finally {
    await Promise.all([...pairs.values()].map((p) => (p instanceof Error ? undefined : stopPair(p))));
  }
  return rows;
}

function selected(c: ConfigSpec): boolean {
  return systemFilter === undefined || systemFilter.some((f) => c.id === f || c.id.startsWith(`${f}-`) || c.system === f);
}

// ---------------------------------------------------------------------------

async function main(): Promise<void> {
  const python = findPython(opts.python);
  const machine: Machine = describeMachine(ROOT, python);
  const started = new Date();
  const load0 = os.loadavg();
  const notes: string[] = [];
  if (python === null) {
    const where = opts.python !== undefined ? `at ${opts.python}` : '($(pyenv root)/versions/3.12.*/bin/python)';
    notes.push(`CPython 3.12 not found ${where}: CPython columns skipped.`);
  }
  if (load0[0]! > machine.cores * 0.5) {
    // Only a hint at the start (the 1-minute average lags); what counts is the CPU share measured per row below.
    log(`note: load average ${load0[0]!.toFixed(1)} on ${machine.cores} cores at the start: other processes may disturb the figures (the table will say)\n`);
  }
  for (const n of notes) log(`note: ${n}\n`);
  log(`mpconn bench (${quick ? 'quick' : 'full'}, ${runs} runs per figure): ${machine.cpuModel}, ${machine.cores} cores, Node ${machine.node}, CPython ${machine.python ?? 'absent'}\n`);

  const ctx: Context = { python, tmp: mkdtempSync(path.join(os.tmpdir(), 'mpconn-bench-')), seq: 0 };
  const t0 = performance.now();
  const others = startInterval(ledger, CORES);
  const results: WorkloadResult[] = [];
  const cleanup = (): void => rmSync(ctx.tmp, { recursive: true, force: true });
  process.once('SIGINT', () => {
    cleanup();
    process.exit(130);
  });
  try {
    for (const w of WORKLOADS) {
      if (only !== undefined && !only.includes(w.id)) continue;
      const rows = await runWorkload(ctx, w);
      results.push({ id: w.id, title: w.title, rows, ratios: ratiosOf(w, rows), notes: w.notes ?? [] });
    }
  } finally {
    cleanup();
  }
  const wall = (performance.now() - t0) / 1000;
  const load1 = os.loadavg();
  const { otherShare, ownShare, stealShare } = others();
  const pct = (x: number): string => `${(x * 100).toFixed(0)}%`;
  const busyRows = results.flatMap((r) =>
    r.rows.filter((row) => row.otherShare !== null && row.otherShare > OTHER_LOAD_FLAG).map((row) => `${r.id} ${row.label} ${pct(row.otherShare!)}`),
  );
  if (otherShare !== null && otherShare > OTHER_LOAD_FLAG) {
    notes.push(`Other processes used ${pct(otherShare)} of the CPU during the run: absolute figures are noisy; ratios compare systems measured side by side, but noise widens them too.`);
  }
  if (busyRows.length > 0) {
    notes.push(`Other processes took more than ${pct(OTHER_LOAD_FLAG)} of the CPU while these were measured (marked * above): ${busyRows.join(', ')}. Rerun them before trusting them.`);
  }

  const json: BenchReport = {
    schema: 1,
    date: started.toISOString(),
    mode: quick ? 'quick' : 'full',
    options: { runs, retryBusy, only: only ?? null, transports, systems: systemFilter ?? null, seconds: secondsOverride ?? null, cpuProf: opts['cpu-prof'] },
    machine: { ...machine, loadavgStart: load0, loadavgEnd: load1, otherCpuShare: otherShare, ownCpuShare: ownShare, stealCpuShare: stealShare },
    wallSeconds: wall,
    notes,
    workloads: results,
  };
  mkdirSync(path.dirname(outFile), { recursive: true });
  writeFileSync(outFile, JSON.stringify(json, null, 2) + '\n');
  const failures: string[] = [];
  process.stdout.write(renderReport(json, failures));
  log(`results written to ${path.relative(process.cwd(), outFile)}\n`);
  if (failures.length > 0) process.exitCode = 1;
}

await main();
