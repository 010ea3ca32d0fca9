/**
 * Python's `repr()` of plain data, for what the served objects answer to
 * `__repr__` and `__str__` (a dict proxy's `str()` is the server's
 * `repr(dict)`): `{'a': 1}`, `[1, 2.0]`, `(1,)`, `b'\x00'`, `None`.
 * Cycles print as Python prints them (`[[...]]`); nesting is bounded.
 */
import { PyComplex, PyFloat, PyGlobal, PyObject, Tuple } from '../../serializers/index.js';
import { formatPyFloat } from '../../serializers/pickle/index.js';
import { objectAddress } from './address.js';
import { isRecordOf } from './values.js';

/** Past this depth a value prints as `...` (CPython would raise RecursionError). */
const MAX_DEPTH = 200;

/** Non-printable characters in Python's sense (`str.isprintable`), which `repr` escapes. */
const NON_PRINTABLE = /[\p{Cc}\p{Cf}\p{Cs}\p{Co}\p{Cn}\p{Zl}\p{Zp}\p{Zs}]/u;

/** Python's repr of a str. */
export function reprStr(s: string): string {
  const quote = s.includes("'") && !s.includes('"') ? '"' : "'";
  let out = quote;
  for (const ch of s) {
    const cp = ch.codePointAt(0)!;
    if (ch === quote || ch === '\\') out += `\\${ch}`;
    else if (ch === '\n') out += '\\n';
    else if (ch === '\r') out += '\\r';
    else if (ch === '\t') out += '\\t';
    else if (ch !== ' ' && NON_PRINTABLE.test(ch)) {
      out += cp <= 0xff ? `\\x${hex(cp, 2)}` : cp <= 0xffff ? `\\u${hex(cp, 4)}` : `\\U${hex(cp, 8)}`;
    } else out += ch;
  }
  return out + quote;
}

/** Python's repr of bytes. */
export function reprBytes(bytes: Uint8Array): string {
  let hasSingle = false;
  let hasDouble = false;
  for (const b of bytes) {
    if (b === 0x27) hasSingle = true;
    else if (b === 0x22) hasDouble = true;
  }
  const quote = hasSingle && !hasDouble ? 0x22 : 0x27;
  let out = `b${String.fromCharCode(quote)}`;
  for (const b of bytes) {
    if (b === quote || b === 0x5c) out += `\\${String.fromCharCode(b)}`;
    else if (b === 0x09) out += '\\t';
    else if (b === 0x0a) out += '\\n';
    else if (b === 0x0d) out += '\\r';
    else if (b < 0x20 || b >= 0x7f) out += `\\x${hex(b, 2)}`;
    else out += String.fromCharCode(b);
  }
  return out + String.fromCharCode(quote);
}

function hex(n: number, width: number): string {
  return n.toString(16).padStart(width, '0');
}

/** A complex part as Python prints it: like a float, but `1` rather than `1.0`. */
function complexPart(x: number): string {
  const text = formatPyFloat(x);
  return text.endsWith('.0') ? text.slice(0, -2) : text;
}

function reprComplex(c: PyComplex): string {
  if (c.real === 0 && !Object.is(c.real, -0)) return `${complexPart(c.imag)}j`;
  const imag = complexPart(c.imag);
  const sign = imag.startsWith('-') || imag === 'nan' ? '' : '+';
  return `(${complexPart(c.real)}${sign}${imag}j)`;
}

/** Python's `repr(v)` for the values a served object holds. */
export function pyRepr(v: unknown): string {
  return repr(v, 0, new Set());
}

function repr(v: unknown, depth: number, active: Set<object>): string {
  switch (typeof v) {
    case 'undefined':
      return 'None';
    case 'boolean':
      return v ? 'True' : 'False';
    case 'number':
      return Number.isInteger(v) && !Object.is(v, -0) ? String(v) : formatPyFloat(v);
    case 'bigint':
      return v.toString();
    case 'string':
      return reprStr(v);
    case 'object':
      break;
    default:
      return `<${typeof v}>`;
  }
  if (v === null) return 'None';
  if (v instanceof PyFloat) return formatPyFloat(v.value);
  if (v instanceof Uint8Array) return reprBytes(v);
  if (v instanceof PyComplex) return reprComplex(v);
  if (v instanceof PyGlobal) return `<class '${v.module}.${v.name}'>`;
  if (depth >= MAX_DEPTH) return '...';
  if (active.has(v)) {
    if (v instanceof Map || v instanceof Set || isPlainObject(v)) return '{...}';
    return Array.isArray(v) ? '[...]' : '...';
  }
  active.add(v);
  try {
    return container(v, depth + 1, active);
  } finally {
    active.delete(v);
  }
}

