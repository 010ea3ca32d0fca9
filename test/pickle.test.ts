/**
 * The pickle serializer in-process (README, "Serializers"): the bytes `dumps` writes (checked
 * against CPython's own `pickle.dumps(v, 4)`), the values `loads` gives for
 * each protocol's opcodes, and the limits that keep decoding bounded.
 */
import { expect } from 'chai';
import fc from 'fast-check';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { Pipe, PyGlobal, PyObject, Tuple, UnpicklingError } from 'mpconn';
import { PyComplex } from '../src/index.js';
import { PickleDecoder, PickleEncoder, pickleDumps as dumps, pickleLoads as loads, pickleSerializer, PICKLE_ENCODER_MAX_DEPTH as MAX_DEPTH } from '../src/internal.js';
import { forEachPython } from './helpers/python.js';
import { decodedForm, fromHex, pickleBytes, pythonLines, toHex, u32le, u64le } from './pickle-helpers.js';

const range = (n: number): number[] => Array.from({ length: n }, (_, i) => i);

function unpicklingError(bytes: Uint8Array): UnpicklingError {
  try {
    loads(bytes);
  } catch (err) {
    expect(err).to.be.instanceOf(UnpicklingError);
    return err as UnpicklingError;
  }
  expect.fail(`loads(${toHex(bytes)}) did not throw`);
}

/** [Python expression, JS value that must encode to the same bytes]. */
const SAME_BYTES: [string, unknown][] = [
  ['None', null],
  ['True', true],
  ['False', false],
  ['[0, 1, 255, 256, 65535, 65536, -1, -256, 2**31 - 1, -2**31, 2**31, -2**31 - 1]', [0, 1, 255, 256, 65535, 65536, -1, -256, 2 ** 31 - 1, -(2 ** 31), 2 ** 31, -(2 ** 31) - 1]],
  ['[2**53, 2**63, -2**63, -2**63 - 1, -128 * 256, 2**64 - 1]', [2 ** 53, 2n ** 63n, -(2n ** 63n), -(2n ** 63n) - 1n, -128 * 256, 2n ** 64n - 1n]],
  ['10**20', 1e20],
  ['2**1000', 2n ** 1000n],
  ['-(2**3000)', -(2n ** 3000n)],
  ["[1.5, -0.0, 1e-300, float('inf'), float('-inf'), float('nan')]", [1.5, -0, 1e-300, Infinity, -Infinity, NaN]],
  ["['', 'abc', 'é', '\\ud800', '\\U0001f600', 'a\\udc00b', 'x' * 256]", ['', 'abc', 'é', '\ud800', '\u{1f600}', 'a\udc00b', 'x'.repeat(256)]],
  ["[b'', b'\\x00\\xff', bytes(256)]", [new Uint8Array(0), Uint8Array.of(0, 255), new Uint8Array(256)]],
  ['[[], [1], [1, 2], list(range(1000)), list(range(1001)), list(range(2500))]', [[], [1], [1, 2], range(1000), range(1001), range(2500)]],
  ['[(), (1,), (1, 2), (1, 2, 3), (1, 2, 3, 4)]', [new Tuple(), new Tuple(1), new Tuple(1, 2), new Tuple(1, 2, 3), new Tuple(1, 2, 3, 4)]],
  ["{'a': 1, 'b': [True, None], 'c': {}}", { a: 1, b: [true, null], c: {} }],
  ["{'only': 1}", { only: 1 }],
  ["{1: 'one', 'two': 2, (3, 4): 5}", new Map<unknown, unknown>([[1, 'one'], ['two', 2], [[3, 4], 5]])],
  ['{i: -i for i in range(1000)}', new Map(range(1000).map((i) => [i, -i || 0]))],
  ['{i: -i for i in range(2001)}', new Map(range(2001).map((i) => [i, -i || 0]))],
  ['[set(), {7}, set(range(1000)), set(range(1001))]', [new Set(), new Set([7]), new Set(range(1000)), new Set(range(1001))]],
  ['{frozenset(), frozenset({1, 2})}', new Set([new Set(), new Set([1, 2])])],
  ['[1+2j, complex(0, -1.5)]', [new PyComplex(1, 2), new PyComplex(0, -1.5)]],
  // Large payloads are written outside frames; frames close at 64 KiB.
  ["'x' * 70000", 'x'.repeat(70000)],
  ["['y' * 70000, 'z', b'w' * 65536]", ['y'.repeat(70000), 'z', new Uint8Array(65536).fill(0x77)]],
  ['[[i, str(i)] for i in range(20000)]', range(20000).map((i) => [i, String(i)])],
  ["[{'k': i, 'v': (i, [i])} for i in range(5000)]", range(5000).map((i) => ({ k: i, v: new Tuple<unknown>(i, [i]) }))],
];

