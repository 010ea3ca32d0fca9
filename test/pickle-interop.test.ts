/**
 * The pickle serializer against real CPython peers (README, "Serializers"): a Python
 * `multiprocessing.connection.Client` sends a corpus with `conn.send(v)` and
 * with `conn.send_bytes(pickle.dumps(v, protocol=p))` for every protocol it
 * has, to an mpconn `Listener` with `serializer: 'pickle'`, which must decode
 * the expected JS values; then mpconn sends a corpus of JS values that Python
 * reads with `conn.recv()` and compares with `==` (and exact types), printing a
 * verdict per value.
 *
 * In full for CPython 3.11-3.13; `conn.send` only (protocol 3 on 3.6 and 3.7,
 * 4 later) for the older ones.
 */
import { expect } from 'chai';
import { Listener, PyGlobal, PyObject, Tuple, type Connection } from 'mpconn';
import { PyComplex } from '../src/index.js';
import { forEachPython, runPython, type Python } from './helpers/python.js';

/** [Python expression, the JS value `recv()` must give]. */
const FROM_PYTHON: [string, unknown][] = [
  ['None', null],
  ['[True, False]', [true, false]],
  ['[0, -1, 255, 2**31, 2**53 - 1, -(2**53 - 1)]', [0, -1, 255, 2 ** 31, Number.MAX_SAFE_INTEGER, -Number.MAX_SAFE_INTEGER]],
  ['[2**53, -2**64, 10**30]', [2n ** 53n, -(2n ** 64n), 10n ** 30n]],
  ["[1.5, -0.0, 1e-300, float('inf'), float('-inf'), float('nan')]", [1.5, -0, 1e-300, Infinity, -Infinity, NaN]],
  ["['', 'h\\xe9llo \\u2713', '\\U0001f600 astral', 'lone \\ud800 surrogate', 'nul\\x00byte', '\\ufeffbom', 'back\\\\slash\\nnewline']",
    ['', 'héllo ✓', '\u{1f600} astral', 'lone \ud800 surrogate', 'nul\x00byte', '\ufeffbom', 'back\\slash\nnewline']],
  ["[b'', b'\\x00\\x01\\xff', bytearray(b'ba'), bytearray()]", [new Uint8Array(0), Uint8Array.of(0, 1, 255), Uint8Array.of(98, 97), new Uint8Array(0)]],
  ["[1, [2, [3]], (1, 'two', (3.5,)), ()]", [1, [2, [3]], [1, 'two', [3.5]], []]],
  ["{'a': 1, 'nested': {'b': [None]}, '__proto__': 'own'}", Object.defineProperty({ a: 1, nested: { b: [null] } }, '__proto__', { value: 'own', enumerable: true, writable: true, configurable: true })],
  ["{1: 'x', 'y': 2, (1, 2): 'tuple key', None: 0}", new Map<unknown, unknown>([[1, 'x'], ['y', 2], [[1, 2], 'tuple key'], [null, 0]])],
  ["[{1, 2, 3}, frozenset({7}), set(), frozenset()]", [new Set([1, 2, 3]), new Set([7]), new Set(), new Set()]],
  ['[1+2j, complex(0, -1)]', [new PyComplex(1, 2), new PyComplex(0, -1)]],
  ["collections.OrderedDict([('b', 1), ('a', 2)])", { b: 1, a: 2 }],
  ['list(range(2500))', Array.from({ length: 2500 }, (_, i) => i)],
  ["{str(i): i for i in range(1500)}", Object.fromEntries(Array.from({ length: 1500 }, (_, i) => [String(i), i]))],
  ["'x' * 100000", 'x'.repeat(100000)],
  ['datetime.date(2024, 5, 17)', new PyObject(new PyGlobal('datetime', 'date'), [Uint8Array.of(7, 232, 5, 17)])],
  ["decimal.Decimal('1.5')", new PyObject(new PyGlobal('decimal', 'Decimal'), ['1.5'])],
  ['os.path.join', new PyGlobal('posixpath', 'join')],
];

