/**
 * The manager client against unmodified CPython manager servers, every
 * CPython 3.6-3.13 found: a SyncManager (the shared suite), a BaseManager with
 * registered callables, a server killed mid-call, and proxies left to the
 * garbage collector.
 */
import { spawn } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { expect } from 'chai';
import {
  AuthenticationError,
  ConnectionStateError,
  EOFError,
  kwargs,
  Listener,
  ManagerClient,
  ProtocolError,
  Proxy,
  PyGlobal,
  PyObject,
  RemoteError,
  Tuple,
  UnpicklingError,
  type Address,
  type AnyProxy,
  type Connection,
} from 'mpconn';
import { childLines, type ChildLines } from './helpers/child-lines.js';
import { escapes } from './helpers/escapes.js';
import { expectPyError, managerClientSuite, type StartedServer } from './helpers/manager-suite.js';
import { MPCONN, runNode } from './helpers/node.js';
import { forEachPython, newestPython, type Python, runPython } from './helpers/python.js';
import { rejectionOf, stillPending, within } from './helpers/wire.js';

const SECOND = 5_000; // safety net for "must settle"; never a timing assertion
const FIXTURE = fileURLToPath(new URL('../../test/fixtures/manager-client-server.py', import.meta.url));
const AUTHKEY = 'manager-client-test';


interface PythonManager extends StartedServer {
  child: ChildLines;
}

/** Starts the fixture's manager server ('base' or 'sync') under `py`; it prints its address. */
async function startPythonManager(py: Python, mode: 'base' | 'sync'): Promise<PythonManager> {
  const child = childLines(
    spawn(py.executable, ['-u', FIXTURE, mode], {
      stdio: ['pipe', 'pipe', 'pipe'],
      env: { ...process.env, MPCONN_AUTHKEY: AUTHKEY, MPCONN_TEST_TIMEOUT: '300' },
    }),
    `python ${py.version} manager (${mode})`,
  );
  const [host, port] = JSON.parse(await within(child.line(), 20_000, 'the manager address')) as [string, number];
  const address: Address = [host, port];
  return {
    child,
    address,
    authkey: AUTHKEY,
    stop: async () => {
      child.kill();
      await child.exit();
    },
  };
}

