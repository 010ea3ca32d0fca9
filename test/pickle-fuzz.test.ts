/**
 * Fuzzing the pickle decoder (bounded memory and time for any input):
 * random bytes, random opcode sequences and mutated valid pickles either
 * decode to a value or reject with UnpicklingError, never another
 * exception, and never allocate far beyond the input. A hang fails the suite
 * through mocha's timeout. The encoder, fed arbitrary JS values, either
 * writes a pickle the decoder reads or refuses with a TypeError or RangeError.
 */
import { expect } from 'chai';
import fc from 'fast-check';
import { readFileSync } from 'node:fs';
import { UnpicklingError } from 'mpconn';
import { Tuple } from '../src/index.js';
import { pickleDumps as dumps, pickleLoads as loads, PICKLE_OP as OP } from '../src/internal.js';
import { newestPython } from './helpers/python.js';
import { fromHex, pythonLines } from './pickle-helpers.js';

/** Growth of ArrayBuffer memory a single small decode may cause; a length-field allocation would be far more. */
const ALLOCATION_LIMIT = 32 * 1024 * 1024;

function decodeOrReject(bytes: Uint8Array): void {
  const before = process.memoryUsage().arrayBuffers;
  try {
    loads(bytes);
  } catch (err) {
    if (!(err instanceof UnpicklingError)) {
      throw new Error(`loads(${Buffer.from(bytes).toString('hex')}) threw ${(err as Error)?.name}: ${(err as Error)?.message}`, { cause: err });
    }
  }
  expect(process.memoryUsage().arrayBuffers - before).to.be.below(ALLOCATION_LIMIT);
}

const OPCODES = Object.values(OP);

