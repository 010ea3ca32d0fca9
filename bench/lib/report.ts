/**
 * The benchmark's report: the JSON a run writes (bench/results/*.json) and the
 * text tables rendered from it. `bench/run.ts` prints them after a run;
 * `bench/readme.ts` puts the tables of bench/results/latest.json into the
 * README, so the README's figures are never typed by hand.
 */
import type { Machine } from './machine.js';
import type { Transport, WorkloadId, RoleResult } from './role.js';
import { sizeLabel, WORKLOADS, type WorkloadSpec } from './workloads.js';

/** A row whose other-process CPU share is above this is flagged (`*`). */
export const OTHER_LOAD_FLAG = 0.1;

export interface RunRecord {
  run: number;
  count: number;
  warmup: number;
  ok: boolean;
  error?: string;
  metrics?: Record<string, number>;
  server?: RoleResult;
  client?: RoleResult | null;
}

export interface Cell {
  config: string;
  label: string;
  system: string;
  variant: string;
  count: number | null;
  runs: RunRecord[];
  calibration: RunRecord[];
  median: Record<string, number>;
  /** (max - min) / median of each metric over the good runs (without the extremes when there are 5 or more). */
  spread: Record<string, number>;
  error?: string;
}

export interface Row {
  transport: Transport;
  size: number;
  label: string;
  loadavg: number[];
  /** Wall time this row took. */
  seconds: number;
  /** Share of the machine's CPU that processes other than the benchmark's used meanwhile (null without /proc). */
  otherShare: number | null;
  /** Share of the CPU the hypervisor stole meanwhile. */
  stealShare: number | null;
  /** Share of the CPU the benchmark's own processes used meanwhile. */
  ownShare: number | null;
  /** Every attempt at this row (see --retry-busy); the one kept is the least disturbed. */
  attempts?: { otherShare: number | null; seconds: number }[];
  cells: Cell[];
}

export interface WorkloadResult {
  id: WorkloadId;
  title: string;
  rows: Row[];
  ratios: { label: string; target?: string; values: { row: string; value: number | null; meetsTarget: boolean | null }[] }[];
  notes: string[];
}

/** What a run writes to its JSON file. */
export interface BenchReport {
  schema: 1;
  date: string;
  mode: 'quick' | 'full';
  options: { runs: number; retryBusy: number; only: string[] | null; transports: Transport[]; systems: string[] | null; seconds: number | null; cpuProf: boolean | undefined };
  machine: Machine & { loadavgStart: number[]; loadavgEnd: number[]; otherCpuShare: number | null; ownCpuShare: number | null; stealCpuShare: number | null };
  wallSeconds: number;
  notes: string[];
  workloads: WorkloadResult[];
}


interface Target {
  op: '≥' | '≤' | '<';
  value: number;
  onlySize: string | null;
}

function parseTarget(t: string | undefined): Target | null {
  const m = t === undefined ? null : /^(≥|≤|<)\s*([\d.]+)(?:\s*@\s*(\S+))?/.exec(t);
  if (m === null) return null;
  return { op: m[1] as Target['op'], value: Number(m[2]), onlySize: m[3] ?? null };
}

function meets(target: Target | null, v: number, size: number): boolean | null {
  if (target === null) return null;
  if (target.onlySize !== null && sizeLabel(size).replace(/\s/g, '') !== target.onlySize) return null;
  return target.op === '≥' ? v >= target.value : target.op === '≤' ? v <= target.value : v < target.value;
}

export function ratiosOf(w: WorkloadSpec, rows: Row[]): WorkloadResult['ratios'] {
  return w.ratios.map((spec) => ({
    label: spec.label,
    target: spec.target,
    values: rows.map((row) => {
      const get = (id: string, metric: string): number | undefined => row.cells.find((c) => c.config === id)?.median[metric];
      const v = spec.applies === undefined || spec.applies(row.size) ? spec.compute(get) : undefined;
      return { row: row.label, value: v ?? null, meetsTarget: v === undefined ? null : meets(parseTarget(spec.target), v, row.size) };
    }),
  }));
}

function pad(s: string, n: number, left = false): string {
  const len = [...s].length;
  return len >= n ? s : left ? s + ' '.repeat(n - len) : ' '.repeat(n - len) + s;
}