forEachPython(undefined, (py) => {
  describe(`ManagerClient against CPython ${py.version}`, function () {
    this.timeout(60_000);
    let sync: PythonManager;
    let base: PythonManager;

    before(async () => {
      [sync, base] = await Promise.all([startPythonManager(py, 'sync'), startPythonManager(py, 'base')]);
    });

    after(async () => {
      await Promise.all([sync?.stop(), base?.stop()]);
    });

    describe('a SyncManager server', () => {
      managerClientSuite(async () => ({ address: sync.address, authkey: AUTHKEY, stop: async () => {} }), {
        emptyType: py.minor >= 7 ? '_queue.Empty' : 'queue.Empty',
      });

      it("dict.__iter__ answers '#PROXY': an Iterator proxy, ending in StopIteration", async () => {
        await using manager = await ManagerClient.connect(sync.address, { authkey: AUTHKEY });
        const d = await manager.dict(new Map<unknown, unknown>([['a', 1], [2, 'b']]));
        const start = await manager.numberOfObjects();
        const it = (await d.__iter__()) as AnyProxy;
        expect(it).to.be.instanceOf(Proxy);
        expect(it.typeid).to.equal('Iterator');
        expect(it.exposed).to.include('__next__');
        expect(await manager.numberOfObjects()).to.equal(start + 1);
        expect(await it.__next__()).to.equal('a');
        expect(await it.__next__()).to.equal(2);
        const end = await rejectionOf(it.__next__());
        expect(end).to.be.instanceOf(RemoteError);
        expect((end as RemoteError).pyType).to.equal('builtins.StopIteration');
        await manager.release(it);
        expect(await manager.numberOfObjects()).to.equal(start);
      });
    });

    describe('a SyncManager server, two Node clients', () => {
      it('Condition: one client waits, the other acquires, notifies and releases; an aborted Event.wait leaves the other waiting', async () => {
        await using first = await ManagerClient.connect(sync.address, { authkey: AUTHKEY });
        await using second = await ManagerClient.connect(sync.address, { authkey: AUTHKEY });
        // A registered Condition is not typeid 'Condition': pinned by hand, as a Python thread would hold it.
        await using mine = await first.create('shared_condition', [], {}, { pinned: true });
        await using theirs = await second.create('shared_condition', [], {}, { pinned: true });
        expect(theirs.id).to.equal(mine.id);
        expect(await mine.acquire()).to.equal(true);
        const waiting = mine.wait(30); // releases the lock on the server while it waits
        // The second client gets the lock only once the first waits.
        expect(await within(theirs.acquire(), SECOND, 'acquire while the other waits')).to.equal(true);
        expect(await stillPending(waiting, 50)).to.equal(true);
        await theirs.notify();
        expect(await stillPending(waiting, 50)).to.equal(true); // notified, but the lock is still the second's
        await theirs.release();
        expect(await within(waiting, SECOND, 'the notified wait')).to.equal(true);
        await mine.release();
        expectPyError(await rejectionOf(theirs.release()), 'builtins.RuntimeError'); // not its lock now

        // The typed proxies take a trailing kwargs() where Python takes keywords.
        await using ownEvent = await first.Event();
        expect(await ownEvent.wait(kwargs({ timeout: 0.01 }))).to.equal(false);
        await using own = await first.Condition();
        await own.acquire();
        expect(await own.wait(kwargs({ timeout: 0.01 }))).to.equal(false);
        expect(await own.notify(kwargs({ n: 2 }))).to.equal(null);
        await own.release();
        await using l = await first.list([1, 'a']);
        expect(await l.__add__([2])).to.deep.equal([1, 'a', 2]);
        expect(await l.__mul__(2)).to.deep.equal([1, 'a', 1, 'a']);

        await using setter = await first.create('shared_event');
        await setter.clear();
        await using ev = await second.create('shared_event');
        const kept = ev.wait();
        const controller = new AbortController();
        const dropped = ev.callMethod('wait', [], {}, { signal: controller.signal });
        const reason = new Error('no longer waiting');
        expect(await stillPending(Promise.race([kept, dropped]), 50)).to.equal(true);
        controller.abort(reason);
        expect(await rejectionOf(dropped)).to.equal(reason);
        expect(await stillPending(kept, 50)).to.equal(true);
        await setter.set();
        expect(await within(kept, SECOND, 'the wait that was not aborted')).to.equal(true);
        await setter.clear();

        // maxConnections defaults to 16: sixteen blocked waits hold every call connection, a 17th call waits for one.
        await using third = await ManagerClient.connect(sync.address, { authkey: AUTHKEY });
        await using ev3 = await third.create('shared_event');
        const sixteen = Array.from({ length: 16 }, () => ev3.wait());
        const seventeenth = ev3.is_set();
        expect(await stillPending(seventeenth, 100)).to.equal(true);
        await setter.set();
        expect(await within(Promise.all([...sixteen, seventeenth]), SECOND, 'the calls after set')).to.deep.equal(Array(17).fill(true));
        await setter.clear();
      });
    });

    describe('a BaseManager server with registered callables', () => {
      let manager: ManagerClient;
      before(async () => {
        manager = await ManagerClient.connect(base.address, { authkey: AUTHKEY });
      });
      after(async () => {
        await manager?.close();
      });

      it("the docs' get_queue: one shared queue, one object with two references", async () => {
        await using producer = await ManagerClient.connect(base.address, { authkey: AUTHKEY });
        const start = await manager.numberOfObjects();
        const theirs = await producer.create('get_queue');
        const mine = await manager.create('get_queue');
        expect(mine.id).to.equal(theirs.id);
        expect(await manager.numberOfObjects()).to.equal(start + 1);
        expect(await manager.debugInfo()).to.include(`${mine.id}:       refcount=2`);
        await theirs.put('hello');
        expect(await mine.get(kwargs({ timeout: 5 }))).to.equal('hello');
        await producer.release(theirs);
        expect(await manager.debugInfo()).to.include(`${mine.id}:       refcount=1`);
        await manager.release(mine);
        expect(await manager.numberOfObjects()).to.equal(start);
      });

      it('a custom class: methods with positional and keyword arguments return values', async () => {
        await using thing = await manager.create('Thing', ['first']);
        expect(thing.exposed).to.include.members(['add', 'echo', 'child', 'get_name']);
        expect(await thing.get_name()).to.equal('first');
        expect(await thing.add(2, kwargs({ b: 3 }))).to.equal(5);
        expect(await thing.add('a', 'b')).to.equal('ab');
        expect(await thing.callMethod('add', [1], { b: 2.5 })).to.equal(3.5);
        await using named = await manager.create('Thing', [], { name: 'kw' });
        expect(await named.get_name()).to.equal('kw');
      });

      it('Python receives the types Node sent (tuple, list, float, int, bigint, bytes, None, bool, dict keys, kwargs)', async () => {
        await using thing = await manager.create('Thing');
        const seen = await thing.python_repr(
          new Tuple(1, 2),
          [1, 2],
          1.5,
          3,
          2n ** 70n,
          new Uint8Array([1, 2]),
          null,
          true,
          new Map<unknown, unknown>([[1, 'x'], [new Tuple('a', 1), null]]),
          { s: 'é' },
          kwargs({ k: 'v', n: 1 }),
        );
        expect(seen).to.equal(
          "((1, 2), [1, 2], 1.5, 3, 1180591620717411303424, b'\\x01\\x02', None, True, {1: 'x', ('a', 1): None}, {'s': 'é'}) " +
            "[('k', 'v'), ('n', 1)]",
        );
        const value = [new Tuple(1, 'a'), new Map([[2, 3]]), 2n ** 64n, new Uint8Array([9])];
        const back = (await thing.echo(value)) as unknown[];
        expect(Array.from(back[0] as unknown[])).to.deep.equal([1, 'a']);
        expect(back[1]).to.deep.equal(new Map([[2, 3]]));
        expect(back[2]).to.equal(2n ** 64n);
        expect([...(back[3] as Uint8Array)]).to.deep.equal([9]);
      });

      it('a built-in exception arrives as RemoteError with the exception and its pyType', async () => {
        await using thing = await manager.create('Thing');
        const err = (await rejectionOf(thing.fail_builtin())) as RemoteError;
        expect(err).to.be.instanceOf(RemoteError);
        expect(err.code).to.equal('ERR_REMOTE');
        expect(err.kind).to.equal('#ERROR');
        expect(err.pyType).to.equal('builtins.KeyError');
        expect(err.exception!.args).to.deep.equal(['missing']);
        expect(err.traceback).to.equal(null);
      });

      it('a custom exception arrives with its own class name and arguments', async () => {
        await using thing = await manager.create('Thing');
        const err = (await rejectionOf(thing.fail_custom('boom'))) as RemoteError;
        expect(err.pyType).to.equal('__main__.CustomError');
        expect(err.exception!.args).to.deep.equal(['boom']);
        expect(err.message).to.include('boom');
      });

      it("a method_to_typeid method answers '#PROXY': a new Proxy holding the server's one reference", async () => {
        await using thing = await manager.create('Thing', ['parent']);
        const start = await manager.numberOfObjects();
        const kid = (await thing.child('kid')) as AnyProxy;
        expect(kid).to.be.instanceOf(Proxy);
        expect(kid.typeid).to.equal('Child');
        expect(kid.exposed).to.include.members(['get_name', 'add']);
        expect(kid.id).to.not.equal(thing.id);
        expect(await kid.get_name()).to.equal('kid');
        expect(await manager.numberOfObjects()).to.equal(start + 1);
        expect(await manager.debugInfo()).to.include(`${kid.id}:       refcount=1`);
        await manager.release(kid);
        expect(await manager.numberOfObjects()).to.equal(start);
      });

      it("a result the server cannot pickle is a RemoteError '#UNSERIALIZABLE' with the traceback", async () => {
        await using thing = await manager.create('Thing');
        const err = (await rejectionOf(thing.unpicklable())) as RemoteError;
        expect(err).to.be.instanceOf(RemoteError);
        expect(err.kind).to.equal('#UNSERIALIZABLE');
        expect(err.traceback).to.be.a('string').and.match(/pickle|lock/i);
        expect(await thing.add(1, 1)).to.equal(2); // the call connection still works
      });

      it('a method that is not exposed is a RemoteError', async () => {
        await using thing = await manager.create('Thing');
        const err = (await rejectionOf(thing.callMethod('__init__', ['x']))) as RemoteError;
        expect(err).to.be.instanceOf(RemoteError);
        expect(err.kind).to.equal('#TRACEBACK');
        expect(err.traceback).to.match(/not in exposed/);
      });
    });

    describe('a server that dies mid-call', () => {
      it('rejects the calls in flight promptly (EOFError), then new calls and control requests; close() still resolves', async () => {
        const doomed = await startPythonManager(py, 'sync');
        const manager = await ManagerClient.connect(doomed.address, { authkey: AUTHKEY });
        const small = await ManagerClient.connect(doomed.address, { authkey: AUTHKEY, maxConnections: 1 });
        try {
          const sq = await small.Queue();
          await sq.qsize();
          const queuedBehind = [sq.get(), sq.qsize(), sq.put(1)]; // the last two wait for the one call connection
          const queuedErrors = Promise.all(queuedBehind.map((p) => rejectionOf(p)));
          const q = await manager.Queue();
          const lock = await manager.Lock();
          await lock.acquire();
          const cond = await manager.Condition(); // pinned: its wait() is on a connection of its own
          await cond.acquire();
          await q.qsize(); // a call connection is open and idle now: the first get() goes out at once
          const inFlight = [q.get(), q.get(), lock.acquire(), cond.wait(), q.get(kwargs({ timeout: 60 }))];
          // Lets the server read the requests (else the kernel may answer the kill with a reset instead of an EOF).
          expect(await stillPending(Promise.race(inFlight), 200)).to.equal(true);
          await doomed.stop();
          const errors = await within(Promise.all(inFlight.map((p) => rejectionOf(p))), 10_000, 'calls to a dead server');
          expect(errors[0]).to.be.instanceOf(EOFError);
          for (const err of errors) {
            expect(err).to.be.instanceOf(Error);
            expect(err).to.not.be.instanceOf(RemoteError);
          }
          for (const err of await within(queuedErrors, 10_000, 'calls queued for a connection')) expect(err).to.be.instanceOf(Error).and.not.be.instanceOf(RemoteError);
          expect(await within(rejectionOf(q.qsize()), 10_000, 'a new call')).to.be.instanceOf(Error);
          expect(await within(rejectionOf(manager.numberOfObjects()), 10_000, 'a control request')).to.be.instanceOf(Error);
        } finally {
          await within(Promise.all([manager.close(), small.close()]), 10_000, 'close() with the server gone');
          await doomed.stop();
        }
      });
    });

    describe('shutdown()', () => {
      it('stops the server (the Python process exits) and closes the client', async () => {
        const doomed = await startPythonManager(py, 'sync');
        try {
          const manager = await ManagerClient.connect(doomed.address, { authkey: AUTHKEY });
          await manager.Queue();
          await manager.shutdown();
          const exited = await within(doomed.child.exit(), 15_000, 'the server process to exit');
          expect(exited.code).to.equal(0);
          expect(await rejectionOf(manager.Queue())).to.be.instanceOf(ConnectionStateError);
          await manager.close();
        } finally {
          await doomed.stop();
        }
      });
    });

    describe('proxies dropped unreleased', () => {
      it('are decref\'d once collected: numberOfObjects() returns to its start (child node --expose-gc)', async () => {
        const child = runNode(
          `
          import { ManagerClient } from ${JSON.stringify(MPCONN)};
          const [host, port] = JSON.parse(process.argv[1]);
          const manager = await ManagerClient.connect([host, port], { authkey: ${JSON.stringify(AUTHKEY)} });
          const start = await manager.numberOfObjects();
          async function make() {
            for (let i = 0; i < 5; i++) await (await manager.Queue()).put(i);
            await (await manager.RLock()).acquire();
          }
          await make();
          const made = await manager.numberOfObjects();
          let now = made;
          for (let i = 0; i < 200 && now !== start; i++) {
            globalThis.gc();
            await new Promise((resolve) => setTimeout(resolve, 25));
            now = await manager.numberOfObjects();
          }
          console.log(JSON.stringify({ start, made, now }));
          await manager.close();
          `,
          [JSON.stringify(sync.address)],
          ['--expose-gc'],
        );
        try {
          const result = JSON.parse(await within(child.line(), 30_000, 'the gc child')) as Record<string, number>;
          expect(result.made).to.equal(result.start! + 6);
          expect(result.now).to.equal(result.start);
          expect((await child.exit()).code).to.equal(0);
        } finally {
          child.kill();
        }
      });
    });
  });
});