describe('pickle serializer', () => {
  describe('dumps', () => {
    forEachPython({ only: [11, 12, 13] }, (py) => {
      it(`writes the same bytes as CPython ${py.version}'s pickle.dumps(v, protocol=4)`, async () => {
        const expected = await pythonLines(
          py,
          'import json, pickle, sys\nfor e in json.loads(sys.argv[1]): print(pickle.dumps(eval(e), 4).hex())',
          [JSON.stringify(SAME_BYTES.map(([e]) => e))],
        );
        expect(expected).to.have.length(SAME_BYTES.length);
        SAME_BYTES.forEach(([expr, value], i) => {
          const mine = toHex(dumps(value));
          if (mine !== expected[i]) expect.fail(`dumps(${expr.slice(0, 80)}) differs from CPython:\n${mine.slice(0, 400)}\n${expected[i]!.slice(0, 400)}`);
        });
      });

      it(`writes what CPython ${py.version} loads back equal`, async () => {
        const blobs = join(mkdtempSync(join(tmpdir(), 'mpconn-pickle-')), 'blobs.json');
        writeFileSync(blobs, JSON.stringify(SAME_BYTES.map(([, value]) => toHex(dumps(value)))));
        const verdicts = await pythonLines(
          py,
          [
            'import json, math, pickle, sys',
            'exprs = json.loads(sys.argv[1]); blobs = json.load(open(sys.argv[2]))',
            'def same(a, b):',
            '    if type(a) is not type(b): return False',
            '    if isinstance(a, float) and math.isnan(a): return math.isnan(b)',
            '    if isinstance(a, (list, tuple)): return len(a) == len(b) and all(same(x, y) for x, y in zip(a, b))',
            '    if isinstance(a, dict): return a.keys() == b.keys() and all(same(a[k], b[k]) for k in a)',
            '    return a == b',
            'for e, blob in zip(exprs, blobs):',
            '    print("ok" if same(pickle.loads(bytes.fromhex(blob)), eval(e)) else "FAIL " + e)',
          ].join('\n'),
          [JSON.stringify(SAME_BYTES.map(([e]) => e)), blobs],
        );
        rmSync(dirname(blobs), { recursive: true, force: true });
        expect(verdicts.filter((v) => v !== 'ok')).to.deep.equal([]);
        expect(verdicts).to.have.length(SAME_BYTES.length);
      });
    });

    it('writes integral numbers as int, other numbers as float, and bigints as int of any size', () => {
      expect(loads(dumps(3))).to.equal(3);
      expect(toHex(dumps(3))).to.equal('80044b032e'); // BININT1 3
      expect(toHex(dumps(3.5))).to.equal('8004950a0000000000000047400c0000000000002e'); // FRAME, BINFLOAT
      expect(toHex(dumps(3n))).to.equal('80044b032e');
      expect(loads(dumps(2n ** 200n + 1n))).to.equal(2n ** 200n + 1n);
      expect(loads(dumps(-(2n ** 64n)))).to.equal(-(2n ** 64n));
      expect(loads(dumps(Number.MAX_SAFE_INTEGER))).to.equal(Number.MAX_SAFE_INTEGER);
      expect(loads(dumps(2 ** 60))).to.equal(2n ** 60n); // an integral number beyond 2**53 is still an exact int
      expect(Object.is(loads(dumps(-0)), -0)).to.equal(true);
    });

    it('writes undefined as None and refuses what Python has no value for', () => {
      expect(loads(dumps([undefined]))).to.deep.equal([null]);
      expect(() => dumps(() => 1)).to.throw(TypeError, /function/);
      expect(() => dumps(Symbol('s'))).to.throw(TypeError, /symbol/);
      expect(() => dumps(new Date())).to.throw(TypeError, /Date/);
      expect(() => dumps(new Map([[{ a: 1 }, 1]]))).to.throw(TypeError, /hashable/);
    });

    it('sends arrays as tuples and Sets as frozensets where Python needs them hashable', () => {
      const value = loads(dumps(new Map<unknown, unknown>([[[1, [2, 3]], 'a'], [new Set([1]), 'b']]))) as Map<unknown, unknown>;
      expect([...value.keys()]).to.deep.equal([[1, [2, 3]], new Set([1])]);
      expect(toHex(dumps(new Map([[[1, 2], 3]])))).to.equal(toHex(dumps(new Map([[new Tuple(1, 2), 3]]))));
    });

    it('keeps shared and cyclic references (memo)', () => {
      const shared = [1];
      const cyclic: unknown[] = ['me'];
      cyclic.push(cyclic);
      const obj: Record<string, unknown> = { name: 'o' };
      obj.self = obj;
      const out = loads(dumps([shared, shared, cyclic, obj, obj])) as unknown[];
      expect(out[0]).to.equal(out[1]);
      const c = out[2] as unknown[];
      expect(c[1]).to.equal(c);
      const o = out[3] as Record<string, unknown>;
      expect(o.self).to.equal(o);
      expect(out[4]).to.equal(o);
    });

    it('refuses a Tuple that contains itself, which Python cannot represent', () => {
      const t = new Tuple<unknown>(1);
      t.push(t);
      expect(() => dumps(t)).to.throw(TypeError, /contains itself/);
      // ... but a tuple may contain itself through a list, as in Python
      const list: unknown[] = [];
      const u = new Tuple<unknown>(list);
      list.push(u);
      const back = loads(dumps(u)) as unknown[][];
      expect(back[0]![0]).to.equal(back);
    });

    it(`refuses values nested deeper than ${MAX_DEPTH} levels with a RangeError`, () => {
      const nest = (n: number): unknown[] => {
        let v: unknown[] = [];
        for (let i = 1; i < n; i++) v = [v];
        return v;
      };
      let back = loads(dumps(nest(MAX_DEPTH))) as unknown[];
      let depth = 1;
      while (back.length > 0) {
        back = back[0] as unknown[];
        depth++;
      }
      expect(depth).to.equal(MAX_DEPTH);
      expect(() => dumps(nest(MAX_DEPTH + 1))).to.throw(RangeError, /nested/);
    });

    it('refuses tuples, dicts and records too deep for the stack with the same clear RangeError, and keeps working', async () => {
      const deep = (wrap: (v: unknown) => unknown): unknown => {
        let v: unknown = 0;
        for (let i = 0; i <= MAX_DEPTH; i++) v = wrap(v);
        return v;
      };
      const values = [
        deep((v) => new Tuple(v)),
        deep((v) => new Map([['k', v]])),
        deep((v) => new PyObject(new PyGlobal('m', 'f'), [v])),
      ];
      for (const v of values) {
        // whichever comes first, the depth check or the end of the stack, the error says what is wrong
        expect(() => dumps(v)).to.throw(RangeError, /^cannot pickle a value nested/);
        expect(loads(dumps(new Tuple(1, 'after')))).to.deep.equal([1, 'after']);
      }
      // over a connection: that send rejects, the next one arrives
      const [a, b] = await Pipe(true, { serializer: 'pickle' });
      try {
        const err = await a.send(values[2]).then(() => null, (e: unknown) => e);
        expect(err).to.be.instanceOf(RangeError);
        await a.send('still fine');
        expect(await b.recv()).to.equal('still fine');
      } finally {
        await a.close();
        await b.close();
      }
    });

    it('round-trips any plain value through loads (property)', () => {
      const key = fc.oneof(fc.string({ unit: 'binary' }), fc.integer(), fc.boolean());
      const { value } = fc.letrec((tie) => ({
        value: fc.oneof(
          { depthSize: 'small' },
          fc.constant(null),
          fc.boolean(),
          fc.integer({ min: -(2 ** 31) * 4, max: 2 ** 31 * 4 }),
          fc.maxSafeInteger(),
          fc.bigInt({ min: -(2n ** 130n), max: 2n ** 130n }),
          fc.double(),
          fc.string({ unit: 'binary' }),
          fc.uint8Array({ maxLength: 40 }),
          fc.array(tie('value'), { maxLength: 5 }),
          fc.array(tie('value'), { maxLength: 5 }).map((items) => Tuple.from(items)),
          fc.dictionary(fc.string({ unit: 'binary' }), tie('value'), { maxKeys: 5 }),
          fc.array(fc.tuple(key, tie('value')), { maxLength: 5 }).map((entries) => new Map(entries)),
          fc.array(key, { maxLength: 5 }).map((items) => new Set(items)),
        ),
      }));
      fc.assert(
        fc.property(value, (v) => {
          expect(loads(dumps(v))).to.deep.equal(decodedForm(v));
        }),
        { numRuns: 1500 },
      );
    });

    it('writes lone surrogates as Python does (utf-8 surrogatepass), so they round-trip', () => {
      // pickle.dumps('\ud800', 4) in CPython
      expect(toHex(dumps('\ud800'))).to.equal('80049507000000000000008c03eda080942e');
      expect(loads(dumps('a\udfffb\ud83d'))).to.equal('a\udfffb\ud83d');
    });
  });

  describe('a lending encoder (PickleEncoder.encodeLent, encodeTupleLent)', () => {
    const values: unknown[] = [null, 'x', [1, 'x', 'x'], new Map<unknown, unknown>([[new Tuple(1, 2), [3]]]), 'y'.repeat(70_000)];

    it('writes the bytes dumps writes, the pair as a tuple, growing and shrinking its buffer between messages', () => {
      const encoder = new PickleEncoder(1024);
      for (const value of [...values, ...values.reverse()]) {
        expect(toHex(encoder.encodeLent(value))).to.equal(toHex(dumps(value)));
        const pair = ['#RETURN', value];
        expect(toHex(encoder.encodeTupleLent(pair))).to.equal(toHex(dumps(Tuple.from(pair))));
        expect(pair).to.not.be.instanceOf(Tuple);
      }
    });

    it('lends its own buffer until the next message, while encode() gives an array of its own', () => {
      const encoder = new PickleEncoder();
      const lent = encoder.encodeLent('aaaa');
      const own = encoder.encode('aaaa');
      encoder.encodeLent('bbbb');
      expect(toHex(own)).to.equal(toHex(dumps('aaaa')));
      expect(toHex(lent)).to.equal(toHex(dumps('bbbb')));
    });
  });

  describe('Tuple', () => {
    it('is an Array built from its arguments, even a single number', () => {
      const t = new Tuple(3);
      expect(Array.isArray(t)).to.equal(true);
      expect([...t]).to.deep.equal([3]);
      expect([...new Tuple()]).to.deep.equal([]);
      expect([...Tuple.of(1, 2)]).to.deep.equal([1, 2]);
      expect(Tuple.of(1, 2)).to.be.instanceOf(Tuple);
      expect(Tuple.from(new Set(['a', 'b']))).to.be.instanceOf(Tuple);
      expect([...Tuple.from([1, 2], (x) => x * 10)]).to.deep.equal([10, 20]);
      expect([...Tuple.from({ length: 2, 0: 'x', 1: 'y' })]).to.deep.equal(['x', 'y']);
    });

    it('gives plain arrays from map, filter and slice', () => {
      const t = new Tuple<number>(1, 2, 3);
      expect(t.map((x) => x * 2)).to.not.be.instanceOf(Tuple);
      expect(t.map((x) => x * 2)).to.deep.equal([2, 4, 6]);
      expect(t.filter((x) => x > 1)).to.deep.equal([2, 3]);
      expect(t.slice(1)).to.not.be.instanceOf(Tuple);
    });
  });

  describe('loads', () => {
    it('maps dicts to plain objects when every key is a str, else to Maps', () => {
      // {'a': 1, 'b': {1: 2}} as CPython 3.13 writes it
      const value = loads(fromHex('80049516000000000000007d94288c0161944b018c0162947d944b014b0273752e'));
      expect(value).to.deep.equal({ a: 1, b: new Map([[1, 2]]) });
      expect(Object.getPrototypeOf(value)).to.equal(Object.prototype);
    });

    it('keeps a "__proto__" key as an own property and never touches prototypes', () => {
      // {'__proto__': {'polluted': True}} in protocol 4 and 0
      const p4 = pickleBytes(0x80, 4, 0x7d, 0x8c, 9, '__proto__', 0x7d, 0x8c, 8, 'polluted', 0x88, 0x73, 0x73, 0x2e);
      const p0 = pickleBytes('(dp0\nV__proto__\np1\n(dp2\nVpolluted\np3\nI01\nss.');
      for (const bytes of [p4, p0]) {
        const value = loads(bytes) as Record<string, unknown>;
        expect(Object.getPrototypeOf(value)).to.equal(Object.prototype);
        expect(Object.keys(value)).to.deep.equal(['__proto__']);
        expect(Object.getOwnPropertyDescriptor(value, '__proto__')?.value).to.deep.equal({ polluted: true });
        expect(({} as Record<string, unknown>).polluted).to.equal(undefined);
      }
    });

    it('rebuilds sets, frozensets, bytes, bytearrays, complex and OrderedDicts in every protocol', () => {
      // set([1]), frozenset([1]), bytearray(b'ab'), b'ab\xff', 1+2j, OrderedDict(z=1): CPython 3.13, protocols 0-2
      const cases: [string, unknown][] = [
        ['c__builtin__\nset\np0\n((lp1\nI1\natp2\nRp3\n.', new Set([1])],
        ['\x80\x02c__builtin__\nfrozenset\nq\x00]q\x01K\x01a\x85q\x02Rq\x03.', new Set([1])],
        ['c__builtin__\nbytearray\np0\n(c_codecs\nencode\np1\n(Vab\np2\nVlatin1\np3\ntp4\nRp5\ntp6\nRp7\n.', Uint8Array.of(97, 98)],
        ['\x80\x02c_codecs\nencode\nq\x00X\x04\x00\x00\x00ab\xc3\xbfq\x01X\x06\x00\x00\x00latin1q\x02\x86q\x03Rq\x04.', Uint8Array.of(97, 98, 255)],
        ['\x80\x02c__builtin__\nbytes\nq\x00)Rq\x01.', new Uint8Array(0)],
        ['c__builtin__\ncomplex\np0\n(F1.0\nF2.0\ntp1\nRp2\n.', new PyComplex(1, 2)],
        ['\x80\x02ccollections\nOrderedDict\nq\x00)Rq\x01X\x01\x00\x00\x00zq\x02K\x01s.', { z: 1 }],
        // Python 2's OrderedDict.__reduce__: a list of [key, value] lists
        ["ccollections\nOrderedDict\np0\n((lp1\n(lp2\nS'a'\np3\naI1\naatp4\nRp5\n.", { a: 1 }],
      ];
      for (const [latin1, expected] of cases) expect(loads(pickleBytes(latin1)), JSON.stringify(latin1)).to.deep.equal(expected);
    });

    it('decodes the protocol 0 text forms of ints, floats and strings', () => {
      expect(loads(pickleBytes('I01\n.'))).to.equal(true);
      expect(loads(pickleBytes('I00\n.'))).to.equal(false);
      expect(loads(pickleBytes('I-42\n.'))).to.equal(-42);
      expect(loads(pickleBytes('I1000000000000\n.'))).to.equal(1e12);
      expect(loads(pickleBytes('L123456789012345678901234567890L\n.'))).to.equal(123456789012345678901234567890n);
      expect(loads(pickleBytes('L-5\n.'))).to.equal(-5);
      expect(loads(pickleBytes('F1e+300\n.'))).to.equal(1e300);
      expect(loads(pickleBytes('Finf\n.'))).to.equal(Infinity);
      expect(loads(pickleBytes('F-inf\n.'))).to.equal(-Infinity);
      expect(loads(pickleBytes('Fnan\n.'))).to.be.NaN;
      expect(loads(pickleBytes("S'it\\'s \\x41\\101\\n\\\\'\n."))).to.equal("it's AA\n\\");
      expect(loads(pickleBytes('S"dq"\n.'))).to.equal('dq');
      // raw-unicode-escape: \u escapes only after an odd number of backslashes
      expect(loads(pickleBytes('Vx\\u00e9\\U0001f600\\u005c\\\\u1234\n.'))).to.equal('xé\u{1f600}\\\\\\u1234');
      expect(loads(pickleBytes('Va\\\\\\u1234\n.'))).to.equal('a\\\\\u1234');
      expect(loads(pickleBytes('V\xe9\n.'))).to.equal('é');
    });

    it('decodes lone surrogates that CPython writes with surrogatepass', () => {
      // 'x\ud800' in protocol 4
      expect(loads(pickleBytes(0x80, 4, 0x8c, 4, 'x', 0xed, 0xa0, 0x80, 0x2e))).to.equal('x\ud800');
      // and keeps a leading byte order mark
      expect(loads(pickleBytes(0x8c, 3, 0xef, 0xbb, 0xbf, 0x2e))).to.equal('\ufeff');
    });

    it('decodes CPython 2.7 pickles (fixtures)', () => {
      const fixtures = JSON.parse(readFileSync(new URL('../../test/fixtures/pickle-py27.json', import.meta.url), 'utf8')) as { expr: string; protocol: number; hex: string }[];
      const expected: Record<string, unknown> = {
        None: null,
        '[True, False]': [true, false],
        '[0, 1, -1, 255, 65535, 2**31 - 1, -2**31, 2**40, -2**62]': [0, 1, -1, 255, 65535, 2 ** 31 - 1, -(2 ** 31), 2 ** 40, -(2n ** 62n)],
        '2**70': 2n ** 70n,
        '-2**70': -(2n ** 70n),
        "[1.5, -0.25, 1e300, float('inf'), float('-inf')]": [1.5, -0.25, 1e300, Infinity, -Infinity],
        "'plain ascii'": 'plain ascii',
        "'quote \\' and \" and \\\\ and \\n'": 'quote \' and " and \\ and \n',
        "'latin-1 \\xe9\\xff\\x00'": 'latin-1 \xe9\xff\x00',
        "u'unicode \\u1234 \\U0001f600 back\\\\slash \\n newline'": 'unicode \u1234 \u{1f600} back\\slash \n newline',
        '[1, [2, [3]], (4, 5), ()]': [1, [2, [3]], [4, 5], []],
        "{'a': 1, 'b': [1, 2]}": { a: 1, b: [1, 2] },
        "{1: 'int key', (1, 2): 'tuple key'}": new Map<unknown, unknown>([[1, 'int key'], [[1, 2], 'tuple key']]),
        'set([1, 2, 3])': new Set([1, 2, 3]),
        "frozenset(['x'])": new Set(['x']),
        "bytearray('by\\xfftes')": Uint8Array.from(Buffer.from('by\xfftes', 'latin1')),
        '1.5+2j': new PyComplex(1.5, 2),
        "collections.OrderedDict([('z', 1), ('a', 2)])": { z: 1, a: 2 },
        'xrange(3)': new PyObject(new PyGlobal('builtins', 'range'), [0, 3, 1]),
      };
      expect(fixtures).to.have.length(Object.keys(expected).length * 3);
      for (const { expr, protocol, hex } of fixtures) {
        expect(expr in expected, expr).to.equal(true);
        const value = loads(fromHex(hex));
        const want = expected[expr];
        if (expr.startsWith('{1:')) {
          // a dict's order in Python 2 is its hash order
          expect(new Map([...(value as Map<unknown, unknown>)].sort((a, b) => String(a[1]).localeCompare(String(b[1]))))).to.deep.equal(want);
        } else {
          expect(value, `${expr} protocol ${protocol}`).to.deep.equal(want);
        }
      }
    });

    it('records other globals and calls as inert PyGlobal and PyObject', () => {
      // datetime.date(2024, 5, 17), CPython 3.13 protocol 4
      const date = loads(fromHex('80049520000000000000008c086461746574696d65948c0464617465949394430407e8051194859452942e'));
      expect(date).to.deep.equal(new PyObject(new PyGlobal('datetime', 'date'), [Uint8Array.of(7, 232, 5, 17)]));
      // NEWOBJ_EX, then BUILD, APPENDS and SETITEMS on the new object
      const record = loads(
        pickleBytes(0x80, 4, 0x8c, 1, 'm', 0x8c, 1, 'C', 0x93, 0x4b, 1, 0x85, 0x7d, 0x8c, 1, 'k', 0x4b, 2, 0x73, 0x92,
          0x28, 0x4b, 3, 0x4b, 4, 0x65, 0x28, 0x8c, 1, 'x', 0x4b, 5, 0x75, 0x7d, 0x8c, 1, 's', 0x88, 0x73, 0x62, 0x2e),
      ) as PyObject;
      expect(record).to.be.instanceOf(PyObject);
      expect(record.kind).to.equal('newobj_ex');
      expect(record.callable).to.deep.equal(new PyGlobal('m', 'C'));
      expect(record.args).to.deep.equal([1]);
      expect(record.kwargs).to.deep.equal({ k: 2 });
      expect(record.listItems).to.deep.equal([3, 4]);
      expect(record.dictItems).to.deep.equal({ x: 5 });
      expect(record.state).to.deep.equal({ s: true });
    });

    it('maps Python 2 builtin names to Python 3 ones in protocols 0-2 only', () => {
      expect(loads(pickleBytes('c__builtin__\nlong\n.'))).to.deep.equal(new PyGlobal('builtins', 'int'));
      expect(loads(pickleBytes('ccopy_reg\n_reconstructor\n.'))).to.deep.equal(new PyGlobal('copyreg', '_reconstructor'));
      expect(loads(pickleBytes(0x80, 4, 'c__builtin__\nlong\n.'))).to.deep.equal(new PyGlobal('__builtin__', 'long'));
    });

    it('keeps shared references, including dicts shared and nested in Maps and Sets', () => {
      const inner = { k: 1 };
      const out = loads(dumps([inner, new Map<unknown, unknown>([[1, inner]]), inner])) as unknown[];
      expect(out[0]).to.equal(out[2]);
      expect((out[1] as Map<unknown, unknown>).get(1)).to.equal(out[0]);
    });

    it('ignores bytes after STOP, as CPython does', () => {
      expect(loads(pickleBytes('N.garbage'))).to.equal(null);
    });

    it('decodes a structure nested far deeper than the JS stack without recursion', () => {
      const depth = 200_000;
      // ] x depth, a dict innermost, then APPEND x depth: [[[...[{}]...]]]
      const bytes = new Uint8Array(2 * depth + 2);
      bytes.fill(0x5d, 0, depth);
      bytes[depth] = 0x7d;
      bytes.fill(0x61, depth + 1, 2 * depth + 1);
      bytes[2 * depth + 1] = 0x2e;
      let v = loads(bytes) as unknown;
      let levels = 0;
      while (Array.isArray(v)) {
        v = v[0];
        levels++;
      }
      expect(levels).to.equal(depth);
      expect(v).to.deep.equal({});
    });
  });

  describe('malformed input', () => {
    it('rejects with UnpicklingError carrying the offset', () => {
      const cases: [Uint8Array, RegExp, number][] = [
        [new Uint8Array(0), /empty/, 0],
        [pickleBytes(0x80, 4, 0x4b), /truncated/, 2],
        [pickleBytes(0x80, 4, 0x4e), /truncated \(no STOP/, 3],
        [pickleBytes(0x80, 6, 0x4e, 0x2e), /unsupported pickle protocol: 6/, 0],
        [pickleBytes(0xff), /invalid load key/, 0],
        [pickleBytes(0x2e), /stack underflow/, 0],
        [pickleBytes(0x68, 3, 0x2e), /memo value not found at index 3/, 0],
        [pickleBytes(0x28, 0x4b, 1, 0x64, 0x2e), /odd number of items/, 3],
        [pickleBytes(0x4e, 0x4b, 1, 0x61, 0x2e), /cannot append to None/, 3],
        [pickleBytes(0x4b, 1, 0x29, 0x52, 0x2e), /not callable/, 3],
        [pickleBytes("S'unquoted\n."), /must be quoted/, 0],
        [pickleBytes('Inope\n.'), /invalid integer/, 0],
        [pickleBytes('Ffoo\n.'), /invalid float/, 0],
        [pickleBytes(0x8c, 2, 0xc3, 0x28, 0x2e), /UTF-8/, 0],
        [pickleBytes('Vbad \\u12\n.'), /truncated \\uXXXX/, 0],
        [pickleBytes('P1\n.'), /persistent IDs/, 0],
        [pickleBytes(0x82, 1, 0x2e), /extension code 1/, 0],
        [pickleBytes(0x4b, 1, 0x4b, 1, 0x93, 0x2e), /STACK_GLOBAL requires str/, 4],
        [pickleBytes(0x5d, 0x4b, 1, 0x62, 0x2e), /BUILD cannot set attributes on a list/, 3],
        [pickleBytes('I1'), /missing end of line/, 0],
      ];
      for (const [bytes, message, offset] of cases) {
        const err = unpicklingError(bytes);
        expect(err.message, toHex(bytes)).to.match(message);
        expect(err.offset, toHex(bytes)).to.equal(offset);
        expect(err.code).to.equal('ERR_UNPICKLING');
      }
    });

    it('rejects out-of-band buffers (protocol 5 buffer_callback) with a clear message', () => {
      for (const op of [0x97, 0x98]) {
        const err = unpicklingError(pickleBytes(0x80, 5, op, 0x2e));
        expect(err.message).to.match(/out-of-band buffers/);
        expect(err.message).to.match(/buffer_callback/);
      }
    });

    it('does not allocate what a length field claims before the bytes are there', () => {
      const claims: [string, Uint8Array][] = [
        ['BINBYTES8 2**40', pickleBytes(0x80, 4, 0x8e, u64le(2 ** 40), 0x2e)],
        ['BINUNICODE8 2**40', pickleBytes(0x80, 4, 0x8d, u64le(2 ** 40), 0x2e)],
        ['BYTEARRAY8 2**40', pickleBytes(0x80, 5, 0x96, u64le(2 ** 40), 0x2e)],
        ['BYTEARRAY8 2**64-1', pickleBytes(0x80, 5, 0x96, Array(8).fill(0xff), 0x2e)],
        ['FRAME 2**40', pickleBytes(0x80, 4, 0x95, u64le(2 ** 40), 0x4e, 0x2e)],
        ['BINBYTES 2**32-1', pickleBytes(0x80, 3, 0x42, u32le(2 ** 32 - 1), 0x2e)],
        ['BINUNICODE 2**31', pickleBytes(0x58, u32le(2 ** 31), 0x2e)],
        ['LONG4 2**31-1', pickleBytes(0x8b, u32le(2 ** 31 - 1), 0x2e)],
        ['BINSTRING 2**31-1', pickleBytes(0x54, u32le(2 ** 31 - 1), 0x2e)],
      ];
      for (const [what, bytes] of claims) {
        const before = process.memoryUsage().arrayBuffers;
        const err = unpicklingError(bytes);
        const grown = process.memoryUsage().arrayBuffers - before;
        expect(err.message, what).to.match(/truncated/);
        expect(grown, what).to.be.below(16 * 1024 * 1024);
      }
    });

    it('bounds rebuilding from memoized arguments (a small pickle cannot expand without limit)', () => {
      // a list of 1000 ints memoized once, then set(that list) 50,000 times
      const list = pickleBytes(0x5d, 0x94, 0x28, range(1000).flatMap(() => [0x4b, 7]), 0x65);
      const reuse = pickleBytes(0x8c, 8, 'builtins', 0x8c, 3, 'set', 0x93, 0x68, 0, 0x85, 0x52, 0x30);
      const bytes = new Uint8Array(list.length + 50_000 * reuse.length + 2);
      bytes.set(pickleBytes(0x80, 4), 0);
      bytes.set(list, 2);
      for (let i = 0; i < 50_000; i++) bytes.set(reuse, 2 + list.length + i * reuse.length);
      bytes.set(pickleBytes(0x2e), bytes.length - 1);
      expect(unpicklingError(bytes).message).to.match(/expand/);
      // while an honest protocol 2 pickle of a big set, set([0, ..., 99999]), decodes
      const items = range(100_000).flatMap((i) => [0x4a, ...u32le(i)]);
      const honest = pickleBytes(0x80, 2, 'c__builtin__\nset\n', 0x5d, 0x28, items, 0x65, 0x85, 0x52, 0x2e);
      expect(loads(honest)).to.deep.equal(new Set(range(100_000)));
    });

    it('keeps work linear when a set or list grows by many one-item batches (a quadratic decoder would time out)', () => {
      const n = 200_000;
      // a dict first, so the decoder tracks where dicts go; then a set and a list grown one item at a time
      const head = pickleBytes(0x80, 4, 0x7d, 0x30, 0x5d, 0x8f);
      const bytes = new Uint8Array(head.length + n * 7 + 4);
      bytes.set(head);
      let at = head.length;
      for (let i = 0; i < n; i++) {
        bytes.set([0x28, 0x4a, ...u32le(i), 0x90], at); // MARK BININT(i) ADDITEMS
        at += 7;
      }
      bytes.set([0x86, 0x30, 0x4e, 0x2e], at); // TUPLE2 POP NONE STOP
      expect(loads(bytes)).to.equal(null);
      // a list of dicts, appended one at a time
      const list = new Uint8Array(2 * n + 4);
      list.set([0x80, 4, 0x5d]);
      for (let i = 0; i < n; i++) list.set([0x7d, 0x61], 3 + 2 * i); // EMPTY_DICT APPEND
      list[list.length - 1] = 0x2e;
      const dicts = loads(list) as unknown[];
      expect(dicts).to.have.length(n);
      expect(dicts[n - 1]).to.deep.equal({});
    });

    it('refuses decimal ints longer than 100,000 digits (their parsing is superlinear)', () => {
      expect(loads(pickleBytes('L', '9'.repeat(100_000), '\n.'))).to.equal(BigInt('9'.repeat(100_000)));
      expect(unpicklingError(pickleBytes('L', '9'.repeat(100_001), '\n.')).message).to.match(/100000/);
    });
  });

  describe('one decoder, many pickles', () => {
    it('keeps nothing of one pickle for the next: memo, stack and marks, after a success or a failure', () => {
      const decoder = new PickleDecoder();
      // 'x' memoized at index 0, then a pickle that only reads index 0
      expect(decoder.decode(pickleBytes(0x80, 4, 0x8c, 1, 'x', 0x94, 0x2e))).to.equal('x');
      expect(() => decoder.decode(pickleBytes(0x68, 0, 0x2e))).to.throw(UnpicklingError, /memo value not found at index 0/);
      // a failure with a MARK and two items on the stack, then pickles that would find them
      expect(() => decoder.decode(pickleBytes(0x28, 0x4b, 1, 0x4b, 2, 0xff))).to.throw(UnpicklingError, /invalid load key/);
      expect(() => decoder.decode(pickleBytes(0x2e))).to.throw(UnpicklingError, /stack underflow/);
      expect(() => decoder.decode(pickleBytes(0x31, 0x4e, 0x2e))).to.throw(UnpicklingError, /could not find MARK/);
      // memoized under a failure too
      expect(() => decoder.decode(pickleBytes(0x4b, 7, 0x94, 0xff))).to.throw(UnpicklingError);
      expect(() => decoder.decode(pickleBytes(0x68, 0, 0x2e))).to.throw(UnpicklingError, /memo value not found/);
      expect(decoder.decode(pickleBytes(0x80, 4, 0x4b, 5, 0x4b, 6, 0x86, 0x2e))).to.deep.equal([5, 6]);
    });

    it('numbers the memo as CPython does, whatever order PUT and MEMOIZE come in', () => {
      const decoder = new PickleDecoder();
      // 7 put at 5, then MEMOIZE puts 8 at len(memo) = 1
      expect(decoder.decode(pickleBytes(0x80, 4, 0x4b, 7, 0x71, 5, 0x30, 0x4b, 8, 0x94, 0x30, 0x68, 1, 0x68, 5, 0x86, 0x2e))).to.deep.equal([8, 7]);
      // MEMOIZE at 0, 2 put at 2, then MEMOIZE at len(memo) = 2 replaces it (pickle.loads gives (1, 3))
      const replaced = pickleBytes(0x80, 4, 0x4b, 1, 0x94, 0x30, 0x4b, 2, 0x71, 2, 0x30, 0x4b, 3, 0x94, 0x30, 0x68, 0, 0x68, 2, 0x86, 0x2e);
      expect(decoder.decode(replaced)).to.deep.equal([1, 3]);
      // an index far beyond the others (CPython itself runs out of memory here)
      const far = pickleBytes(0x80, 4, 0x4b, 1, 0x72, u32le(2 ** 32 - 1), 0x30, 0x4b, 9, 0x94, 0x30, 0x68, 1, 0x6a, u32le(2 ** 32 - 1), 0x86, 0x2e);
      expect(decoder.decode(far)).to.deep.equal([9, 1]);
      expect(() => decoder.decode(pickleBytes(0x80, 4, 0x4b, 7, 0x71, 5, 0x30, 0x68, 0, 0x2e))).to.throw(UnpicklingError, /memo value not found at index 0/);
      expect(() => decoder.decode(pickleBytes(0x80, 4, 0x4b, 7, 0x71, 5, 0x30, 0x68, 5, 0x30, 0x68, 4, 0x2e))).to.throw(UnpicklingError, /memo value not found at index 4/);
    });

    it('counts the globals of the last pickle only', () => {
      const decoder = new PickleDecoder({ lossless: true });
      decoder.decode(pickleBytes('cbuiltins\nlen\n.'));
      expect(decoder.globalsDecoded).to.equal(1);
      decoder.decode(pickleBytes(0x80, 4, 0x4b, 5, 0x2e));
      expect(decoder.globalsDecoded).to.equal(0);
      expect(() => decoder.decode(pickleBytes('cbuiltins\nlen\n', 0xff))).to.throw(UnpicklingError);
      decoder.decode(pickleBytes(0x4e, 0x2e));
      expect(decoder.globalsDecoded).to.equal(0);
    });

    it('names the globals of the last pickle, however the pickle spells them', () => {
      const decoder = new PickleDecoder();
      // STACK_GLOBAL of two protocol-0 UNICODE strings, the name with a \u escape: no 'RebuildProxy' in the bytes.
      const escaped = pickleBytes('Vmultiprocessing.managers\nV\\u0052ebuildProxy\n', 0x93, 0x2e);
      expect(Buffer.from(escaped).includes('RebuildProxy')).to.equal(false);
      expect(decoder.decode(escaped)).to.deep.equal(new PyGlobal('multiprocessing.managers', 'RebuildProxy'));
      expect(decoder.decodedGlobal('RebuildProxy')).to.equal(true);
      expect(decoder.decodedGlobal('len')).to.equal(false);
      decoder.decode(pickleBytes(0x80, 4, 0x4b, 5, 0x2e));
      expect(decoder.decodedGlobal('RebuildProxy')).to.equal(false);
    });

    it('reads BINFLOAT, BININT and BININT2 from any offset of the input (no view of the whole buffer)', () => {
      const decoder = new PickleDecoder();
      const bytes = pickleBytes(0x80, 4, 0x28, 0x47, [0x3f, 0xf8, 0, 0, 0, 0, 0, 0], 0x4a, [0xfe, 0xff, 0xff, 0xff], 0x4d, [0x34, 0x12], 0x74, 0x2e);
      const padded = new Uint8Array(bytes.length + 3);
      padded.set(bytes, 3);
      expect(decoder.decode(padded.subarray(3))).to.deep.equal([1.5, -2, 0x1234]);
    });
  });

  describe('over a connection', () => {
    it('sends and receives values, and a malformed pickle leaves the connection usable', async () => {
      const [a, b] = await Pipe(true, { serializer: 'pickle' });
      try {
        await a.send({ list: [1, 2n ** 70n, new Tuple('t')], set: new Set([1.5]) });
        expect(await b.recv()).to.deep.equal({ list: [1, 2n ** 70n, ['t']], set: new Set([1.5]) });
        await a.sendBytes(pickleBytes(0x80, 4, 0x8e, u64le(2 ** 40)));
        const err = await b.recv().then(
          () => null,
          (e: unknown) => e,
        );
        expect(err).to.be.instanceOf(UnpicklingError);
        // like ProtocolError ERR_DECODE, it hands over the payload it consumed
        expect((err as UnpicklingError).data).to.deep.equal(Buffer.from(pickleBytes(0x80, 4, 0x8e, u64le(2 ** 40))));
        expect((err as UnpicklingError).offset).to.be.a('number');
        await a.send('still fine');
        expect(await b.recv()).to.equal('still fine');
      } finally {
        await a.close();
        await b.close();
      }
    });

    it('gives each connection its own serializer instance', () => {
      const s1 = pickleSerializer();
      const s2 = pickleSerializer();
      expect(s1.decode(s2.encode([1, 'two']))).to.deep.equal([1, 'two']);
    });
  });
});
