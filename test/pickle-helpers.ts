/**
 * Shared by the pickle test files: running a CPython script to completion,
 * building pickles byte by byte, and the JS value a given JS value decodes
 * back to after a round trip.
 */
import { expect } from 'chai';
import { PyComplex, PyGlobal, PyObject } from '../src/index.js';
import { runPython, type Python } from './helpers/python.js';

/** Runs `code` to the end; returns its stdout lines, failing the test on a non-zero exit. */
export async function pythonLines(py: Python, code: string, args: string[] = [], env: NodeJS.ProcessEnv = {}): Promise<string[]> {
  const proc = runPython(py, code, args, env);
  const { code: exit, stdout, stderr } = await proc.exit();
  expect(exit, `python ${py.version} failed:\n${stderr}`).to.equal(0);
  return stdout.split('\n').filter((line) => line !== '');
}

/** Bytes from opcodes and arguments: numbers are bytes, strings are Latin-1, arrays are spliced. */
export function pickleBytes(...parts: (number | string | Uint8Array | number[])[]): Uint8Array {
  const out: number[] = [];
  for (const part of parts) {
    if (typeof part === 'number') out.push(part);
    else if (typeof part === 'string') for (let i = 0; i < part.length; i++) out.push(part.charCodeAt(i) & 0xff);
    else for (let i = 0; i < part.length; i++) out.push(part[i]!);
  }
  return Uint8Array.from(out);
}

export const u32le = (n: number): number[] => [n & 0xff, (n >>> 8) & 0xff, (n >>> 16) & 0xff, (n >>> 24) & 0xff];
export const u64le = (n: number): number[] => [...u32le(n % 2 ** 32), ...u32le(Math.floor(n / 2 ** 32))];

export const fromHex = (hex: string): Uint8Array => Uint8Array.from(Buffer.from(hex, 'hex'));
export const toHex = (bytes: Uint8Array): string => Buffer.from(bytes).toString('hex');

const MAX_SAFE = BigInt(Number.MAX_SAFE_INTEGER);

/**
 * What `loads(dumps(v))` gives for `v`: tuples become arrays, safe bigints
 * numbers, Maps with only string keys plain objects, other views
 * Uint8Arrays, undefined null.
 */
export function decodedForm(v: unknown): unknown {
  if (v === undefined || v === null) return null;
  if (typeof v === 'bigint') return v >= -MAX_SAFE && v <= MAX_SAFE ? Number(v) : v;
  // an integral number is sent as an int, and an int outside the safe range comes back as a bigint
  if (typeof v === 'number' && Number.isInteger(v) && !Number.isSafeInteger(v)) return BigInt(v);
  if (typeof v !== 'object') return v;
  if (v instanceof Uint8Array) return Uint8Array.from(v);
  if (ArrayBuffer.isView(v)) return Uint8Array.from(new Uint8Array(v.buffer, v.byteOffset, v.byteLength));
  if (Array.isArray(v)) return Array.from(v, decodedForm);
  if (v instanceof Set) return new Set([...v].map(decodedForm));
  if (v instanceof Map) {
    const entries = [...v].map(([k, x]) => [decodedForm(k), decodedForm(x)] as const);
    if (entries.every(([k]) => typeof k === 'string')) {
      const o: Record<string, unknown> = {};
      for (const [k, x] of entries) Object.defineProperty(o, k as string, { value: x, enumerable: true, writable: true, configurable: true });
      return o;
    }
    return new Map(entries);
  }
  if (v instanceof PyGlobal || v instanceof PyComplex || v instanceof PyObject) return v;
  const o: Record<string, unknown> = {};
  for (const [k, x] of Object.entries(v)) Object.defineProperty(o, k, { value: decodedForm(x), enumerable: true, writable: true, configurable: true });
  return o;
}


