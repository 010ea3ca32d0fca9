/**
 * The README's error table is the user's list of error codes: it must name
 * every code mpconn raises and no code it does not. The codes are collected
 * from the sources (every `'ERR_…'` literal outside the CLI, whose JSON lines
 * have their own section), so a new code without a README row fails here.
 */
import { readdirSync, readFileSync, statSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { expect } from 'chai';

const root = fileURLToPath(new URL('../../', import.meta.url));

function sourceFiles(dir: string): string[] {
  const files: string[] = [];
  for (const name of readdirSync(dir)) {
    const path = join(dir, name);
    if (statSync(path).isDirectory()) {
      if (name !== 'cli') files.push(...sourceFiles(path));
    } else if (name.endsWith('.ts')) {
      files.push(path);
    }
  }
  return files;
}

function codesIn(text: string): Set<string> {
  return new Set([...text.matchAll(/'(ERR_[A-Z0-9_]+)'/g)].map((m) => m[1]!));
}

function readmeErrorTable(): { section: string; codes: Set<string> } {
  const readme = readFileSync(join(root, 'README.md'), 'utf8');
  const start = readme.indexOf('\n## Errors');
  expect(start, 'README has an "## Errors" section').to.be.greaterThan(0);
  const end = readme.indexOf('\n## ', start + 1);
  const section = readme.slice(start, end < 0 ? undefined : end);
  const rows = section.split('\n').filter((line) => line.startsWith('|'));
  return { section, codes: new Set(rows.flatMap((row) => [...row.matchAll(/`(ERR_[A-Z0-9_]+)`/g)].map((m) => m[1]!))) };
}

describe('error codes', () => {
  it('the README error table lists every code the library raises, and only those', () => {
    const raised = new Set<string>();
    for (const file of sourceFiles(join(root, 'src'))) for (const code of codesIn(readFileSync(file, 'utf8'))) raised.add(code);
    expect(raised.size, 'codes found in src/').to.be.greaterThan(10);
    const { codes: documented } = readmeErrorTable();
    expect([...raised].filter((c) => !documented.has(c)).sort(), 'raised but missing from the README table').to.deep.equal([]);
    expect([...documented].filter((c) => !raised.has(c)).sort(), 'in the README table but never raised').to.deep.equal([]);
  });

  it('the error module\'s own table lists every code of its classes', () => {
    const errors = readFileSync(join(root, 'src', 'core', 'errors.ts'), 'utf8');
    expect(errors.indexOf('@module'), 'errors.ts opens with its module table').to.be.greaterThan(0);
    const header = errors.slice(0, errors.indexOf('@module'));
    const tabled = new Set([...header.matchAll(/`(ERR_[A-Z0-9_]+)`/g)].map((m) => m[1]!));
    const body = errors.slice(errors.indexOf('@module'));
    const declared = codesIn(body);
    expect(declared.size, 'codes declared in errors.ts').to.be.greaterThan(5);
    expect([...declared].filter((c) => !tabled.has(c)).sort(), 'declared in errors.ts but not in its table').to.deep.equal([]);
  });
});
