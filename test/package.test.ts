/**
 * The package as a user gets it: `npm pack`, installed (offline) into a fresh
 * CommonJS project and a fresh ESM project, each of which runs a real
 * Listener/Client round trip through the installed copy; both are
 * type-checked by TypeScript against the shipped `.d.ts`, and the `mpconn`
 * bin runs from `node_modules/.bin`.
 */
import { execFile } from 'node:child_process';
import { cpSync, existsSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join, relative, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';
import { expect } from 'chai';

const exec = promisify(execFile);
const root = fileURLToPath(new URL('../../', import.meta.url));
const pkg = JSON.parse(readFileSync(join(root, 'package.json'), 'utf8')) as { name: string; version: string };
const tsc = join(root, 'node_modules', 'typescript', 'bin', 'tsc');

/** What both consumers do with the installed package, in their module system's words. */
const roundTrip = `
  const listener = await Listener.listen(['127.0.0.1', 0], { authkey: 'package test' });
  const [client, server] = await Promise.all([Client(listener.address, { authkey: 'package test' }), listener.accept()]);
  await client.send({ from: KIND, big: 2n ** 63n });
  const got = await server.recv();
  const [a, b] = await Pipe(true, { serializer: 'pickle' });
  await a.send(new Tuple(1, 'two'));
  const tuple = await b.recv();
  let eof = '';
  await client.close();
  try { await server.recv(); } catch (err) { eof = err instanceof EOFError ? err.code : String(err); }
  await Promise.all([server.close(), listener.close(), a.close(), b.close()]);
  console.log(JSON.stringify({ from: got.from, big: String(got.big), tuple, eof }));
`;

const CJS = `'use strict';
const { Client, EOFError, Listener, Pipe, Tuple } = require('mpconn');
const KIND = 'commonjs';
(async () => {${roundTrip}})().catch((err) => { console.error(err); process.exitCode = 1; });
`;

const ESM = `import { Client, EOFError, Listener, Pipe, Tuple } from 'mpconn';
const KIND = 'esm';
${roundTrip}`;

/** TypeScript that must type-check against the shipped declarations, in either module system. */
const TYPED = `import { Client, type Connection, Listener, spawn, wait, type Waitable } from 'mpconn';
export async function typed(): Promise<number> {
  const listener: Listener = await Listener.listen(['127.0.0.1', 0]);
  const conn: Connection = await Client(listener.address, { timeout: 1000 });
  const ready: Connection[] = await wait([conn], 0);
  const any: Waitable[] = await wait([conn, listener]);
  const { process: child } = spawn({ command: 'python3', args: ['worker.py'] });
  child.kill();
  // @ts-expect-error a misspelled option is a type error
  await Client(listener.address, { authKey: 'x' });
  return ready.length + any.length;
}
`;

interface Consumer {
  dir: string;
}

async function makeConsumer(base: string, kind: 'commonjs' | 'module', tarball: string): Promise<Consumer> {
  const dir = join(base, kind);
  mkdirSync(join(dir, 'node_modules'), { recursive: true });
  writeFileSync(join(dir, 'package.json'), JSON.stringify({ name: `consumer-${kind}`, version: '1.0.0', private: true, type: kind }));
  // The one runtime dependency comes from this checkout: npm's offline mode has its tarball
  // (after `npm ci`) but not the registry metadata it would need to resolve `^3` anew.
  cpSync(join(root, 'node_modules', '@msgpack'), join(dir, 'node_modules', '@msgpack'), { recursive: true });
  await exec('npm', ['install', '--offline', '--no-audit', '--no-fund', '--no-package-lock', tarball], { cwd: dir, timeout: 60_000 });
  return { dir };
}

function filesUnder(dir: string): string[] {
  return readdirSync(dir, { withFileTypes: true }).flatMap((e) =>
    e.isDirectory() ? filesUnder(join(dir, e.name)) : [join(dir, e.name)],
  );
}

describe('the packed package, installed into fresh projects', function () {
  this.timeout(120_000);
  let base: string;
  let tarball: string;
  let cjs: Consumer;
  let esm: Consumer;

  before(async () => {
    base = mkdtempSync(join(tmpdir(), 'mpconn-package-'));
    // --ignore-scripts: npm test has just built dist/ (prepack would build the library again, the same files).
    const { stdout } = await exec('npm', ['pack', '--ignore-scripts', '--json', '--pack-destination', base], { cwd: root, timeout: 60_000 });
    const [{ filename }] = JSON.parse(stdout) as { filename: string }[];
    tarball = join(base, filename);
    [cjs, esm] = await Promise.all([makeConsumer(base, 'commonjs', tarball), makeConsumer(base, 'module', tarball)]);
  });
  after(() => rmSync(base, { recursive: true, force: true }));

  const installed = (c: Consumer): string => join(c.dir, 'node_modules', 'mpconn');

  it("require('mpconn') works in a CommonJS project (Node's require(esm))", async () => {
    writeFileSync(join(cjs.dir, 'index.js'), CJS);
    const { stdout } = await exec(process.execPath, ['index.js'], { cwd: cjs.dir, timeout: 30_000 });
    expect(JSON.parse(stdout)).to.deep.equal({ from: 'commonjs', big: String(2n ** 63n), tuple: [1, 'two'], eof: 'ERR_EOF' });
  });

  it("import from 'mpconn' works in an ESM project", async () => {
    writeFileSync(join(esm.dir, 'index.js'), ESM);
    const { stdout } = await exec(process.execPath, ['index.js'], { cwd: esm.dir, timeout: 30_000 });
    expect(JSON.parse(stdout)).to.deep.equal({ from: 'esm', big: String(2n ** 63n), tuple: [1, 'two'], eof: 'ERR_EOF' });
  });

  it('type-checks TypeScript against the shipped .d.ts, as an ES module (.mts) and as CommonJS (.cts)', async () => {
    // One tsc run for both: a .mts file is an ES module and a .cts file CommonJS whatever the package type.
    const files = ['typed.mts', 'typed.cts'];
    for (const file of files) writeFileSync(join(cjs.dir, file), TYPED);
    writeFileSync(
      join(cjs.dir, 'tsconfig.json'),
      JSON.stringify({
        compilerOptions: {
          module: 'nodenext',
          moduleResolution: 'nodenext',
          target: 'es2022',
          strict: true,
          noEmit: true,
          skipLibCheck: true, // as most projects do; it keeps this test fast
          // The consumer has no @types/node of its own: use this checkout's.
          typeRoots: [join(root, 'node_modules', '@types')],
          types: ['node'],
        },
        files,
      }),
    );
    const result = await exec(process.execPath, [tsc, '-p', 'tsconfig.json'], { cwd: cjs.dir, timeout: 60_000 }).then(
      () => ({ code: 0, stdout: '' }),
      (err: { code: number; stdout: string }) => err,
    );
    expect(result.stdout).to.equal('');
    expect(result.code).to.equal(0);
  });

  it('runs the mpconn bin from node_modules/.bin', async () => {
    const { stdout } = await exec(join(esm.dir, 'node_modules', '.bin', 'mpconn'), ['--version'], { timeout: 30_000 });
    expect(stdout.trim()).to.equal(pkg.version);
    const usage = await exec(join(esm.dir, 'node_modules', '.bin', 'mpconn'), ['send', '127.0.0.1', '1']).catch((e: { code: number; stderr: string }) => e);
    expect(usage).to.include({ code: 2 });
  });

  it('ships LICENSE, CHANGELOG, README, the library and its sources, and no tests', () => {
    const dir = installed(esm);
    for (const file of ['LICENSE', 'CHANGELOG.md', 'README.md', 'dist/src/index.js', 'dist/src/index.d.ts', 'src/index.ts']) {
      expect(existsSync(join(dir, file)), file).to.equal(true);
    }
    expect(existsSync(join(dir, 'dist', 'test'))).to.equal(false);
    expect(existsSync(join(dir, 'test'))).to.equal(false);
  });

  it('has source maps that resolve: sources inlined, declaration maps pointing at shipped files; no mocha in the .d.ts', () => {
    const dir = installed(esm);
    const files = filesUnder(join(dir, 'dist', 'src'));
    const maps = files.filter((f) => f.endsWith('.js.map'));
    const declarationMaps = files.filter((f) => f.endsWith('.d.ts.map'));
    expect(maps.length).to.be.greaterThan(10);
    expect(declarationMaps.length).to.equal(maps.length);
    for (const map of [...maps, ...declarationMaps]) {
      const { sources, sourcesContent } = JSON.parse(readFileSync(map, 'utf8')) as { sources: string[]; sourcesContent?: string[] };
      for (const source of sources) {
        const path = resolve(dirname(map), source);
        expect(existsSync(path), `${relative(dir, map)} -> ${source}`).to.equal(true);
        // Inlined, so a stack trace or debugger shows the TypeScript even where src/ is not at hand.
        if (map.endsWith('.js.map')) expect(sourcesContent?.[0], relative(dir, map)).to.be.a('string').that.is.not.empty;
      }
    }
    for (const dts of files.filter((f) => f.endsWith('.d.ts'))) {
      expect(readFileSync(dts, 'utf8'), relative(dir, dts)).not.to.match(/types="mocha"|from '(mocha|chai)'|\bMocha\./);
    }
  });
});