/** What a fake manager server answers one request with: a reply to send, or a function that does what it likes. */
type FakeAnswer = unknown | ((conn: Connection, request: unknown[]) => Promise<void>);

interface FakeManager {
  address: Address;
  /** Answers by method name (`create`, `dummy`, a proxy method …); anything else gets `('#RETURN', None)`. */
  answers: Map<string, FakeAnswer>;
  /** Method names in the order requests arrived. */
  seen: string[];
  close(): Promise<void>;
}

/** Call inside a `describe`: one fake manager serves all its tests; its answers are cleared after each. */
function fakeManagerForSuite(authkey: string | null): FakeManager {
  const fake = {} as FakeManager;
  before(async () => {
    Object.assign(fake, await fakeManager(authkey));
  });
  after(async () => {
    await fake.close?.();
  });
  afterEach(() => fake.answers.clear());
  return fake;
}

/** A Node listener that speaks the handshake (with `authkey`) and then whatever `answers` says. */
async function fakeManager(authkey: string | null): Promise<FakeManager> {
  const listener = await Listener.listen(['127.0.0.1', 0], { serializer: 'pickle', authkey });
  const answers = new Map<string, FakeAnswer>();
  const seen: string[] = [];
  const conns = new Set<Connection>();
  const serving = (async () => {
    for await (const conn of listener) {
      conns.add(conn);
      void (async () => {
        try {
          for (;;) {
            const request = (await conn.recv()) as unknown[];
            const method = request[1] as string;
            seen.push(method);
            const answer = answers.has(method) ? answers.get(method) : new Tuple('#RETURN', null);
            if (typeof answer === 'function') await (answer as (c: Connection, r: unknown[]) => Promise<void>)(conn, request);
            else await conn.send(answer);
          }
        } catch {
          conn.destroy();
        } finally {
          conns.delete(conn);
        }
      })();
    }
  })();
  return {
    address: listener.address,
    answers,
    seen,
    async close() {
      await listener.close();
      for (const conn of conns) conn.destroy();
      await serving.catch(() => undefined);
    },
  };
}

