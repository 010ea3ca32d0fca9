/**
 * Pickles that run commands when CPython loads them decode to inert records
 * in mpconn and run nothing (README, "Security"). Each one would create a marker file;
 * the test first shows that CPython's own `pickle.loads` does create it (so
 * the pickle really is an exploit), then that mpconn's decoding does not.
 */
import { expect } from 'chai';
import { existsSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Pipe, PyGlobal, PyObject } from 'mpconn';
import { pickleLoads as loads } from '../src/internal.js';
import { newestPython, NO_PYTHON } from './helpers/python.js';
import { fromHex, pickleBytes, pythonLines, toHex } from './pickle-helpers.js';

interface Exploit {
  name: string;
  /** The pickle, for a marker file at `marker`. */
  bytes(marker: string): Uint8Array;
  /** Checks the inert record it decodes to. */
  inert(value: unknown, marker: string): void;
}

function expectCall(value: unknown, kind: PyObject['kind'], module: string, name: string, args: unknown[]): PyObject {
  expect(value).to.be.instanceOf(PyObject);
  const record = value as PyObject;
  expect(record.kind).to.equal(kind);
  expect(record.callable).to.deep.equal(new PyGlobal(module, name));
  expect(record.args).to.deep.equal(args);
  return record;
}

/** Written by hand, in protocol 0 text opcodes (plus NEWOBJ). */
const BY_HAND: Exploit[] = [
  {
    name: 'REDUCE of os.system',
    bytes: (m) => pickleBytes(`cos\nsystem\n(Vtouch ${m}\ntR.`),
    inert: (v, m) => expectCall(v, 'reduce', 'os', 'system', [`touch ${m}`]),
  },
  {
    name: 'REDUCE of subprocess.check_call',
    bytes: (m) => pickleBytes(`csubprocess\ncheck_call\n(]Vtouch\naV${m}\natR.`),
    inert: (v, m) => expectCall(v, 'reduce', 'subprocess', 'check_call', [['touch', m]]),
  },
  {
    name: 'REDUCE of builtins.eval',
    bytes: (m) => pickleBytes(`cbuiltins\neval\n(Vopen('${m}', 'w').close()\ntR.`),
    inert: (v, m) => expectCall(v, 'reduce', 'builtins', 'eval', [`open('${m}', 'w').close()`]),
  },
  {
    name: 'REDUCE of builtins.exec',
    bytes: (m) => pickleBytes(`c__builtin__\nexec\n(Vimport os; os.system('touch ${m}')\ntR.`),
    inert: (v, m) => expectCall(v, 'reduce', 'builtins', 'exec', [`import os; os.system('touch ${m}')`]),
  },
  {
    name: 'getattr(__import__("os"), "system") called through nested REDUCEs',
    bytes: (m) => pickleBytes(`cbuiltins\ngetattr\n(cbuiltins\n__import__\n(Vos\ntRVsystem\ntR(Vtouch ${m}\ntR.`),
    inert: (v, m) => {
      expect(v).to.be.instanceOf(PyObject);
      const call = v as PyObject;
      expect(call.args).to.deep.equal([`touch ${m}`]);
      const system = call.callable as PyObject;
      expectCall(system, 'reduce', 'builtins', 'getattr', [new PyObject(new PyGlobal('builtins', '__import__'), ['os']), 'system']);
    },
  },
  {
    name: 'BUILD that plants __setstate__ = os.system on an object, then BUILD again',
    bytes: (m) => pickleBytes(`cargparse\nNamespace\n)\x81}(V__setstate__\ncos\nsystem\nubVtouch ${m}\nb.`),
    inert: (v, m) => {
      expect(v).to.be.instanceOf(PyObject);
      const second = v as PyObject;
      expect(second.kind).to.equal('build');
      expect(second.state).to.equal(`touch ${m}`);
      const first = expectCall(second.callable, 'newobj', 'argparse', 'Namespace', []);
      expect(first.state).to.deep.equal({ __setstate__: new PyGlobal('os', 'system') });
    },
  },
  {
    name: 'INST of os.system',
    bytes: (m) => pickleBytes(`(Vtouch ${m}\nios\nsystem\n.`),
    inert: (v, m) => expectCall(v, 'inst', 'os', 'system', [`touch ${m}`]),
  },
  {
    name: 'OBJ of os.system',
    bytes: (m) => pickleBytes(`(cos\nsystem\nVtouch ${m}\no.`),
    inert: (v, m) => expectCall(v, 'obj', 'os', 'system', [`touch ${m}`]),
  },
];

