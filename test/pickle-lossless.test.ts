/**
 * The pickle decoder's lossless option, which the manager server uses for
 * what its SyncManager objects hold: every CPython found pickles a corpus
 * with each protocol it has, Node decodes it losslessly and encodes it again,
 * and Python checks that it got back the same value with the same types all
 * the way down (tuple, float, bytearray, frozenset, OrderedDict, dict key
 * order and key types). Node also checks the decoded forms, and that `repr`
 * of them (pyRepr) matches Python's own.
 */
import { expect } from 'chai';
import { PyFloat, PyGlobal, PyObject, Tuple } from 'mpconn';
import { PickleDecoder, pickleDumps, pickleLoads, pickleSerializer, pyRepr } from '../src/internal.js';
import { forEachPython, runPython } from './helpers/python.js';
import { within } from './helpers/wire.js';

/** Python expressions; `repr` says whether pyRepr must print the decoded value exactly as Python does. */
const CORPUS: { expr: string; repr: boolean }[] = [
  { expr: "(1, 2.0, 'x')", repr: true },
  { expr: '((), (1,), ((2,),))', repr: true },
  { expr: '[(1, 2), [3, (4.0,)]]', repr: true },
  { expr: "[1.0, -0.0, 1e20, 2.5, float('inf'), float('-inf'), -3.0, 1e-7]", repr: true },
  { expr: "float('nan')", repr: true },
  { expr: "[bytearray(b'ab'), bytearray(), b'ab', b'']", repr: true },
  { expr: 'frozenset({1, 2, 3})', repr: true },
  { expr: '[frozenset(), frozenset({(1, 2)}), {1, 2}, set()]', repr: true },
  { expr: "{frozenset({1}): 'k', (1, 2): 1.0, None: b'', 1.5: True, 2: 'int'}", repr: true },
  { expr: "{'b': 1, 'a': 2}", repr: true },
  { expr: "{'10': 1, '2': 2, 'x': 3, '1': 4}", repr: true },
  { expr: "{2: 'x', 1: 'y', '0': 'z', True: 't'}", repr: true },
  { expr: "collections.OrderedDict([('b', 1), ('a', 2.0)])", repr: false },
  { expr: "{'k': [(1.0, frozenset({(1, 2)})), {'x': bytearray(b'z')}], 'n': None}", repr: true },
  { expr: '[1+0j, complex(1, 2), -2j]', repr: true },
  { expr: '[10**30, -2**63, True, False, None, 0]', repr: true },
  { expr: "['it\\'s', 'tab\\t\\x00\\u00e9\\U0001f600', '\"q\"']", repr: true },
  { expr: 'datetime.date(2024, 5, 17)', repr: false },
  { expr: "[[1.0] * 3, {'a': (1.0,)}]", repr: true },
];

/**
 * Prints `index protocol pickle-hex repr-utf8-hex` per value and protocol, then reads the
 * values Node encodes back (`index protocol hex`, one per line, until a
 * blank line) and prints `OK index protocol` or `BAD index protocol why`.
 */
const SCRIPT = `
import sys, pickle, collections, datetime, math
corpus = [eval(line) for line in sys.argv[1:]]

def canon(v):
    t = type(v).__name__
    if isinstance(v, float) and math.isnan(v):
        return (t, 'nan')
    if isinstance(v, (list, tuple)):
        return (t, [canon(x) for x in v])
    if isinstance(v, dict):
        return (t, [(canon(k), canon(x)) for k, x in v.items()])
    if isinstance(v, (set, frozenset)):
        return (t, sorted(repr(canon(x)) for x in v))
    return (t, repr(v))

for i, v in enumerate(corpus):
    for p in range(pickle.HIGHEST_PROTOCOL + 1):
        print(i, p, pickle.dumps(v, protocol=p).hex(), repr(v).encode('utf-8').hex())
print('END')
for line in sys.stdin:
    line = line.strip()
    if not line:
        break
    i, p, data = line.split(' ')
    i = int(i)
    try:
        back = pickle.loads(bytes.fromhex(data))
        want = corpus[i]
        if canon(back) != canon(want):
            print('BAD', i, p, repr(back))
        else:
            print('OK', i, p)
    except Exception as e:
        print('BAD', i, p, 'raised', repr(e))
`;

describe('lossless pickle decoding', () => {
  const lossless = new PickleDecoder({ lossless: true });

  it('decodes tuples as Tuple, integral floats as PyFloat, dicts as Map, bytearray and frozenset as records', () => {
    const bytes = pickleDumps([new Tuple(1, new PyFloat(2)), new Map([['10', 1], ['2', 2]]), 2.5]);
    const value = lossless.decode(bytes) as unknown[];
    expect(value[0]).to.be.instanceOf(Tuple);
    expect((value[0] as unknown[])[1]).to.be.instanceOf(PyFloat).and.deep.equal(new PyFloat(2));
    expect(value[1]).to.be.instanceOf(Map);
    expect([...(value[1] as Map<string, number>).keys()]).to.deep.equal(['10', '2']);
    expect(value[2]).to.equal(2.5);
    // The default decoding is unchanged.
    const plain = pickleLoads(bytes) as unknown[];
    expect(plain[0]).to.not.be.instanceOf(Tuple);
    expect(plain[0]).to.deep.equal([1, 2]);
    expect(plain[1]).to.deep.equal({ 10: 1, 2: 2 });
    const serializer = pickleSerializer({ lossless: true });
    expect(serializer.decode(serializer.encode(new Tuple()))).to.be.instanceOf(Tuple);
  });

  it('keeps bytearray and frozenset as records that encode back to them', () => {
    const record = new PyObject(new PyGlobal('builtins', 'bytearray'), [Uint8Array.of(1)]);
    const fs = new PyObject(new PyGlobal('builtins', 'frozenset'), [[1, 2]]);
    const back = lossless.decode(pickleDumps([record, fs])) as PyObject[];
    expect(back[0]).to.deep.equal(record);
    expect(back[1]!.args).to.deep.equal([[1, 2]]);
    expect(pyRepr(back)).to.equal("[bytearray(b'\\x01'), frozenset({1, 2})]");
  });

  forEachPython(undefined, (py) => {
    it(`round-trips CPython ${py.version}'s values with every protocol it has, types and order intact`, async function () {
      this.timeout(30_000);
      const proc = runPython(py, SCRIPT, CORPUS.map((c) => c.expr));
      try {
        const replies: string[] = [];
        let sent = 0;
        for (;;) {
          const line = await within(proc.line(), 20_000, 'python');
          if (line === 'END') break;
          const [index, protocol, hex, repr] = line.split(' ') as [string, string, string, string];
          const value = lossless.decode(Buffer.from(hex, 'hex'));
          const entry = CORPUS[Number(index)]!;
          if (entry.repr) {
            const expected = Buffer.from(repr, 'hex').toString('utf8');
            expect(pyRepr(value), `repr of ${entry.expr} (protocol ${protocol})`).to.equal(expected);
          }
          replies.push(`${index} ${protocol} ${Buffer.from(pickleDumps(value)).toString('hex')}\n`);
          sent++;
        }
        proc.process.stdin!.write(replies.join('') + '\n');
        const verdicts: string[] = [];
        for (let i = 0; i < sent; i++) verdicts.push(await within(proc.line(), 20_000, 'python verdict'));
        expect(verdicts.filter((v) => !v.startsWith('OK '))).to.deep.equal([]);
        expect(verdicts.length).to.be.greaterThan(CORPUS.length * 3);
      } finally {
        proc.kill();
      }
    });
  });
});