function isPlainObject(v: object): boolean {
  const proto = Object.getPrototypeOf(v) as unknown;
  return proto === Object.prototype || proto === null;
}

function container(v: object, depth: number, active: Set<object>): string {
  const r = (x: unknown): string => repr(x, depth, active);
  const items = (list: readonly unknown[]): string => list.map(r).join(', ');
  const pairs = (entries: Iterable<[unknown, unknown]>): string =>
    Array.from(entries, ([k, value]) => `${r(k)}: ${r(value)}`).join(', ');
  if (v instanceof Tuple) return v.length === 1 ? `(${r(v[0])},)` : `(${items(v)})`;
  if (Array.isArray(v)) return `[${items(v)}]`;
  if (v instanceof Map) return `{${pairs(v.entries())}}`;
  if (v instanceof Set) return v.size === 0 ? 'set()' : `{${items([...v])}}`;
  if (isPlainObject(v)) return `{${pairs(Object.entries(v as Record<string, unknown>))}}`;
  if (v instanceof PyObject) {
    if (isRecordOf(v, 'builtins', 'frozenset')) {
      const list = Array.isArray(v.args[0]) ? v.args[0] : [];
      return list.length === 0 ? 'frozenset()' : `frozenset({${items(list)}})`;
    }
    if (isRecordOf(v, 'builtins', 'bytearray') && v.args[0] instanceof Uint8Array) {
      return `bytearray(${reprBytes(v.args[0])})`;
    }
    if (isRecordOf(v, 'collections', 'OrderedDict') && v.args.length === 0) {
      const entries = v.dictItems instanceof Map ? [...v.dictItems] : Object.entries(v.dictItems ?? {});
      return entries.length === 0 ? 'OrderedDict()' : `OrderedDict({${pairs(entries)}})`;
    }
    if (isRecordOf(v, 'builtins', 'slice') || isRecordOf(v, 'builtins', 'range')) {
      return `${(v.callable as PyGlobal).name}(${items(v.args)})`;
    }
    if (isRecordOf(v, 'array', 'array') && typeof v.args[0] === 'string' && Array.isArray(v.args[1])) {
      const [typecode, list] = v.args as [string, unknown[]];
      if (list.length === 0) return `array('${typecode}')`;
      return typecode === 'u' || typecode === 'w' ? `array('${typecode}', ${reprStr(list.join(''))})` : `array('${typecode}', ${r(list)})`;
    }
    const proxy = proxyRepr(v);
    if (proxy !== null) return proxy;
    const cls = v.callable instanceof PyGlobal ? `${v.callable.module}.${v.callable.name}` : r(v.callable);
    const state = v.state === undefined ? '' : `${v.args.length > 0 ? ', ' : ''}**${r(v.state)}`;
    return `${cls}(${items(v.args)}${state})`;
  }
  const own = (v as { __repr__?: unknown }).__repr__;
  if (typeof own === 'function') return String((own as () => unknown).call(v));
  return `<${v.constructor?.name ?? 'object'} object>`;
}

/**
 * A proxy stored in a value (`RebuildProxy(func, token, serializer, kwds)`)
 * prints as the proxy would in Python (`BaseProxy.__repr__`), e.g.
 * `<ListProxy object, typeid 'list' at 0x7f…>`; `null` for other records.
 */
function proxyRepr(v: PyObject): string | null {
  if (!isRecordOf(v, 'multiprocessing.managers', 'RebuildProxy') || v.args.length < 2) return null;
  const [func, token] = v.args;
  if (!(func instanceof PyGlobal) || !(token instanceof PyObject) || !Array.isArray(token.state)) return null;
  const typeid = token.state[0];
  if (typeof typeid !== 'string') return null;
  const name = func.name === 'AutoProxy' ? `AutoProxy[${typeid}]` : func.name;
  return `<${name} object, typeid ${reprStr(typeid)} at ${objectAddress(v)}>`;
}