/** [JS value, Python expression it must equal after `conn.recv()`, or a `lambda v:` check]. */
const TO_PYTHON: [unknown, string][] = [
  [null, 'None'],
  [undefined, 'None'],
  [[true, false], '[True, False]'],
  [[0, -1, 255, 65536, 2 ** 31, -(2 ** 31) - 1, Number.MAX_SAFE_INTEGER, 2 ** 60], '[0, -1, 255, 65536, 2**31, -2**31 - 1, 2**53 - 1, 2**60]'],
  [[2n ** 100n, -(2n ** 70n), 5n], '[2**100, -2**70, 5]'],
  [[1.5, -0, 1e-300, Infinity, -Infinity, NaN], "[1.5, -0.0, 1e-300, float('inf'), float('-inf'), float('nan')]"],
  [['', 'héllo ✓', '\u{1f600}', 'lone \ud800', 'nul\x00', 'x'.repeat(70000)], "['', 'h\\xe9llo \\u2713', '\\U0001f600', 'lone \\ud800', 'nul\\x00', 'x' * 70000]"],
  [[Uint8Array.of(0, 255), Buffer.from('buf'), new Uint8Array(0)], "[b'\\x00\\xff', b'buf', b'']"],
  [[1, [2, [3]]], '[1, [2, [3]]]'],
  [[new Tuple(1, 'a'), new Tuple(), Tuple.of(new Tuple(1))], "[(1, 'a'), (), ((1,),)]"],
  [{ a: 1, b: { c: null }, __proto__x: [] }, "{'a': 1, 'b': {'c': None}, '__proto__x': []}"],
  [new Map<unknown, unknown>([[1, 'x'], [[1, 2], 'tuple key'], [2n ** 80n, 'big']]), "{1: 'x', (1, 2): 'tuple key', 2**80: 'big'}"],
  [[new Set([1, 2]), new Set([[1, 2]]), new Set([new Set([1])]), new Set()], '[{1, 2}, {(1, 2)}, {frozenset({1})}, set()]'],
  [new PyComplex(1, -2), '1-2j'],
  [new PyObject(new PyGlobal('datetime', 'date'), [2024, 5, 17]), 'datetime.date(2024, 5, 17)'],
  [new PyGlobal('builtins', 'len'), 'len'],
  // integral numbers are ints, the others floats
  [Array.from({ length: 3000 }, (_, i) => i * 1.5), '[i * 3 // 2 if i % 2 == 0 else i * 1.5 for i in range(3000)]'],
  [(() => { const shared = [1]; return [shared, shared]; })(), 'lambda v: v == [[1], [1]] and v[0] is v[1]'],
  [(() => { const cyclic: unknown[] = ['me']; cyclic.push(cyclic); return cyclic; })(), "lambda v: v[0] == 'me' and v[1] is v"],
  [(() => { const o: Record<string, unknown> = {}; o.self = o; return o; })(), "lambda v: list(v) == ['self'] and v['self'] is v"],
];

const PEER = String.raw`
import collections, datetime, decimal, json, math, os, pickle, sys
from multiprocessing.connection import Client

host, port, every_protocol = sys.argv[1], int(sys.argv[2]), sys.argv[3] == 'all'
exprs, expected = json.loads(sys.argv[4]), json.loads(sys.argv[5])

def same(a, b):
    if type(a) is not type(b):
        return False
    if isinstance(a, float):
        return repr(a) == repr(b)  # tells -0.0 from 0.0, and nan equals nan
    if isinstance(a, (list, tuple)):
        return len(a) == len(b) and all(same(x, y) for x, y in zip(a, b))
    if isinstance(a, dict):
        return list(a) == list(b) and all(same(a[k], b[k]) for k in a)
    return a == b

conn = Client((host, port))
protocols = range(pickle.HIGHEST_PROTOCOL + 1) if every_protocol else []
print('protocols', len(protocols))
for e in exprs:
    v = eval(e)
    conn.send(v)
    for p in protocols:
        conn.send_bytes(pickle.dumps(v, protocol=p))
for i, e in enumerate(expected):
    got = conn.recv()
    ok = eval(e)(got) if e.startswith('lambda') else (got == eval(e) or e.endswith("float('nan')]")) and same(got, eval(e))
    print('ok' if ok else 'FAIL %d %s' % (i, ascii(got)[:300]))
conn.close()
`;

async function exchange(py: Python, everyProtocol: boolean): Promise<void> {
  await using listener = await Listener.listen(['127.0.0.1', 0], { serializer: 'pickle' });
  const [host, port] = listener.address as [string, number];
  const peer = runPython(py, PEER, [
    host,
    String(port),
    everyProtocol ? 'all' : 'send',
    JSON.stringify(FROM_PYTHON.map(([e]) => e)),
    JSON.stringify(TO_PYTHON.map(([, e]) => e)),
  ]);
  let conn: Connection | undefined;
  try {
    conn = await listener.accept({ timeout: 20_000 });
    const protocols = Number((await peer.line()).split(' ')[1]);
    expect(protocols).to.equal(everyProtocol ? (py.minor >= 8 ? 6 : 5) : 0);
    for (const [expr, want] of FROM_PYTHON) {
      for (let p = -1; p < protocols; p++) {
        const got = await conn.recv({ timeout: 20_000 });
        expect(got, `${expr} ${p < 0 ? 'conn.send' : `protocol ${p}`}`).to.deep.equal(want);
      }
    }
    for (const [value] of TO_PYTHON) await conn.send(value);
    const verdicts: string[] = [];
    for (let i = 0; i < TO_PYTHON.length; i++) verdicts.push(await peer.line());
    expect(verdicts.filter((v) => v !== 'ok'), 'values Python read differently').to.deep.equal([]);
    const { code, stderr } = await peer.exit();
    expect(code, stderr).to.equal(0);
  } finally {
    peer.kill();
    await conn?.close();
  }
}

describe('pickle interop with CPython', () => {
  forEachPython({ only: [11, 12, 13] }, (py) => {
    it(`decodes what CPython ${py.version} sends with conn.send and pickle.dumps(v, 0..5), and Python reads what mpconn sends`, async () => {
      await exchange(py, true);
    });
  });

  forEachPython({ min: 6, max: 10 }, (py) => {
    it(`exchanges the corpus with CPython ${py.version} through conn.send / conn.recv`, async () => {
      await exchange(py, false);
    });
  });
});