const token = (typeid: unknown, address: unknown, id: unknown): PyObject =>
  new PyObject(new PyGlobal('multiprocessing.managers', 'Token'), [], { kind: 'newobj', state: new Tuple(typeid, address, id) });
const created = (ident: string, ...exposed: string[]): Tuple => new Tuple('#RETURN', new Tuple(ident, Tuple.from(exposed)));
const never = async (): Promise<void> => {};

describe('ManagerClient argument checks (before anything is sent)', () => {
  it('bad address, authkey or option types are TypeError / RangeError; a missing authkey is a TypeError', async () => {
    const inet: Address = ['127.0.0.1', 1]; // nothing listens there: a check that passed would show as ECONNREFUSED
    const cases: [string, Promise<unknown>, typeof TypeError | typeof RangeError][] = [
      ['no options', ManagerClient.connect(inet), TypeError],
      ['no authkey', ManagerClient.connect(inet, {} as never), TypeError],
      ['authkey undefined', ManagerClient.connect(inet, { authkey: undefined } as never), TypeError],
      ['options not an object', ManagerClient.connect(inet, 'key' as never), TypeError],
      ['no address', ManagerClient.connect(undefined as never, { authkey: 'k' }), TypeError],
      ['a number as address', ManagerClient.connect(42 as never, { authkey: 'k' }), TypeError],
      ['port not a number', ManagerClient.connect(['127.0.0.1', 'x'] as never, { authkey: 'k' }), RangeError],
      ['port out of range', ManagerClient.connect(['127.0.0.1', 70000], { authkey: 'k' }), RangeError],
      ['authkey a number', ManagerClient.connect(inet, { authkey: 5 } as never), TypeError],
      ['timeout a string', ManagerClient.connect(inet, { authkey: 'k', timeout: '1' } as never), TypeError],
      ['timeout NaN', ManagerClient.connect(inet, { authkey: 'k', timeout: NaN }), RangeError],
      ['signal not a signal', ManagerClient.connect(inet, { authkey: 'k', signal: {} } as never), TypeError],
      ['unknown family', ManagerClient.connect(inet, { authkey: 'k', family: 'AF_X' } as never), TypeError],
      ['family not the address', ManagerClient.connect(inet, { authkey: 'k', family: 'AF_UNIX' }), TypeError],
      ['tls not an object', ManagerClient.connect(inet, { authkey: 'k', tls: 5 } as never), TypeError],
      ['tls on a Unix socket', ManagerClient.connect('/tmp/mpconn-no-such.sock', { authkey: 'k', tls: {} }), TypeError],
      ['maxConnections a string', ManagerClient.connect(inet, { authkey: 'k', maxConnections: '2' } as never), TypeError],
      ['maxConnections 0', ManagerClient.connect(inet, { authkey: 'k', maxConnections: 0 }), RangeError],
      ['maxConnections 1.5', ManagerClient.connect(inet, { authkey: 'k', maxConnections: 1.5 }), RangeError],
    ];
    for (const [what, promise, type] of cases) {
      const err = await rejectionOf(promise);
      expect(err, `${what}: ${String(err)}`).to.be.instanceOf(type);
    }
  });
});

