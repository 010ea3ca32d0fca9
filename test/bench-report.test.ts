/**
 * The README's performance tables are rendered from bench/results/latest.json
 * (`npm run bench:readme`), never typed by hand: this fails when the two
 * disagree, e.g. after a new full run whose tables were not put in.
 */
import { expect } from 'chai';
import { readFileSync } from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { currentReadmeBlock, readmeBlock, replaceReadmeBlock, type BenchReport } from '../bench/lib/report.js';

const ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..', '..');

describe('the README performance tables', () => {
  const readme = readFileSync(path.join(ROOT, 'README.md'), 'utf8');
  const report = JSON.parse(readFileSync(path.join(ROOT, 'bench', 'results', 'latest.json'), 'utf8')) as BenchReport;

  it('come from a full run', () => {
    expect(report.mode).to.equal('full');
    expect(report.workloads.map((w) => w.id)).to.include.members(['W1', 'W2', 'W3', 'W4', 'W5', 'W6']);
  });

  it('are exactly the tables rendered from bench/results/latest.json', () => {
    const block = currentReadmeBlock(readme);
    expect(block).to.include(report.date);
    expect(block).to.equal(readmeBlock(report));
  });

  it('change when the report changes (the check is not vacuous)', () => {
    const altered: BenchReport = structuredClone(report);
    const cell = altered.workloads[0]!.rows[0]!.cells[0]!;
    const metric = Object.keys(cell.median)[0]!;
    cell.median[metric] = cell.median[metric]! * 3 + 1;
    expect(readmeBlock(altered)).to.not.equal(readmeBlock(report));
    const rewritten = replaceReadmeBlock(readme, readmeBlock(altered));
    expect(currentReadmeBlock(rewritten)).to.equal(readmeBlock(altered));
    expect(rewritten.slice(0, 200)).to.equal(readme.slice(0, 200));
  });
});
