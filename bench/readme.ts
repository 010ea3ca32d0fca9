/**
 * Puts the tables of a benchmark report into README.md, between the
 * `<!-- bench:latest -->` and `<!-- /bench:latest -->` markers, so the
 * README's figures are the JSON's and never typed by hand.
 *
 *   npm run bench:readme [-- bench/results/latest.json]
 *
 * `test/bench-report.test.ts` fails when the README and latest.json disagree.
 */
import { readFileSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { readmeBlock, replaceReadmeBlock, type BenchReport } from './lib/report.js';

const ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..', '..');
const source = path.resolve(process.argv[2] ?? path.join(ROOT, 'bench', 'results', 'latest.json'));
const report = JSON.parse(readFileSync(source, 'utf8')) as BenchReport;
if (report.mode !== 'full') {
  process.stderr.write(`${path.relative(process.cwd(), source)} is a ${report.mode} run: only a full run goes into the README\n`);
  process.exit(1);
}
const readmePath = path.join(ROOT, 'README.md');
writeFileSync(readmePath, replaceReadmeBlock(readFileSync(readmePath, 'utf8'), readmeBlock(report)));
process.stderr.write(`README.md: the performance tables are now those of ${report.date}\n`);
