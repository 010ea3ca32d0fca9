/**
 * The manager client's checks against any server that serves SyncManager's
 * typeids: a CPython `SyncManager` (test/managers-client.test.ts), or the
 * Node `ManagerServer`. Each check goes through the Python semantics of the
 * object behind the proxy.
 *
 * Besides SyncManager's typeids, the server must register two shared objects,
 * so that two clients can reach the same one (a Python program would hand a
 * proxy over; a Node client cannot pickle one):
 *   - `shared_event`: one `threading.Event` (every create returns the same one),
 *   - `shared_barrier`: one `threading.Barrier(2)`, exposing what Python's
 *     `BarrierProxy` does (`__getattribute__`, `wait`, `abort`, `reset`).
 * The Python fixture registers them with `EventProxy` and `BarrierProxy`; a Node
 * `ManagerServer` with `register('shared_barrier', () => barrier, { exposed: [...] })`.
 */
import { expect } from 'chai';
import {
  AuthenticationError,
  ConnectionStateError,
  kwargs,
  ManagerClient,
  Proxy,
  RemoteError,
  Tuple,
  type Address,
  type AnyProxy,
} from 'mpconn';
import { rejectionOf, stillPending, within } from './wire.js';

export interface StartedServer {
  address: Address;
  authkey: string;
  /** Stops the server (and waits for it). */
  stop(): Promise<void>;
}

export interface SuiteOptions {
  /** The class name `queue.Empty` arrives as (`'_queue.Empty'` from CPython 3.7+). Default: either. */
  emptyType?: string;
}

/** `err` is a Python exception of type `pyType` (e.g. 'builtins.KeyError') raised by the served method. */
export function expectPyError(err: unknown, pyType: string): RemoteError {
  expect(err).to.be.instanceOf(RemoteError);
  expect((err as RemoteError).kind).to.equal('#ERROR');
  expect((err as RemoteError).pyType).to.equal(pyType);
  return err as RemoteError;
}

const SECOND = 5_000; // safety net for "must settle"; never a timing assertion