describe('ManagerClient against a fake manager server (malformed replies, no authkey)', () => {
  const fake = fakeManagerForSuite(null);

  it('connects with authkey: null to a server without one', async () => {
    await using manager = await ManagerClient.connect(fake.address, { authkey: null });
    expect(manager.address).to.deep.equal(fake.address);
  });

  it("a reply that is not (kind, result) is a ProtocolError ERR_BAD_REPLY, and the client stays usable", async () => {
    await using manager = await ManagerClient.connect(fake.address, { authkey: null });
    fake.answers.set('create', created('abc', 'get', 'put'));
    const proxy = await manager.create('Anything');
    expect(proxy.exposed).to.deep.equal(['get', 'put']);
    fake.answers.set('get', 'not a reply');
    const err = await rejectionOf(proxy.get());
    expect(err).to.be.instanceOf(ProtocolError);
    expect(err.code).to.equal('ERR_BAD_REPLY');
    fake.answers.set('get', new Tuple('#PROXY', 'no token here'));
    expect((await rejectionOf(proxy.get())).code).to.equal('ERR_BAD_REPLY');
    fake.answers.set('number_of_objects', new Tuple('#RETURN', 'many'));
    expect((await rejectionOf(manager.numberOfObjects())).code).to.equal('ERR_BAD_REPLY');
    fake.answers.set('create', new Tuple('#RETURN', 42));
    expect((await rejectionOf(manager.create('Anything'))).code).to.equal('ERR_BAD_REPLY');
    fake.answers.set('put', new Tuple('#RETURN', 'fine'));
    expect(await proxy.put(1)).to.equal('fine');
  });

  it("'#TRACEBACK' from a control request is a RemoteError with the text", async () => {
    await using manager = await ManagerClient.connect(fake.address, { authkey: null });
    fake.answers.set('debug_info', new Tuple('#TRACEBACK', 'Traceback (most recent call last):\nValueError: nope'));
    const err = (await rejectionOf(manager.debugInfo())) as RemoteError;
    expect(err).to.be.instanceOf(RemoteError);
    expect(err.kind).to.equal('#TRACEBACK');
    expect(err.traceback).to.match(/ValueError: nope/);
  });
});