function renderTable(w: WorkloadSpec, result: WorkloadResult, failures: string[]): string {
  const rows = result.rows;
  const better = w.metrics.map((m) => `${m.label}`).join(', ');
  const direction = w.metrics[0]!.better === 'higher' ? 'higher is better' : 'lower is better';
  const lines: string[] = [`${w.id}  ${w.title} — ${better} (${direction})`];
  // Columns: for each row (transport/size) and each metric.
  const cols: { row: Row; metric: string; head1: string; head2: string }[] = [];
  for (const row of rows) {
    const busy = row.otherShare !== null && row.otherShare > OTHER_LOAD_FLAG ? '*' : '';
    for (const m of w.metrics) cols.push({ row, metric: m.key, head1: row.label + busy, head2: w.metrics.length > 1 ? m.label : '' });
  }
  const shown = w.configs.filter((c) => rows.some((r) => r.cells.some((x) => x.config === c.id)));
  // Sized by what this report holds, so a system or ratio added since does not reflow an older report's table.
  const labelWidth = Math.max(28, ...shown.map((c) => c.label.length + 2), ...result.ratios.map((r) => r.label.length + (r.target ? r.target.length + 3 : 0) + 2));
  const colWidth = Math.max(11, ...cols.map((c) => c.head1.length + 2));
  lines.push(pad('', labelWidth) + cols.map((c) => pad(c.head1, colWidth)).join(''));
  if (w.metrics.length > 1) lines.push(pad('', labelWidth) + cols.map((c) => pad(c.head2, colWidth)).join(''));
  for (const c of shown) {
    let line = pad(`  ${c.label}`, labelWidth, true);
    for (const col of cols) {
      const cell = col.row.cells.find((x) => x.config === c.id);
      let text = '—';
      if (cell !== undefined) {
        const v = cell.median[col.metric];
        if (v === undefined) text = 'FAIL';
        else {
          const m = w.metrics.find((x) => x.key === col.metric)!;
          text = m.format(v) + ((cell.spread[col.metric] ?? 0) > 0.2 ? '~' : '') + (cell.error !== undefined ? '!' : '');
        }
        if (cell.error !== undefined) failures.push(`${w.id} ${col.row.label} ${c.label}: ${cell.error}`);
      }
      line += pad(text, colWidth);
    }
    lines.push(line);
  }
  for (const ratio of result.ratios) {
    if (ratio.values.every((v) => v.value === null)) continue; // e.g. the other system was filtered out
    let line = pad(`  ${ratio.label}${ratio.target ? ` (${ratio.target})` : ''}`, labelWidth, true);
    const spec = w.ratios.find((r) => r.label === ratio.label);
    if (spec === undefined) throw new Error(`the report has a ratio "${ratio.label}" that ${w.id} in bench/lib/workloads.ts no longer defines`);
    for (const col of cols) {
      const isFirstMetric = col.metric === w.metrics[0]!.key;
      const v = ratio.values.find((x) => x.row === col.row.label);
      let text = '';
      if (isFirstMetric && v !== undefined) {
        text = v.value === null ? '—' : (spec.format ?? ((x: number) => x.toFixed(2)))(v.value);
        if (v.meetsTarget !== null) text += v.meetsTarget ? ' ✓' : ' ✗';
        else if (v.value !== null && ratio.target) text += '  ';
      }
      line += pad(text, colWidth);
    }
    lines.push(line);
  }
  return lines.join('\n');
}

const pct = (x: number): string => `${(x * 100).toFixed(0)}%`;

/** The report's heading and one table per workload, as `npm run bench` prints them (and the README shows them). */
export function renderTables(report: BenchReport, failures: string[] = []): string {
  const { machine } = report;
  const out: string[] = [
    `mpconn benchmark — ${report.mode} run, median of ${report.options.runs} runs per figure, ${report.date}`,
    `${machine.cpuModel}, ${machine.cores} cores, ${machine.memoryGiB} GiB, ${machine.os}; Node ${machine.node}; CPython ${machine.python ?? 'absent'}; mpconn ${machine.mpconnCommit ?? '?'}${machine.srcDirty.length > 0 ? ` + uncommitted changes in ${machine.srcDirty.length} src files` : ''}`,
    `load average ${machine.loadavgStart.map((x) => x.toFixed(2)).join(' ')} at start; other processes used ${machine.otherCpuShare === null ? '?' : pct(machine.otherCpuShare)} of the CPU during the run${machine.stealCpuShare !== null && machine.stealCpuShare > 0.01 ? `, the hypervisor stole ${pct(machine.stealCpuShare)}` : ''}; wall time ${report.wallSeconds.toFixed(1)} s`,
  ];
  for (const r of report.workloads) {
    const w = WORKLOADS.find((x) => x.id === r.id);
    if (w === undefined) throw new Error(`the report has a workload ${r.id} that bench/lib/workloads.ts no longer defines`);
    out.push('', renderTable(w, r, failures));
  }
  return out.join('\n');
}

/**
 * The whole text `npm run bench` prints: the tables, how to read them, notes
 * and failures (each failed cell is also pushed onto `failures`).
 */
export function renderReport(report: BenchReport, failures: string[] = []): string {
  const out = [renderTables(report, failures), ''];
  out.push(
    'Every figure was measured in this run: the median of its runs (all runs are in the JSON).',
    'Ratios are mpconn divided by the other system on the figure shown: for rates >1 means mpconn is faster;',
    'for times and MB <1 means mpconn is faster or smaller. In parentheses: the goal (not a measurement),',
    '✓ met, ✗ missed. "~": the runs spread by more than 20% (fastest and slowest left out when there are 5 or more);',
    '"!": some runs failed (listed below); "—": not applicable (Node IPC has no TCP form) or not run;',
    `"*" after a column heading: other processes took more than ${pct(OTHER_LOAD_FLAG)} of the CPU while it was measured.`,
  );
  for (const r of report.workloads) for (const n of r.notes) out.push(`${r.id}: ${n}`);
  for (const n of report.notes) out.push(`Note: ${n}`);
  if (failures.length > 0) out.push('', 'Failures:', ...failures.map((f) => `  ${f}`));
  return out.join('\n') + '\n';
}

const README_START = '<!-- bench:latest -->';
const README_END = '<!-- /bench:latest -->';

/** What goes between the README's markers: the tables in a text block. */
export function readmeBlock(report: BenchReport): string {
  const text = renderTables(report).split('\n').map((line) => line.trimEnd()).join('\n');
  return '```text\n' + text + '\n```';
}

/** The README's current block between its markers (without them). */
export function currentReadmeBlock(readme: string): string {
  const start = readme.indexOf(README_START);
  const end = readme.indexOf(README_END);
  if (start < 0 || end < start) throw new Error(`README.md has no ${README_START} … ${README_END} block`);
  return readme.slice(start + README_START.length, end).trim();
}

/** `readme` with the block between its markers replaced by `block`. */
export function replaceReadmeBlock(readme: string, block: string): string {
  currentReadmeBlock(readme); // the markers exist
  const start = readme.indexOf(README_START) + README_START.length;
  return readme.slice(0, start) + '\n' + block + '\n' + readme.slice(readme.indexOf(README_END));
}