/** Classes whose __reduce__ runs a command, pickled by CPython in protocols 0-5. */
const PYTHON_EXPLOITS = String.raw`
import json, os, pickle, subprocess, sys
marker = sys.argv[1]
class System:
    def __reduce__(self): return (os.system, ('touch ' + marker,))
class CheckCall:
    def __reduce__(self): return (subprocess.check_call, (['touch', marker],))
class Eval:
    def __reduce__(self): return (eval, ("open(%r, 'w').close()" % marker,))
for cls in (System, CheckCall, Eval):
    print(json.dumps([cls.__name__, [pickle.dumps(cls(), p).hex() for p in range(pickle.HIGHEST_PROTOCOL + 1)]]))
`;

const PYTHON_LOADS = 'import pickle, sys\npickle.loads(bytes.fromhex(sys.argv[1]))';

describe('pickle decoding of malicious pickles', () => {
  let dir: string;
  let marker: string;
  beforeEach(() => {
    dir = mkdtempSync(join(tmpdir(), 'mpconn-pickle-exploit-'));
    marker = join(dir, 'pwned');
  });
  afterEach(() => rmSync(dir, { recursive: true, force: true }));

  const py = newestPython(8);

  for (const exploit of BY_HAND) {
    describe(exploit.name, () => {
      if (py === undefined) it(`${NO_PYTHON} (showing that CPython runs it)`);
      else {
        it(`runs a command in CPython ${py.version}'s pickle.loads`, async () => {
          await pythonLines(py, PYTHON_LOADS, [toHex(exploit.bytes(marker))]).catch(() => []);
          expect(existsSync(marker), 'CPython did not run the exploit: the test pickle is broken').to.equal(true);
        });
      }

      it('decodes to an inert record and runs nothing', async () => {
        const value = loads(exploit.bytes(marker));
        exploit.inert(value, marker);
        // the same over a connection with the pickle serializer
        const [a, b] = await Pipe(true, { serializer: 'pickle' });
        try {
          await a.sendBytes(exploit.bytes(marker));
          exploit.inert(await b.recv(), marker);
        } finally {
          await a.close();
          await b.close();
        }
        await new Promise((resolve) => setTimeout(resolve, 50)); // a command, had one started, would have run by now
        expect(existsSync(marker)).to.equal(false);
      });
    });
  }

  describe('classes with a __reduce__ that runs a command, pickled by CPython in every protocol', () => {
    if (py === undefined) {
      it(NO_PYTHON);
      return;
    }
    it(`run in CPython ${py.version} but decode to inert records in mpconn`, async () => {
      const lines = await pythonLines(py, PYTHON_EXPLOITS, [marker]);
      const exploits = lines.map((line) => JSON.parse(line) as [string, string[]]);
      expect(exploits.map(([name]) => name)).to.deep.equal(['System', 'CheckCall', 'Eval']);
      const expected: Record<string, [string, string, unknown[]]> = {
        System: ['posix', 'system', [`touch ${marker}`]],
        CheckCall: ['subprocess', 'check_call', [['touch', marker]]],
        Eval: ['builtins', 'eval', [`open('${marker}', 'w').close()`]],
      };
      for (const [name, blobs] of exploits) {
        expect(blobs.length).to.be.at.least(5);
        // live in CPython (protocol 2 shown; they differ only in encoding)
        await pythonLines(py, PYTHON_LOADS, [blobs[2]!]).catch(() => []);
        expect(existsSync(marker), `CPython did not run ${name}`).to.equal(true);
        rmSync(marker);
        for (const [protocol, hex] of blobs.entries()) {
          const [module, fn, args] = expected[name]!;
          const value = loads(fromHex(hex));
          expect(value, `${name} protocol ${protocol}`).to.deep.equal(new PyObject(new PyGlobal(module, fn), args));
        }
      }
      await new Promise((resolve) => setTimeout(resolve, 50));
      expect(existsSync(marker)).to.equal(false);
    });
  });
});