describe('ManagerClient against a hostile manager server (handshake, then garbage)', () => {
  const KEY = 'hostile-server-key';
  const fake = fakeManagerForSuite(KEY);
  const unhandled = escapes();

  it('bytes that are no pickle, a non-tuple reply, a huge reply: clear errors, and the client stays usable', async () => {
    await using manager = await ManagerClient.connect(fake.address, { authkey: KEY });
    fake.answers.set('create', created('obj1', 'garbage', 'listy', 'huge', 'ok', 'empty'));
    const obj = await manager.create('Hostile');
    fake.answers.set('garbage', (conn: Connection) => conn.sendBytes(Buffer.from('\x80\x04this is no pickle at all', 'latin1')));
    fake.answers.set('listy', [1, 2, 3]);
    fake.answers.set('empty', (conn: Connection) => conn.sendBytes(new Uint8Array(0)));
    const huge = new Uint8Array(16 << 20).fill(7);
    fake.answers.set('huge', new Tuple('#RETURN', huge));
    fake.answers.set('ok', new Tuple('#RETURN', 'still fine'));
    const garbage = await rejectionOf(obj.garbage());
    expect(garbage).to.be.instanceOf(UnpicklingError);
    expect((await rejectionOf(obj.listy())).code).to.equal('ERR_BAD_REPLY');
    expect(await rejectionOf(obj.empty())).to.be.instanceOf(UnpicklingError);
    const big = (await obj.huge()) as Uint8Array;
    expect(big.byteLength).to.equal(huge.byteLength);
    expect(big[big.byteLength - 1]).to.equal(7);
    expect(await obj.ok()).to.equal('still fine');
    fake.answers.set('dummy', [1, 2]);
    expect((await rejectionOf(ManagerClient.connect(fake.address, { authkey: KEY }))).code).to.equal('ERR_BAD_REPLY');
    expect((await rejectionOf(ManagerClient.connect(fake.address, { authkey: 'not the key' })))).to.be.instanceOf(AuthenticationError);
  });

  it("a '#PROXY' reply with a malformed Token is ERR_BAD_REPLY; a proxy inside a value stays an inert PyObject", async () => {
    await using manager = await ManagerClient.connect(fake.address, { authkey: KEY });
    fake.answers.set('create', created('obj2', 'child', 'nested'));
    const obj = await manager.create('Hostile');
    const address = new Tuple('127.0.0.1', 1);
    const bad: unknown[] = [
      new Tuple(new Tuple('x'), new PyObject(new PyGlobal('multiprocessing.managers', 'Token'), [], { kind: 'newobj', state: new Tuple('T', address) })),
      new Tuple(new Tuple('x'), token(7, address, 'id')),
      new Tuple(new Tuple('x'), token('T', address, 7)),
      new Tuple(new Tuple('x'), token('T', 12, 'id')),
      new Tuple(new Tuple('x'), new PyObject(new PyGlobal('os', 'system'), ['echo no'])),
      new Tuple(new Tuple(1, 2), token('T', address, 'id')),
      new Tuple(token('T', address, 'id')),
      null,
    ];
    for (const result of bad) {
      fake.answers.set('child', new Tuple('#PROXY', result));
      const err = await rejectionOf(obj.child());
      expect(err, String(err)).to.be.instanceOf(ProtocolError);
      expect(err.code).to.equal('ERR_BAD_REPLY');
    }
    // A well-formed one works: the address in the Token is ignored (the proxy's is the client's).
    fake.answers.set('child', new Tuple('#PROXY', new Tuple(new Tuple('ping'), token('Kid', new Tuple('10.9.9.9', 9), 'kid1'))));
    const kid = (await obj.child()) as AnyProxy;
    expect([kid.typeid, kid.id, kid.exposed]).to.deep.equal(['Kid', 'kid1', ['ping']]);
    fake.answers.set('ping', new Tuple('#RETURN', 'pong'));
    expect(await kid.ping()).to.equal('pong');
    const rebuilt = new PyObject(new PyGlobal('multiprocessing.managers', 'RebuildProxy'), [
      new PyGlobal('multiprocessing.managers', 'AutoProxy'),
      token('list', address, 'inner'),
      'pickle',
      { exposed: new Tuple('append') },
    ]);
    fake.answers.set('nested', new Tuple('#RETURN', { inner: rebuilt }));
    const value = (await obj.nested()) as { inner: unknown };
    expect(value.inner).to.be.instanceOf(PyObject);
    expect(value.inner).to.not.be.instanceOf(Proxy);
    expect(((value.inner as PyObject).callable as PyGlobal).name).to.equal('RebuildProxy');
    fake.seen.length = 0;
    await manager.release(kid);
    expect(fake.seen).to.deep.equal(['decref']); // the nested one holds no reference: nothing to decref
  });

  it('a reply that never comes: the caller\'s timeout or signal ends the wait, connect()/create()/close() are bounded by options.timeout', async () => {
    fake.answers.set('dummy', never);
    const connecting = await rejectionOf(within(ManagerClient.connect(fake.address, { authkey: KEY, timeout: 200 }), SECOND, 'connect'));
    expect(connecting.name).to.equal('TimeoutError');
    const reason = new Error('gave up');
    const controller = new AbortController();
    const aborted = ManagerClient.connect(fake.address, { authkey: KEY, signal: controller.signal, timeout: null });
    expect(await stillPending(aborted, 50)).to.equal(true);
    controller.abort(reason);
    expect(await rejectionOf(aborted)).to.equal(reason);
    fake.answers.delete('dummy');

    const manager = await ManagerClient.connect(fake.address, { authkey: KEY, timeout: 300 });
    fake.answers.set('create', created('obj3', 'hang', 'ok'));
    const obj = await manager.create('Hostile');
    fake.answers.set('hang', never);
    fake.answers.set('ok', new Tuple('#RETURN', 'ok'));
    const hung = obj.hang(); // no timeout of its own: waits (a Python method may block that long)
    const timedOut = await rejectionOf(within(obj.callMethod('hang', [], {}, { timeout: 50 }), SECOND, 'the timed-out call'));
    expect(timedOut).to.be.instanceOf(DOMException);
    expect(timedOut.name).to.equal('TimeoutError');
    expect(await obj.ok()).to.equal('ok');
    expect(await stillPending(hung, 50)).to.equal(true);
    fake.answers.set('create', never);
    const creating = await rejectionOf(within(manager.create('Hostile'), SECOND, 'create'));
    expect(creating.name).to.equal('TimeoutError');
    fake.answers.set('decref', never);
    await within(manager.close(), SECOND, 'close() with decrefs never answered');
    expect(await rejectionOf(hung)).to.be.instanceOf(ConnectionStateError);
  });

  const newest = newestPython()?.minor;
  forEachPython(newest === undefined ? undefined : { only: [newest] }, (py) => {
    it(`a call whose request cannot be sent (the server stopped reading) still times out at once (CPython ${py.version} Listener)`, async () => {
      // A multiprocessing.connection Listener that answers each first request, then never reads that connection again.
      const deaf = runPython(
        py,
        `
import sys, threading, os
from multiprocessing.connection import Listener
threading.Timer(60, os._exit, (3,)).start()
listener = Listener(('127.0.0.1', 0), authkey=sys.argv[1].encode())
print(listener.address[1])
kept = []
while True:
    conn = listener.accept()
    _, method, _, _ = conn.recv()
    conn.send(('#RETURN', ('deaf1', ('put', 'qsize')) if method == 'create' else None))
    kept.append(conn)
`,
        [KEY],
      );
      try {
        const port = Number(await within(deaf.line(), 20_000, 'the deaf listener'));
        await using manager = await ManagerClient.connect(['127.0.0.1', port], { authkey: KEY });
        const q = await manager.create('Queue');
        const request = new Uint8Array(64 << 20); // more than the kernel buffers: the send waits for a read that never comes
        const timedOut = await rejectionOf(within(q.callMethod('put', [request], {}, { timeout: 200 }), SECOND, 'the stalled put'));
        expect(timedOut.name).to.equal('TimeoutError');
        const reason = new Error('stop sending');
        const controller = new AbortController();
        const aborted = q.callMethod('put', [request], {}, { signal: controller.signal });
        expect(await stillPending(aborted, 100)).to.equal(true);
        controller.abort(reason);
        expect(await within(rejectionOf(aborted), SECOND, 'the aborted put')).to.equal(reason);
      } finally {
        deaf.kill();
        await deaf.exit();
      }
    });
  });

  it('no unhandled rejection came out of any of it', async () => {
    await unhandled.check();
  });
});
