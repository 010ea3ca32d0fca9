/**
 * The public types, checked by the compiler: `tsc --noEmit` on
 * test/fixtures/types/api.ts, which imports the built package by its name.
 * Its `// @ts-expect-error` lines are the misuses that must not compile (an
 * unused directive is itself an error, so each one is checked both ways).
 */
import { execFile } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';
import { expect } from 'chai';

const exec = promisify(execFile);
const root = fileURLToPath(new URL('../../', import.meta.url));
const fixtures = `${root}test/fixtures/types/`;
const tsc = `${root}node_modules/typescript/bin/tsc`;

describe('public types (tsc on test/fixtures/types)', function () {
  this.timeout(120_000);

  it('compiles the fixture: wait() keeps the item type, both spawn() forms, typed Listener events, null timeouts, recv({ parse }), misuses are errors', async () => {
    const source = readFileSync(`${fixtures}api.ts`, 'utf8');
    expect(source.match(/\/\/ @ts-expect-error/g)).to.have.length.of.at.least(18);
    const result = await exec(process.execPath, [tsc, '-p', `${fixtures}tsconfig.json`], { cwd: root }).then(
      () => ({ code: 0, stdout: '' }),
      (err: { code: number; stdout: string }) => err,
    );
    expect(result.stdout).to.equal('');
    expect(result.code).to.equal(0);
  });

  it('reports a misuse the fixture does not expect (the check can fail)', async () => {
    // The same compiler on a line that is an error without its directive: a TS2322 naming the types.
    const result = await exec(
      process.execPath,
      [tsc, '--noEmit', '--strict', '--module', 'nodenext', '--moduleResolution', 'nodenext', '--skipLibCheck', '--types', 'node', `${fixtures}misuse.ts`],
      { cwd: root },
    ).then(
      () => ({ code: 0, stdout: '' }),
      (err: { code: number; stdout: string }) => err,
    );
    expect(result.code).to.equal(2);
    expect(result.stdout).to.match(/misuse\.ts\(\d+,\d+\): error TS2322: Type 'Connection\[\]' is not assignable to type 'Listener\[\]'/);
  });
});