export function managerClientSuite(startServer: () => Promise<StartedServer>, suiteOptions: SuiteOptions = {}): void {
  let server: StartedServer;
  let manager: ManagerClient;
  let other: ManagerClient;

  before(async () => {
    server = await startServer();
    manager = await ManagerClient.connect(server.address, { authkey: server.authkey });
    other = await ManagerClient.connect(server.address, { authkey: server.authkey });
  });

  after(async () => {
    await manager?.close();
    await other?.close();
    await server?.stop();
  });

  function expectEmpty(err: unknown): void {
    expect(err).to.be.instanceOf(RemoteError);
    const remote = err as RemoteError;
    expect(remote.kind).to.equal('#ERROR');
    if (suiteOptions.emptyType !== undefined) expect(remote.pyType).to.equal(suiteOptions.emptyType);
    else expect(remote.pyType).to.match(/^_?queue\.Empty$/);
    expect(remote.exception).to.not.equal(null);
  }

  describe('connect', () => {
    it('rejects a wrong authkey with AuthenticationError', async () => {
      const err = await rejectionOf(ManagerClient.connect(server.address, { authkey: server.authkey + '-wrong' }));
      expect(err).to.be.instanceOf(AuthenticationError);
    });

    it('requires options.authkey (TypeError without it)', async () => {
      const err = await rejectionOf(ManagerClient.connect(server.address, {} as never));
      expect(err).to.be.instanceOf(TypeError);
      expect(String(err.message)).to.match(/authkey/);
    });

    it('keeps the address it was given', () => {
      expect(manager.address).to.deep.equal(server.address);
    });
  });

  describe('Queue', () => {
    it('put/get in order, qsize, empty, and get(timeout) raising queue.Empty', async () => {
      await using q = await manager.Queue();
      expect(q).to.be.instanceOf(Proxy);
      expect(q.typeid).to.equal('Queue');
      expect(q.exposed).to.include.members(['put', 'get', 'qsize']);
      expect(await q.empty()).to.equal(true);
      await q.put('a');
      await q.put('b');
      expect(await q.qsize()).to.equal(2);
      expect(await q.get()).to.equal('a');
      expect(await q.get()).to.equal('b');
      expectEmpty(await rejectionOf(q.get(kwargs({ timeout: 0.05 }))));
      expectEmpty(await rejectionOf(q.get_nowait()));
      expectEmpty(await rejectionOf(q.get(false)));
    });

    it('a blocked get() and a put() issued after it both resolve', async () => {
      await using q = await manager.Queue();
      const blocked = q.get();
      expect(await stillPending(blocked, 50)).to.equal(true);
      expect(await within(q.put('late'), SECOND, 'put after a blocked get')).to.equal(null);
      expect(await within(blocked, SECOND, 'the blocked get')).to.equal('late');
    });

    it('Queue(maxsize) raises queue.Full when full', async () => {
      await using q = await manager.Queue(1);
      await q.put(1);
      const err = await rejectionOf(q.put(2, kwargs({ timeout: 0.05 })));
      expect(err).to.be.instanceOf(RemoteError);
      expect((err as RemoteError).pyType).to.match(/^_?queue\.Full$/);
    });

    it('JoinableQueue: join() waits for task_done()', async () => {
      await using q = await manager.JoinableQueue();
      await q.put('job');
      expect(await q.get()).to.equal('job');
      const joined = q.join();
      expect(await stillPending(joined, 50)).to.equal(true);
      await q.task_done();
      expect(await within(joined, SECOND, 'join after task_done')).to.equal(null);
      expectPyError(await rejectionOf(q.task_done()), 'builtins.ValueError');
    });
  });

  describe('values both ways keep their types', () => {
    it('str, int, bigint, float, bytes, None, bool, list, tuple, dict with non-string keys, nested', async () => {
      await using q = await manager.Queue();
      const big = 2n ** 80n + 1n;
      const values: unknown[] = [
        'héllo ✓',
        42,
        -7,
        big,
        -big,
        1.5,
        Number.MAX_SAFE_INTEGER,
        new Uint8Array([0, 1, 255]),
        null,
        true,
        false,
        [1, 'two', [3]],
        new Tuple(1, 'a', null),
        { a: 1, b: [2] },
        new Map<unknown, unknown>([[1, 'one'], ['s', 2], [new Tuple(1, 2), 'pair']]),
        { nested: [new Map([[2.5, [new Uint8Array([7])]]]), { deep: [big] }] },
      ];
      for (const v of values) await q.put(v);
      const back: unknown[] = [];
      for (let i = 0; i < values.length; i++) back.push(await q.get());
      expect(back[0]).to.equal('héllo ✓');
      expect(back[1]).to.equal(42);
      expect(back[2]).to.equal(-7);
      expect(back[3]).to.equal(big);
      expect(back[4]).to.equal(-big);
      expect(back[5]).to.equal(1.5);
      expect(back[6]).to.equal(Number.MAX_SAFE_INTEGER);
      expect(back[7]).to.be.instanceOf(Uint8Array);
      expect([...(back[7] as Uint8Array)]).to.deep.equal([0, 1, 255]);
      expect(back[8]).to.equal(null);
      expect(back[9]).to.equal(true);
      expect(back[10]).to.equal(false);
      expect(back[11]).to.deep.equal([1, 'two', [3]]);
      // A tuple decodes as an Array (only a Tuple encodes as one).
      expect(Array.from(back[12] as unknown[])).to.deep.equal([1, 'a', null]);
      expect(back[13]).to.deep.equal({ a: 1, b: [2] });
      const map = back[14] as Map<unknown, unknown>;
      expect(map).to.be.instanceOf(Map);
      expect(map.get(1)).to.equal('one');
      expect(map.get('s')).to.equal(2);
      const pairKey = [...map.keys()].find((k) => Array.isArray(k)) as unknown[];
      expect(Array.from(pairKey)).to.deep.equal([1, 2]);
      expect(map.get(pairKey)).to.equal('pair');
      const nested = back[15] as { nested: [Map<number, [Uint8Array]>, { deep: [bigint] }] };
      expect(nested.nested[0]).to.be.instanceOf(Map);
      expect([...nested.nested[0].get(2.5)![0]]).to.deep.equal([7]);
      expect(nested.nested[1].deep[0]).to.equal(big);
    });
  });

  describe('dict', () => {
    it('get/set, non-string keys, keys() as an array, KeyError, len, contains, getValue', async () => {
      await using d = await manager.dict({ a: 1 });
      expect(d.typeid).to.equal('dict');
      await d.__setitem__(2, 'two');
      await d.__setitem__('b', [1, 2]);
      expect(await d.get('a')).to.equal(1);
      expect(await d.__getitem__(2)).to.equal('two');
      expect(await d.get('zz', 'default')).to.equal('default');
      expect(await d.keys()).to.deep.equal(['a', 2, 'b']);
      expect(await d.values()).to.deep.equal([1, 'two', [1, 2]]);
      expect(await d.__len__()).to.equal(3);
      expect(await d.__contains__(2)).to.equal(true);
      expect(await d.__contains__('2')).to.equal(false);
      const err = expectPyError(await rejectionOf(d.__getitem__('missing')), 'builtins.KeyError');
      expect(err.exception!.args).to.deep.equal(['missing']);
      const copy = (await d.getValue()) as Map<unknown, unknown>;
      expect(copy).to.be.instanceOf(Map);
      expect([...copy.entries()]).to.deep.equal([['a', 1], [2, 'two'], ['b', [1, 2]]]);
      expect(await d.pop('a')).to.equal(1);
      expect(await d.__len__()).to.equal(2);
    });

    it('dict(Map) keeps non-string keys', async () => {
      await using d = await manager.dict(new Map<unknown, unknown>([[1, 'one'], [true, 'yes']]));
      expect(await d.__getitem__(1)).to.equal('yes'); // Python: True == 1, so the later item wins
      expect(await d.__len__()).to.equal(1);
    });
  });

  describe('list', () => {
    it('append, index, IndexError, ValueError, getitem/setitem, getValue', async () => {
      await using l = await manager.list([1, 'x']);
      await l.append(new Tuple(2, 3));
      expect(await l.__len__()).to.equal(3);
      expect(await l.index('x')).to.equal(1);
      expect(await l.__getitem__(-1)).to.deep.equal([2, 3]);
      await l.__setitem__(0, 10);
      expectPyError(await rejectionOf(l.__getitem__(99)), 'builtins.IndexError');
      expectPyError(await rejectionOf(l.index('absent')), 'builtins.ValueError');
      expect(await l.getValue()).to.deep.equal([10, 'x', [2, 3]]);
    });
  });

  describe('Namespace', () => {
    it('attributes from Namespace(attrs), __getattribute__ / __setattr__ / __delattr__', async () => {
      await using ns = await manager.Namespace({ x: 1, label: 'n' });
      expect(await ns.__getattribute__('x')).to.equal(1);
      expect(await ns.__getattribute__('label')).to.equal('n');
      await ns.__setattr__('y', [1, 2]);
      expect(await ns.__getattribute__('y')).to.deep.equal([1, 2]);
      await ns.__delattr__('x');
      expectPyError(await rejectionOf(ns.__getattribute__('x')), 'builtins.AttributeError');
    });
  });

  describe('Value and Array', () => {
    it('Value get/set', async () => {
      await using v = await manager.Value('i', 7);
      expect(await v.get()).to.equal(7);
      await v.set(8);
      expect(await v.get()).to.equal(8);
      await using f = await manager.Value('d', 1.5);
      expect(await f.get()).to.equal(1.5);
    });

    it('Array getitem/setitem/len', async () => {
      await using a = await manager.Array('i', [1, 2, 3]);
      expect(await a.__len__()).to.equal(3);
      expect(await a.__getitem__(1)).to.equal(2);
      await a.__setitem__(1, 20);
      expect(await a.__getitem__(1)).to.equal(20);
      expectPyError(await rejectionOf(a.__getitem__(5)), 'builtins.IndexError');
    });
  });

  describe('locks', () => {
    it("Lock: acquire/release; release() is the lock's own, not the proxy's", async () => {
      const lock = await manager.Lock();
      expect(await lock.acquire()).to.equal(true);
      expect(await lock.acquire(false)).to.equal(false);
      expect(await lock.acquire(true, 0.05)).to.equal(false);
      expect(await lock.release()).to.equal(null);
      expect(await lock.acquire(false)).to.equal(true);
      await lock.release();
      expect(await lock.acquire(false)).to.equal(true); // still a live proxy
      await manager.release(lock);
    });

    it('RLock: pinned, acquired twice and released twice by the same owner; one release too many is a RuntimeError', async () => {
      await using q = await manager.Queue();
      const blocked = q.get(); // holds a pooled connection meanwhile
      await using rlock = await manager.RLock();
      expect(await rlock.acquire()).to.equal(true);
      expect(await rlock.acquire()).to.equal(true);
      await rlock.release();
      await rlock.release();
      expectPyError(await rejectionOf(rlock.release()), 'builtins.RuntimeError');
      await q.put('done');
      expect(await within(blocked, SECOND, 'blocked get')).to.equal('done');
    });

    it('Semaphore and BoundedSemaphore', async () => {
      await using sem = await manager.Semaphore(2);
      expect(await sem.acquire()).to.equal(true);
      expect(await sem.acquire()).to.equal(true);
      expect(await sem.acquire(false)).to.equal(false);
      await sem.release();
      expect(await sem.acquire(false)).to.equal(true);
      await using bounded = await manager.BoundedSemaphore(1);
      expect(await bounded.acquire()).to.equal(true);
      await bounded.release();
      expectPyError(await rejectionOf(bounded.release()), 'builtins.ValueError');
    });

    it('Condition: acquire, wait(timeout) times out, notify, release', async () => {
      await using cond = await manager.Condition();
      expect(await cond.acquire()).to.equal(true);
      expect(await cond.wait(0.05)).to.equal(false);
      await cond.notify();
      await cond.notify_all();
      await cond.release();
      expectPyError(await rejectionOf(cond.notify()), 'builtins.RuntimeError');
    });
  });

  describe('pinned proxies', () => {
    it('run their calls in order on one connection: a call aborted while it waits its turn leaves that connection alone', async () => {
      await using setter = await other.create('shared_event');
      await setter.clear();
      await using ev = await manager.create('shared_event', [], {}, { pinned: true });
      const waiting = ev.wait(); // blocks the pinned connection on the server
      const controller = new AbortController();
      const queued = ev.callMethod('is_set', [], {}, { signal: controller.signal });
      const after = ev.is_set();
      expect(await stillPending(queued, 50)).to.equal(true);
      controller.abort(new Error('not waiting'));
      expect((await rejectionOf(queued)).message).to.equal('not waiting');
      await setter.set();
      expect(await within(waiting, SECOND, 'the pinned wait')).to.equal(true);
      expect(await within(after, SECOND, 'the call queued behind it')).to.equal(true);
      await setter.clear();
    });

    it('a call aborted on the wire closes the connection; the next call opens a new one', async () => {
      await using setter = await other.create('shared_event');
      await setter.clear();
      await using ev = await manager.create('shared_event', [], {}, { pinned: true });
      const timedOut = await rejectionOf(ev.callMethod('wait', [], {}, { timeout: 30 }));
      expect(timedOut.name).to.equal('TimeoutError');
      expect(await ev.is_set()).to.equal(false);
      await setter.set();
      expect(await ev.wait(5)).to.equal(true);
      await setter.clear();
    });

    it('an already aborted signal rejects with its reason before anything is sent', async () => {
      await using q = await manager.Queue();
      const reason = new Error('already');
      const signal = AbortSignal.abort(reason);
      expect(await rejectionOf(q.callMethod('put', ['x'], {}, { signal }))).to.equal(reason);
      expect(await rejectionOf(q.callMethod('put', ['x'], {}, { signal, timeout: 1000 }))).to.equal(reason);
      expect(await q.qsize()).to.equal(0);
    });
  });

  describe('Event and Barrier across two clients', () => {
    it('one client waits on the Event, the other sets it', async () => {
      await using mine = await manager.create('shared_event');
      await using theirs = await other.create('shared_event');
      expect(theirs.id).to.equal(mine.id);
      await mine.clear();
      const waiting = theirs.wait();
      expect(await stillPending(waiting, 50)).to.equal(true);
      await mine.set();
      expect(await within(waiting, SECOND, 'Event.wait after set')).to.equal(true);
      expect(await theirs.is_set()).to.equal(true);
      await mine.clear();
      expect(await theirs.wait(0.05)).to.equal(false);
    });

    it('Barrier(2) passes once both clients wait', async () => {
      await using mine = await manager.create('shared_barrier');
      await using theirs = await other.create('shared_barrier');
      expect(await mine.__getattribute__('parties')).to.equal(2);
      const first = mine.wait();
      expect(await stillPending(first, 50)).to.equal(true);
      const indices = await within(Promise.all([first, theirs.wait()]), SECOND, 'both Barrier.wait');
      expect([...indices].sort()).to.deep.equal([0, 1]);
    });

    it('a Barrier made by Barrier(parties) reports its parties', async () => {
      await using b = await manager.Barrier(3, 10);
      expect(await b.__getattribute__('parties')).to.equal(3);
      expect(await b.__getattribute__('broken')).to.equal(false);
    });
  });

  describe('concurrency', () => {
    it('100 calls in flight from one client, ten of them blocking get()s, all answered correctly', async () => {
      await using q = await manager.Queue();
      await using d = await manager.dict();
      const calls: Promise<unknown>[] = [];
      const gets: Promise<unknown>[] = [];
      for (let i = 0; i < 10; i++) gets.push(q.get());
      for (let i = 0; i < 80; i++) calls.push(d.__setitem__(i, `v${i}`));
      const puts: Promise<unknown>[] = [];
      for (let i = 0; i < 10; i++) puts.push(q.put(`item${i}`));
      const all = await within(Promise.all([...gets, ...calls, ...puts]), 30_000, '100 calls');
      expect(all).to.have.length(100);
      expect((all.slice(0, 10) as string[]).sort()).to.deep.equal(Array.from({ length: 10 }, (_, i) => `item${i}`).sort());
      expect(all.slice(10).every((r) => r === null)).to.equal(true);
      expect(await d.__len__()).to.equal(80);
      expect(await d.__getitem__(79)).to.equal('v79');
    });

    it('a timed-out or aborted blocking call rejects at once and leaves the client usable', async () => {
      await using q = await manager.Queue();
      const timedOut = await rejectionOf(q.callMethod('get', [], {}, { timeout: 30 }));
      expect(timedOut).to.be.instanceOf(DOMException);
      expect(timedOut.name).to.equal('TimeoutError');
      const controller = new AbortController();
      const reason = new Error('stop waiting');
      const aborted = q.callMethod('get', [], {}, { signal: controller.signal });
      expect(await stillPending(aborted, 30)).to.equal(true);
      controller.abort(reason);
      expect(await rejectionOf(aborted)).to.equal(reason);
      // Nothing else is lost: a new queue works, and so does this client.
      await using q2 = await manager.Queue();
      await q2.put('ok');
      expect(await q2.get()).to.equal('ok');
      expect(await manager.numberOfObjects()).to.be.a('number');
    });

    it('maxConnections bounds the pool: a call beyond it waits for a connection, then runs', async () => {
      await using small = await ManagerClient.connect(server.address, { authkey: server.authkey, maxConnections: 2 });
      await using setter = await manager.create('shared_event');
      await setter.clear();
      await using ev = await small.create('shared_event');
      const waits = [ev.wait(), ev.wait()]; // both connections blocked on the server
      const queued = ev.is_set();
      const controller = new AbortController();
      const givenUp = ev.callMethod('is_set', [], {}, { signal: controller.signal });
      expect(await stillPending(queued, 50)).to.equal(true);
      controller.abort(new Error('gave up waiting for a connection'));
      expect((await rejectionOf(givenUp)).message).to.equal('gave up waiting for a connection');
      await setter.set();
      expect(await within(Promise.all([...waits, queued]), SECOND, 'calls after set')).to.deep.equal([true, true, true]);
      await setter.clear();
    });
  });

  describe('references', () => {
    it('numberOfObjects() returns to its start after release(proxy); release is idempotent', async () => {
      const start = await manager.numberOfObjects();
      const q = await manager.Queue();
      const l = await manager.list();
      expect(await manager.numberOfObjects()).to.equal(start + 2);
      await manager.release(q);
      await manager.release(q);
      expect(await manager.numberOfObjects()).to.equal(start + 1);
      await manager.number_of_objects();
      await l[Symbol.asyncDispose]();
      expect(await manager.numberOfObjects()).to.equal(start);
      const err = await rejectionOf(q.put('x'));
      expect(err).to.be.instanceOf(ConnectionStateError);
      expect(err.code).to.equal('ERR_CLOSED');
    });

    it('numberOfObjects() returns to its start after close() of the client that made them', async () => {
      const start = await manager.numberOfObjects();
      const third = await ManagerClient.connect(server.address, { authkey: server.authkey });
      await third.Queue();
      await third.dict({ k: 1 });
      await third.RLock();
      expect(await manager.numberOfObjects()).to.equal(start + 3);
      expect(await third.debugInfo()).to.be.a('string').and.match(/refcount=1/);
      await third.close();
      await third.close();
      expect(await manager.numberOfObjects()).to.equal(start);
      expect(await rejectionOf(third.Queue())).to.be.instanceOf(ConnectionStateError);
    });
  });

  describe('proxy surface', () => {
    it('is not a thenable: await manager.Queue() resolves to the proxy', async () => {
      const q: AnyProxy = await manager.create('Queue');
      expect(q).to.be.instanceOf(Proxy);
      expect((q as unknown as { then?: unknown }).then).to.equal(undefined);
      expect('then' in q).to.equal(false);
      expect('put' in q).to.equal(true);
      await q.put(1);
      expect(await q._callmethod('get')).to.equal(1);
      await manager.release(q);
    });

    it('an unknown method is a RemoteError from the server', async () => {
      await using q = await manager.Queue();
      const err = await rejectionOf(q.callMethod('no_such_method'));
      expect(err).to.be.instanceOf(RemoteError);
      expect((err as RemoteError).kind).to.equal('#TRACEBACK');
      expect((err as RemoteError).traceback).to.be.a('string').and.match(/no_such_method/);
    });

    it('an unknown typeid is a RemoteError', async () => {
      const err = await rejectionOf(manager.create('NoSuchType'));
      expect(err).to.be.instanceOf(RemoteError);
      expect((err as RemoteError).kind).to.equal('#TRACEBACK');
    });

    it('rejects bad arguments with TypeError before anything is sent', async () => {
      await using q = await manager.Queue();
      expect(await rejectionOf(q.callMethod(5 as never))).to.be.instanceOf(TypeError);
      expect(await rejectionOf(q.callMethod('put', 'x' as never))).to.be.instanceOf(TypeError);
      expect(await rejectionOf(q.put(() => 1))).to.be.instanceOf(TypeError);
      await using other = await manager.Queue();
      expect(await rejectionOf(q.put(other))).to.be.instanceOf(TypeError); // a Proxy has no pickle form
      expect(await rejectionOf(manager.create('Queue', [], {}, { pinned: 'yes' } as never))).to.be.instanceOf(TypeError);
      expect(await rejectionOf(manager.Value(1 as never, 2))).to.be.instanceOf(TypeError);
      expect(await rejectionOf(manager.Barrier(1.5))).to.be.instanceOf(RangeError);
      expect(await q.qsize()).to.equal(0);
    });
  });
}