/** A valid opcode followed by a few bytes of argument, often small numbers or text lines. */
const instruction = fc.tuple(
  fc.constantFrom(...OPCODES),
  fc.oneof(
    fc.constant([] as number[]),
    fc.array(fc.integer({ min: 0, max: 3 }), { minLength: 1, maxLength: 8 }),
    fc.array(fc.integer({ min: 0, max: 255 }), { maxLength: 8 }),
    fc.stringMatching(/^[0-9a-z_.'"\\-]{0,6}$/).map((s) => [...Buffer.from(`${s}\n`, 'latin1')]),
  ),
);

/** Values for the corpus of valid pickles to mutate. */
const plainValue = fc.letrec((tie) => ({
  value: fc.oneof(
    { depthSize: 'small' },
    fc.constant(null),
    fc.boolean(),
    fc.integer(),
    fc.bigInt({ min: -(2n ** 100n), max: 2n ** 100n }),
    fc.double(),
    fc.string({ unit: 'binary', maxLength: 10 }),
    fc.uint8Array({ maxLength: 10 }),
    fc.array(tie('value'), { maxLength: 4 }),
    fc.array(tie('value'), { maxLength: 4 }).map((items) => Tuple.from(items)),
    fc.dictionary(fc.string({ maxLength: 4 }), tie('value'), { maxKeys: 4 }),
    fc.array(fc.tuple(fc.integer(), tie('value')), { maxLength: 4 }).map((entries) => new Map(entries)),
    fc.array(fc.integer(), { maxLength: 4 }).map((items) => new Set(items)),
  ),
})).value;

type Mutation = { kind: 'flip' | 'set' | 'insert' | 'delete' | 'truncate' | 'length'; at: number; byte: number };
const mutation: fc.Arbitrary<Mutation> = fc.record({
  kind: fc.constantFrom('flip', 'set', 'insert', 'delete', 'truncate', 'length'),
  at: fc.nat(),
  byte: fc.integer({ min: 0, max: 255 }),
});

function mutate(original: Uint8Array, mutations: Mutation[]): Uint8Array {
  let bytes = Array.from(original);
  for (const { kind, at, byte } of mutations) {
    if (bytes.length === 0) break;
    const i = at % bytes.length;
    switch (kind) {
      case 'flip':
        bytes[i] = bytes[i]! ^ (1 << byte % 8);
        break;
      case 'set':
        bytes[i] = byte;
        break;
      case 'insert':
        bytes.splice(i, 0, byte);
        break;
      case 'delete':
        bytes.splice(i, 1);
        break;
      case 'truncate':
        bytes = bytes.slice(0, i);
        break;
      case 'length': // a huge length or index field
        bytes.splice(i + 1, 4, 0xff, 0xff, 0xff, byte & 0x7f);
        break;
    }
  }
  return Uint8Array.from(bytes);
}

/** Pickles written by CPython (2.7 fixtures, plus protocols 0-5 from a CPython 3 when there is one). */
let cpythonPickles: Uint8Array[] = [];

describe('pickle fuzzing', () => {
  before(async function () {
    const fixtures = JSON.parse(readFileSync(new URL('../../test/fixtures/pickle-py27.json', import.meta.url), 'utf8')) as { hex: string }[];
    cpythonPickles = fixtures.map(({ hex }) => fromHex(hex));
    const py = newestPython(8);
    if (py !== undefined) {
      const lines = await pythonLines(
        py,
        [
          'import collections, datetime, decimal, pickle',
          "values = [None, True, 2**70, -1.5, 'str\\u1234\\ud800', b'\\x00b', bytearray(b'ba'), [1, [2]], (1, 2, 3, 4), {'a': {1: (2,)}},",
          "          {1, 2}, frozenset({3}), 1+2j, collections.OrderedDict(a=1), datetime.date(2024, 5, 17), decimal.Decimal('1.5'),",
          "          [[1]] * 3, {'k': list(range(1100))}]",
          'for v in values:',
          '    for p in range(6): print(pickle.dumps(v, protocol=p).hex())',
        ].join('\n'),
      );
      cpythonPickles.push(...lines.map(fromHex));
    }
  });

  it('random bytes decode or reject with UnpicklingError', () => {
    fc.assert(
      fc.property(fc.uint8Array({ maxLength: 300 }), (bytes) => decodeOrReject(bytes)),
      { numRuns: 4000 },
    );
  });

  it('random bytes after a protocol header decode or reject with UnpicklingError', () => {
    fc.assert(
      fc.property(fc.integer({ min: 0, max: 6 }), fc.uint8Array({ maxLength: 300 }), (protocol, body) => {
        decodeOrReject(Uint8Array.from([0x80, protocol, ...body]));
      }),
      { numRuns: 3000 },
    );
  });

  it('random sequences of valid opcodes decode or reject with UnpicklingError', () => {
    fc.assert(
      fc.property(fc.array(instruction, { maxLength: 60 }), (instructions) => {
        const bytes = instructions.flatMap(([op, arg]) => [op, ...arg]);
        decodeOrReject(Uint8Array.from([...bytes, OP.STOP]));
      }),
      { numRuns: 4000 },
    );
  });

  it('mutated pickles written by mpconn decode or reject with UnpicklingError', () => {
    fc.assert(
      fc.property(plainValue, fc.array(mutation, { minLength: 1, maxLength: 4 }), (value, mutations) => {
        decodeOrReject(mutate(dumps(value), mutations));
      }),
      { numRuns: 3000 },
    );
  });

  it('mutated pickles written by CPython (protocols 0-5) decode or reject with UnpicklingError', () => {
    expect(cpythonPickles.length).to.be.above(0);
    fc.assert(
      fc.property(fc.nat(), fc.array(mutation, { minLength: 1, maxLength: 4 }), (pick, mutations) => {
        decodeOrReject(mutate(cpythonPickles[pick % cpythonPickles.length]!, mutations));
      }),
      { numRuns: 4000 },
    );
  });

  it('every unmutated CPython pickle decodes', () => {
    for (const bytes of cpythonPickles) expect(() => loads(bytes)).to.not.throw();
  });

  it('the encoder writes a readable pickle or refuses with TypeError/RangeError, for any JS value', () => {
    fc.assert(
      fc.property(
        fc.anything({
          withBigInt: true,
          withMap: true,
          withSet: true,
          withTypedArray: true,
          withNullPrototype: true,
          withBoxedValues: true,
          withDate: true,
          withSparseArray: true,
          withObjectString: true,
        }),
        (value) => {
          let bytes: Uint8Array;
          try {
            bytes = dumps(value);
          } catch (err) {
            expect(err).to.satisfy((e: unknown) => e instanceof TypeError || e instanceof RangeError);
            return;
          }
          expect(() => loads(bytes)).to.not.throw();
        },
      ),
      { numRuns: 1500 },
    );
  });
});
