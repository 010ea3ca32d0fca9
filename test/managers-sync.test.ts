/**
 * The objects behind the SyncManager typeids, used directly from Node: the
 * semantics Python's proxies rely on (blocking with timeouts in seconds,
 * ownership per caller, cancellation when the caller goes away), Python's
 * exceptions as records, Python key equality and reprs. Which method names
 * each CPython's proxy classes call is checked against every CPython found.
 */
import { expect } from 'chai';
import { Kwargs, ManagerServer, PyFloat, PyGlobal, PyObject, Tuple } from 'mpconn';
import { SharedArray, SharedBarrier, SharedBoundedSemaphore, SharedCondition, SharedDict, SharedEvent, SharedIterator, SharedJoinableQueue, SharedList, SharedLock, SharedNamespace, SharedQueue, SharedRLock, SharedSemaphore, SharedValue } from '../src/index.js';
import { runInCall, type CallContext, hashKey, pyEquals, pyRepr, syncTypeids } from '../src/internal.js';
import { forEachPython, newestPython, type PythonProcess, pythons, runPython } from './helpers/python.js';
import { stillPending, within } from './helpers/wire.js';

/** A client connection as the served objects see it: an owner and a signal that aborts when it closes. */
class Caller {
  readonly owner = {};
  readonly #controller = new AbortController();
  readonly context: CallContext = { owner: this.owner, signal: this.#controller.signal };

  /** Calls `fn` as this caller (what the server does for each request). */
  call<T>(fn: () => T): T {
    return runInCall(this.context, fn);
  }

  /** The connection closes. */
  leave(): void {
    this.#controller.abort(new Error('connection closed'));
  }
}

const slice = (...args: unknown[]): PyObject => new PyObject(new PyGlobal('builtins', 'slice'), args);
const range = (...args: number[]): PyObject => new PyObject(new PyGlobal('builtins', 'range'), args);
const frozenset = (...items: unknown[]): PyObject => new PyObject(new PyGlobal('builtins', 'frozenset'), [items]);
const bytearray = (...bytes: number[]): PyObject => new PyObject(new PyGlobal('builtins', 'bytearray'), [Uint8Array.from(bytes)]);

/** The Python exception a call raised: `[module.name, args]`; fails when it raised nothing or a JS error. */
async function raised(fn: () => unknown): Promise<[string, unknown[]]> {
  let thrown: unknown;
  try {
    await fn();
  } catch (err) {
    thrown = err;
  }
  expect(thrown, 'a Python exception record').to.be.instanceOf(PyObject);
  const record = thrown as PyObject;
  const cls = record.callable as PyGlobal;
  return [`${cls.module}.${cls.name}`, record.args];
}

describe('SharedQueue', () => {
  it('is FIFO and reports qsize, empty and full against maxsize', async () => {
    const q = new SharedQueue(2);
    expect([q.qsize(), q.empty(), q.full()]).to.deep.equal([0, true, false]);
    await q.put('a');
    await q.put(new Tuple(1, new PyFloat(2)));
    expect([q.qsize(), q.empty(), q.full()]).to.deep.equal([2, false, true]);
    expect(await q.get()).to.equal('a');
    const item = await q.get();
    expect(item).to.be.instanceOf(Tuple).and.deep.equal(new Tuple(1, new PyFloat(2)));
  });

  it('raises queue.Empty and queue.Full (never _queue.Empty) when it cannot, non-blocking', async () => {
    const q = new SharedQueue(new Kwargs({ maxsize: 1 }));
    expect(await raised(() => q.get_nowait())).to.deep.equal(['queue.Empty', []]);
    expect(await raised(() => q.get(false))).to.deep.equal(['queue.Empty', []]);
    await q.put_nowait(1);
    expect(await raised(() => q.put_nowait(2))).to.deep.equal(['queue.Full', []]);
    expect(await raised(() => q.put(2, new Kwargs({ block: false })))).to.deep.equal(['queue.Full', []]);
  });

  it('takes the timeout in seconds, positionally or by keyword, and checks it as Python does', async () => {
    const q = new SharedQueue(1);
    expect(await raised(() => q.get(true, 0.02))).to.deep.equal(['queue.Empty', []]);
    expect(await raised(() => q.get(new Kwargs({ timeout: new PyFloat(0) })))).to.deep.equal(['queue.Empty', []]);
    expect(await raised(() => q.get(new Kwargs({ block: true, timeout: -1 })))).to.deep.equal([
      'builtins.ValueError',
      ["'timeout' must be a non-negative number"],
    ]);
    await q.put('x');
    expect(await raised(() => q.put('y', true, 0.02))).to.deep.equal(['queue.Full', []]);
    expect(await raised(() => q.put('y', new Kwargs({ timeout: 0.01 })))).to.deep.equal(['queue.Full', []]);
    const [type, args] = await raised(() => q.get(new Kwargs({ wait: 1 })));
    expect(type).to.equal('builtins.TypeError');
    expect(String(args[0])).to.contain("unexpected keyword argument 'wait'");
    const [multiple] = await raised(() => q.get(true, new Kwargs({ block: false })));
    expect(multiple).to.equal('builtins.TypeError');
  });

  it('blocks a get() only for its caller until another caller puts', async () => {
    const q = new SharedQueue();
    const consumer = new Caller();
    const producer = new Caller();
    const got = consumer.call(() => q.get());
    expect(await stillPending(got)).to.equal(true);
    expect(q.qsize()).to.equal(0);
    await producer.call(() => q.put(new Map([['k', new PyFloat(1)]])));
    expect(await within(got, 2000, 'get')).to.deep.equal(new Map([['k', new PyFloat(1)]]));
    expect(q.qsize()).to.equal(0);
  });

  it('a get() whose caller has gone takes no item: the next waiter or the queue keeps it', async () => {
    const q = new SharedQueue();
    const gone = new Caller();
    const stays = new Caller();
    const lost = gone.call(() => q.get());
    const kept = stays.call(() => q.get());
    gone.leave();
    expect(((await lost.catch((err: unknown) => err)) as Error).message).to.equal('connection closed');
    await q.put('first');
    expect(await kept).to.equal('first');
    const leaving = new Caller();
    const abandoned = leaving.call(() => q.get(true, 30));
    leaving.leave();
    await abandoned.catch(() => {});
    await q.put('second');
    expect(q.qsize()).to.equal(1);
    expect(await q.get_nowait()).to.equal('second');
  });

  it('a blocked put() is let in, in order, when a get() makes room; an abandoned one puts nothing', async () => {
    const q = new SharedQueue(1);
    await q.put('a');
    const gone = new Caller();
    const abandoned = gone.call(() => q.put('never'));
    const waiting = q.put('b');
    gone.leave();
    await abandoned.catch(() => {});
    expect(await q.get()).to.equal('a');
    await within(waiting, 2000, 'put');
    expect(await q.get_nowait()).to.equal('b');
    expect(q.empty()).to.equal(true);
  });

  it('join() waits for task_done() per item; too many task_done() raise ValueError', async () => {
    const q = new SharedJoinableQueue();
    await q.put(1);
    await q.put(2);
    const joined = q.join();
    await q.get();
    q.task_done();
    expect(await stillPending(joined)).to.equal(true);
    await q.get();
    q.task_done();
    await within(joined, 2000, 'join');
    expect(await raised(() => q.task_done())).to.deep.equal(['builtins.ValueError', ['task_done() called too many times']]);
    expect(String(q)).to.match(/^<queue\.Queue object at 0x[0-9a-f]+>$/);
  });
});

describe('SharedQueue.shutdown (CPython 3.13)', () => {
  it('makes put() raise queue.ShutDown at once and get() once empty, waking blocked callers', async () => {
    const q = new SharedQueue(1);
    await q.put('left');
    const blockedPut = q.put('more');
    q.shutdown();
    expect(await raised(() => blockedPut)).to.deep.equal(['queue.ShutDown', []]);
    expect(await raised(() => q.put('x'))).to.deep.equal(['queue.ShutDown', []]);
    expect(await q.get()).to.equal('left');
    expect(await raised(() => q.get())).to.deep.equal(['queue.ShutDown', []]);
    const e = new SharedQueue();
    const blockedGet = e.get();
    e.shutdown();
    expect(await raised(() => blockedGet)).to.deep.equal(['queue.ShutDown', []]);
  });

  it('immediate=True drops what is left and releases join()', async () => {
    const q = new SharedJoinableQueue();
    await q.put(1);
    await q.put(2);
    const joined = q.join();
    q.shutdown(new Kwargs({ immediate: true }));
    await within(joined, 2000, 'join');
    expect(q.qsize()).to.equal(0);
  });
});

describe('SharedLock', () => {
  it('acquires, refuses without blocking, times out in seconds, and is released by anyone', async () => {
    const lock = new SharedLock();
    const a = new Caller();
    const b = new Caller();
    expect(await a.call(() => lock.acquire())).to.equal(true);
    expect(await b.call(() => lock.acquire(false))).to.equal(false);
    expect(await b.call(() => lock.acquire(true, 0.02))).to.equal(false);
    expect(await b.call(() => lock.acquire(new Kwargs({ timeout: 0.01 })))).to.equal(false);
    b.call(() => lock.release()); // a Lock has no owner
    expect(lock.locked()).to.equal(false);
    expect(await raised(() => lock.release())).to.deep.equal(['builtins.RuntimeError', ['release unlocked lock']]);
    expect(await raised(() => lock.acquire(false, 1))).to.deep.equal([
      'builtins.ValueError',
      ["can't specify a timeout for a non-blocking call"],
    ]);
    expect((await raised(() => lock.acquire(true, -2)))[0]).to.equal('builtins.ValueError');
    expect(String(lock)).to.match(/^<unlocked _thread\.lock object at 0x[0-9a-f]+>$/);
  });

  it('hands the lock to the longest waiter; a waiter whose caller left takes nothing', async () => {
    const lock = new SharedLock();
    await lock.acquire();
    const gone = new Caller();
    const abandoned = gone.call(() => lock.acquire());
    const next = lock.acquire();
    gone.leave();
    await abandoned.catch(() => {});
    lock.release();
    expect(await within(next, 2000, 'acquire')).to.equal(true);
    expect(lock.locked()).to.equal(true);
    lock.release();
    expect(lock.locked()).to.equal(false);
  });
});

describe('SharedRLock', () => {
  it('belongs to the caller that acquired it, which may acquire it again', async () => {
    const rlock = new SharedRLock();
    const a = new Caller();
    const b = new Caller();
    expect(await a.call(() => rlock.acquire())).to.equal(true);
    expect(await a.call(() => rlock.acquire(true, 0.01))).to.equal(true);
    expect(await b.call(() => rlock.acquire(false))).to.equal(false);
    expect(await raised(() => b.call(() => rlock.release()))).to.deep.equal([
      'builtins.RuntimeError',
      ['cannot release un-acquired lock'],
    ]);
    const waiting = b.call(() => rlock.acquire());
    a.call(() => rlock.release());
    expect(await stillPending(waiting)).to.equal(true);
    a.call(() => rlock.release());
    expect(await within(waiting, 2000, 'acquire')).to.equal(true);
    expect(await raised(() => a.call(() => rlock.release()))).to.deep.equal([
      'builtins.RuntimeError',
      ['cannot release un-acquired lock'],
    ]);
    b.call(() => rlock.release());
    expect(String(rlock)).to.match(/^<unlocked _thread\.RLock object owner=0 count=0 at 0x[0-9a-f]+>$/);
  });

  it('is released when its owner goes away, so the next caller gets it', async () => {
    const rlock = new SharedRLock();
    const a = new Caller();
    const b = new Caller();
    await a.call(() => rlock.acquire());
    await a.call(() => rlock.acquire());
    const waiting = b.call(() => rlock.acquire());
    a.leave();
    expect(await within(waiting, 2000, 'acquire')).to.equal(true);
    expect(await raised(() => rlock.release())).to.deep.equal(['builtins.RuntimeError', ['cannot release un-acquired lock']]);
    b.call(() => rlock.release());
    expect(await rlock.acquire(false)).to.equal(true); // the Node program itself
  });
});

describe('SharedSemaphore and SharedBoundedSemaphore', () => {
  it('count units, block when none are left, and release(n) wakes n waiters', async () => {
    const s = new SharedSemaphore(1);
    expect(await s.acquire()).to.equal(true);
    expect(await s.acquire(false)).to.equal(false);
    expect(await s.acquire(true, 0.02)).to.equal(false);
    const first = s.acquire();
    const second = s.acquire(new Kwargs({ timeout: 30 }));
    s.release(2);
    expect(await within(Promise.all([first, second]), 2000, 'acquire')).to.deep.equal([true, true]);
    expect(await raised(() => s.acquire(false, 1))).to.deep.equal([
      'builtins.ValueError',
      ["can't specify timeout for non-blocking acquire"],
    ]);
    expect(await raised(() => new SharedSemaphore(-1))).to.deep.equal([
      'builtins.ValueError',
      ['semaphore initial value must be >= 0'],
    ]);
  });

  it('a bounded semaphore refuses to go above its initial value', async () => {
    const s = new SharedBoundedSemaphore(2);
    await s.acquire();
    s.release();
    expect(await raised(() => s.release())).to.deep.equal(['builtins.ValueError', ['Semaphore released too many times']]);
  });
});

describe('SharedCondition', () => {
  it('needs its lock owned to wait or notify', async () => {
    const c = new SharedCondition();
    expect(await raised(() => c.wait(0.01))).to.deep.equal(['builtins.RuntimeError', ['cannot wait on un-acquired lock']]);
    expect(await raised(() => c.notify())).to.deep.equal(['builtins.RuntimeError', ['cannot notify on un-acquired lock']]);
    expect(await raised(() => c.notify_all())).to.deep.equal(['builtins.RuntimeError', ['cannot notify on un-acquired lock']]);
  });

  it('wait(timeout) gives the lock up meanwhile and has it back after, notified or not', async () => {
    const c = new SharedCondition();
    const waiter = new Caller();
    const notifier = new Caller();
    await waiter.call(() => c.acquire());
    expect(await waiter.call(() => c.wait(0.02))).to.equal(false);
    const notified = waiter.call(() => c.wait());
    await notifier.call(() => c.acquire()); // free while the waiter waits
    notifier.call(() => c.notify()); // CPython 3.6's proxy sends no n
    expect(await stillPending(notified)).to.equal(true); // woken, but the notifier holds the lock
    notifier.call(() => c.release());
    expect(await within(notified, 2000, 'wait')).to.equal(true);
    waiter.call(() => c.release());
  });

  it('notify(n) wakes n waiters and notify_all() the rest', async () => {
    const c = new SharedCondition();
    const callers = [new Caller(), new Caller(), new Caller()];
    const waits: Promise<boolean>[] = [];
    for (const caller of callers) {
      await caller.call(() => c.acquire());
      waits.push(caller.call(() => c.wait(30)));
    }
    await c.acquire();
    c.notify(2);
    c.release();
    await within(Promise.all(waits.slice(0, 2).map((w, i) => w.then(() => callers[i]!.call(() => c.release())))), 2000, 'notify(2)');
    expect(await stillPending(waits[2]!)).to.equal(true);
    await c.acquire();
    c.notify_all();
    c.release();
    expect(await within(waits[2]!, 2000, 'notify_all')).to.equal(true);
    callers[2]!.call(() => c.release());
  });

  it('a waiter whose caller goes away does not take the lock back', async () => {
    const c = new SharedCondition();
    const gone = new Caller();
    await gone.call(() => c.acquire());
    const waiting = gone.call(() => c.wait());
    gone.leave();
    await waiting.catch(() => {});
    expect(await c.acquire(false)).to.equal(true);
    c.release();
  });
});

describe('SharedEvent', () => {
  it('wait() returns true once set, false when the timeout in seconds runs out', async () => {
    const e = new SharedEvent();
    expect(e.is_set()).to.equal(false);
    expect(await e.wait(0.02)).to.equal(false);
    expect(await e.wait(-1)).to.equal(false);
    const waiting = new Caller().call(() => e.wait());
    expect(await stillPending(waiting)).to.equal(true);
    e.set();
    expect(await within(waiting, 2000, 'wait')).to.equal(true);
    expect(await e.wait(new Kwargs({ timeout: 0 }))).to.equal(true);
    e.clear();
    expect(e.is_set()).to.equal(false);
  });
});

describe('SharedBarrier', () => {
  it('releases all parties with their indices and answers __getattribute__ for parties, n_waiting, broken', async () => {
    const b = new SharedBarrier(3);
    const first = b.wait();
    const second = b.wait();
    expect([b.__getattribute__('parties'), b.__getattribute__('n_waiting'), b.__getattribute__('broken')]).to.deep.equal([3, 2, false]);
    const third = b.wait();
    expect((await Promise.all([first, second, third])).sort()).to.deep.equal([0, 1, 2]);
    expect(b.__getattribute__('n_waiting')).to.equal(0);
    expect((await raised(() => b.__getattribute__('_count')))[0]).to.equal('builtins.AttributeError');
  });

  it('a timeout breaks it for every waiter; reset() mends it', async () => {
    const b = new SharedBarrier(3, new Kwargs({ timeout: 30 }));
    const other = b.wait();
    expect(await raised(() => b.wait(0.02))).to.deep.equal(['threading.BrokenBarrierError', []]);
    expect(await raised(() => other)).to.deep.equal(['threading.BrokenBarrierError', []]);
    expect(b.broken).to.equal(true);
    expect(await raised(() => b.wait())).to.deep.equal(['threading.BrokenBarrierError', []]);
    b.reset();
    expect(b.broken).to.equal(false);
    const waiting = b.wait();
    b.abort();
    expect(await raised(() => waiting)).to.deep.equal(['threading.BrokenBarrierError', []]);
    expect(await raised(() => new SharedBarrier(0))).to.deep.equal(['builtins.ValueError', ['parties must be > 0']]);
  });

  it('a waiter whose caller left no longer counts', async () => {
    const b = new SharedBarrier(2);
    const gone = new Caller();
    const abandoned = gone.call(() => b.wait());
    gone.leave();
    await abandoned.catch(() => {});
    expect(b.n_waiting).to.equal(0);
    const pair = Promise.all([b.wait(), b.wait()]);
    expect((await within(pair, 2000, 'barrier')).sort()).to.deep.equal([0, 1]);
  });
});

describe('SharedDict', () => {
  it('compares keys by Python equality: 1 == 1.0 == True, tuples and frozensets by value', async () => {
    const d = new SharedDict();
    d.__setitem__(1, 'int');
    d.__setitem__(new PyFloat(1), 'float'); // the same key: the value changes, the key stays 1
    expect(d.__getitem__(true)).to.equal('float');
    expect(d.keys()).to.deep.equal([1]);
    d.__setitem__(new Tuple(1, 2), 'pair');
    expect(d.__getitem__(new Tuple(new PyFloat(1), 2))).to.equal('pair');
    d.__setitem__(frozenset(1, 2), 'fs');
    expect(d.get(frozenset(2, 1))).to.equal('fs');
    d.__setitem__('a', 's');
    d.__setitem__(Uint8Array.of(97), 'b');
    d.__setitem__(null, 'none');
    expect(d.__len__()).to.equal(6);
    expect(d.__contains__(2)).to.equal(false);
    expect(await raised(() => d.__getitem__('zz'))).to.deep.equal(['builtins.KeyError', ['zz']]);
    expect(await raised(() => d.__setitem__([1], 'x'))).to.deep.equal(['builtins.TypeError', ["unhashable type: 'list'"]]);
    expect(await raised(() => d.__contains__(new Map()))).to.deep.equal(['builtins.TypeError', ["unhashable type: 'dict'"]]);
    expect(await raised(() => d.get(bytearray(1)))).to.deep.equal(['builtins.TypeError', ["unhashable type: 'bytearray'"]]);
    expect(hashKey(0)).to.equal(hashKey(-0)).and.equal(hashKey(false)).and.equal(hashKey(0n));
    expect(hashKey(1.5)).to.not.equal(hashKey(1));
    expect(hashKey(NaN)).to.not.equal(hashKey(NaN));
  });

  it('keeps insertion order and the Python dict methods', async () => {
    const d = new SharedDict(new Map<unknown, unknown>([['b', 1], [10, 2]]), new Kwargs({ a: 3 }));
    expect(d.keys()).to.deep.equal(['b', 10, 'a']);
    d.update([new Tuple('c', 4)], new Kwargs({ d: 5 }));
    expect(d.items().map((t) => t instanceof Tuple)).to.deep.equal([true, true, true, true, true]);
    expect(d.values()).to.deep.equal([1, 2, 3, 4, 5]);
    expect(d.popitem()).to.deep.equal(new Tuple('d', 5));
    expect(d.pop('c')).to.equal(4);
    expect(d.pop('zz', 'dflt')).to.equal('dflt');
    expect(await raised(() => d.pop('zz'))).to.deep.equal(['builtins.KeyError', ['zz']]);
    expect(d.setdefault('e', new PyFloat(2))).to.deep.equal(new PyFloat(2));
    expect(d.setdefault('e', 0)).to.deep.equal(new PyFloat(2));
    d.__delitem__('b');
    expect(await raised(() => d.__delitem__('b'))).to.deep.equal(['builtins.KeyError', ['b']]);
    expect(d.copy()).to.deep.equal(new Map<unknown, unknown>([[10, 2], ['a', 3], ['e', new PyFloat(2)]]));
    expect(await raised(() => d.update([[1, 2, 3]]))).to.deep.equal([
      'builtins.ValueError',
      ['dictionary update sequence element #0 has length 3; 2 is required'],
    ]);
    d.clear();
    expect(await raised(() => d.popitem())).to.deep.equal(['builtins.KeyError', ['popitem(): dictionary is empty']]);
  });

  it('iterates with a SharedIterator: StopIteration at the end, RuntimeError when the dict changed size', async () => {
    const d = new SharedDict(new Map([['x', 1], ['y', 2]]));
    const it = d.__iter__();
    expect(it).to.be.instanceOf(SharedIterator);
    expect(it.__next__()).to.equal('x');
    expect(it.__next__()).to.equal('y');
    expect(await raised(() => it.__next__())).to.deep.equal(['builtins.StopIteration', []]);
    expect(await raised(() => it.__next__())).to.deep.equal(['builtins.StopIteration', []]);
    const changed = d.__iter__();
    changed.__next__();
    d.__setitem__('z', 3);
    expect(await raised(() => changed.__next__())).to.deep.equal([
      'builtins.RuntimeError',
      ['dictionary changed size during iteration'],
    ]);
  });

  it('prints and pickles as the dict it holds', () => {
    const d = new SharedDict(new Map<unknown, unknown>([['a', 1], [new Tuple(1, 2), [new PyFloat(1), Uint8Array.of(120)]], [null, true]]));
    expect(String(d)).to.equal("{'a': 1, (1, 2): [1.0, b'x'], None: True}");
    expect(d.__getvalue__()).to.be.instanceOf(Map);
    expect([...d.__getvalue__().keys()][1]).to.be.instanceOf(Tuple);
  });
});

describe('SharedList', () => {
  it('indexes and slices as Python does, with slice records as arguments', async () => {
    const l = new SharedList([0, 1, 2, 3, 4]);
    expect(l.__getitem__(-1)).to.equal(4);
    expect(l.__getitem__(slice(1, 3))).to.deep.equal([1, 2]);
    expect(l.__getitem__(slice(null, null, -2))).to.deep.equal([4, 2, 0]);
    expect(await raised(() => l.__getitem__(5))).to.deep.equal(['builtins.IndexError', ['list index out of range']]);
    expect(await raised(() => l.__getitem__('a'))).to.deep.equal([
      'builtins.TypeError',
      ['list indices must be integers or slices, not str'],
    ]);
    expect(await raised(() => l.__getitem__(new PyFloat(1)))).to.deep.equal([
      'builtins.TypeError',
      ['list indices must be integers or slices, not float'],
    ]);
    l.__setitem__(slice(1, 3), range(3));
    expect(l.items).to.deep.equal([0, 0, 1, 2, 3, 4]);
    expect(await raised(() => l.__setitem__(slice(null, null, 2), [1]))).to.deep.equal([
      'builtins.ValueError',
      ['attempt to assign sequence of size 1 to extended slice of size 3'],
    ]);
    l.__delitem__(slice(0, 2));
    expect(l.items).to.deep.equal([1, 2, 3, 4]);
    expect(await raised(() => l.__setitem__(9, 0))).to.deep.equal(['builtins.IndexError', ['list assignment index out of range']]);
  });

  it('finds items by Python equality (1 == 1.0, a tuple is not a list)', async () => {
    const l = new SharedList([new PyFloat(1), new Tuple(1, 2), [1, 2], 'a']);
    expect(l.index(1)).to.equal(0);
    expect(l.index([1, 2])).to.equal(2);
    expect(l.__contains__(new Tuple(1, 2))).to.equal(true);
    expect(l.count(true)).to.equal(1);
    expect(await raised(() => l.index(5))).to.deep.equal(['builtins.ValueError', ['5 is not in list']]);
    expect(await raised(() => l.index('a', 0, 2))).to.deep.equal(['builtins.ValueError', ["'a' is not in list"]]);
    l.remove(new Tuple(1, 2));
    expect(await raised(() => l.remove('zz'))).to.deep.equal(['builtins.ValueError', ['list.remove(x): x not in list']]);
    expect(pyEquals(new Map([[1, 'x']]), new Map([[new PyFloat(1), 'x']]))).to.equal(true);
    expect(pyEquals(Uint8Array.of(1), bytearray(1))).to.equal(true);
  });

  it('has the list methods and operators ListProxy calls', async () => {
    const l = new SharedList(new Tuple(3, 1, 2));
    l.append(0);
    l.extend(new Set([9]));
    l.insert(-1, 7);
    expect(l.items).to.deep.equal([3, 1, 2, 0, 7, 9]);
    expect(l.pop()).to.equal(9);
    expect(l.pop(0)).to.equal(3);
    expect(await raised(() => new SharedList().pop())).to.deep.equal(['builtins.IndexError', ['pop from empty list']]);
    l.sort();
    expect(l.items).to.deep.equal([0, 1, 2, 7]);
    l.sort(new Kwargs({ reverse: true }));
    expect(l.items).to.deep.equal([7, 2, 1, 0]);
    l.reverse();
    expect(l.__add__([5])).to.deep.equal([0, 1, 2, 7, 5]);
    expect(await raised(() => l.__add__(new Tuple(5)))).to.deep.equal([
      'builtins.TypeError',
      ['can only concatenate list (not "tuple") to list'],
    ]);
    expect(new SharedList([1]).__mul__(3)).to.deep.equal([1, 1, 1]);
    expect(new SharedList([1]).__rmul__(-1)).to.deep.equal([]);
    const tripled = new SharedList(['x']);
    expect(tripled.__imul__(2)).to.deep.equal(['x', 'x']);
    expect(tripled.__len__()).to.equal(2);
    const reversed = new SharedList([1, 2]).__reversed__();
    expect([`${(reversed.callable as PyGlobal).module}.${(reversed.callable as PyGlobal).name}`, reversed.args]).to.deep.equal([
      'builtins.reversed',
      [[1, 2]],
    ]);
    expect(await raised(() => new SharedList([1, 'a']).sort())).to.deep.equal([
      'builtins.TypeError',
      ["'<' not supported between instances of 'str' and 'int'"],
    ]);
    expect((await raised(() => l.sort(true)))[0]).to.equal('builtins.TypeError'); // keyword-only
  });

  it('sorts as Python: stable, tuples lexicographically, strings by code point', () => {
    const l = new SharedList([new Tuple(2, 'b'), new Tuple(1, 'z'), new Tuple(2, 'a'), new Tuple(1, 'z', 0)]);
    l.sort();
    expect(String(l)).to.equal("[(1, 'z'), (1, 'z', 0), (2, 'a'), (2, 'b')]");
    const s = new SharedList(['\u{1F600}', '\uFFFF', 'a']);
    s.sort();
    expect(s.items).to.deep.equal(['a', '\uFFFF', '\u{1F600}']);
  });
});

describe('SharedNamespace, SharedValue and SharedArray', () => {
  it('Namespace: attributes by __getattribute__/__setattr__/__delattr__, and its repr', async () => {
    const ns = new SharedNamespace(new Kwargs({ name: 'Bob', _hidden: 1 }));
    ns.__setattr__('age', 3);
    expect(ns.__getattribute__('name')).to.equal('Bob');
    expect(String(ns)).to.equal("Namespace(age=3, name='Bob')");
    ns.__delattr__('age');
    expect(await raised(() => ns.__getattribute__('age'))).to.deep.equal([
      'builtins.AttributeError',
      ["'Namespace' object has no attribute 'age'"],
    ]);
    expect((await raised(() => ns.__delattr__('age')))[0]).to.equal('builtins.AttributeError');
    const value = ns.__getvalue__();
    expect(`${(value.callable as PyGlobal).module}.${(value.callable as PyGlobal).name}`).to.equal('multiprocessing.managers.Namespace');
    expect(value.state).to.deep.equal(new Map<string, unknown>([['name', 'Bob'], ['_hidden', 1]]));
  });

  it('Value: get/set of one value, printed as Python prints it', () => {
    const v = new SharedValue('d', new PyFloat(1));
    expect(String(v)).to.equal("Value('d', 1.0)");
    v.set('x');
    expect(v.get()).to.equal('x');
  });

  it('Array: typecodes, item checks and conversions of array.array', async () => {
    const a = new SharedArray('d', [1, 2.5]);
    expect(a.__getitem__(0)).to.deep.equal(new PyFloat(1));
    expect(String(a)).to.equal("array('d', [1.0, 2.5])");
    const sliced = a.__getitem__(slice(0, 1)) as PyObject;
    expect([(sliced.callable as PyGlobal).name, sliced.args]).to.deep.equal(['array', ['d', [new PyFloat(1)]]]);
    expect(await raised(() => new SharedArray('z', []))).to.deep.equal([
      'builtins.ValueError',
      ['bad typecode (must be b, B, u, h, H, i, I, l, L, q, Q, f or d)'],
    ]);
    const i = new SharedArray('b', [1]);
    expect((await raised(() => i.__setitem__(0, 300)))[0]).to.equal('builtins.OverflowError');
    expect((await raised(() => i.__setitem__(0, 1.5)))[0]).to.equal('builtins.TypeError');
    expect(await raised(() => i.__getitem__(3))).to.deep.equal(['builtins.IndexError', ['array index out of range']]);
    expect(await raised(() => i.__setitem__(slice(0, 1), [1]))).to.deep.equal([
      'builtins.TypeError',
      ['can only assign array (not "list") to array slice'],
    ]);
    i.__setitem__(slice(0, 1), new PyObject(new PyGlobal('array', 'array'), ['b', [5, 6]]));
    expect(String(i)).to.equal("array('b', [5, 6])");
    expect(String(new SharedArray('u', 'hi'))).to.equal("array('u', 'hi')");
  });

  it('Array: reads arrays as CPython managers pickle them, array.array(typecode, machine bytes)', () => {
    const bytes = Buffer.alloc(16);
    bytes.writeInt32LE(-2, 0);
    bytes.writeInt32LE(7, 4);
    bytes.writeBigInt64LE(2n ** 62n, 8);
    const a = new SharedArray('i', new PyObject(new PyGlobal('array', 'array'), ['i', Uint8Array.from(bytes.subarray(0, 8))]));
    expect(String(a)).to.equal("array('i', [-2, 7])");
    const q = new SharedArray('q', [0]);
    q.__setitem__(slice(null, null), new PyObject(new PyGlobal('array', 'array'), ['q', Uint8Array.from(bytes.subarray(8))]));
    expect(q.__getitem__(0)).to.equal(2n ** 62n);
    const d = new Float64Array([1, 0.5]);
    const doubles = new SharedArray('d', new PyObject(new PyGlobal('array', 'array'), ['d', new Uint8Array(d.buffer)]));
    expect(doubles.tolist()).to.deep.equal([new PyFloat(1), 0.5]);
  });
});

describe('hostile arguments', () => {
  it('refuse to expand past what a server can hold, with MemoryError, and bound recursion', async () => {
    const l = new SharedList([1]);
    expect((await raised(() => l.__mul__(10n ** 12n)))[0]).to.equal('builtins.MemoryError');
    expect((await raised(() => l.extend(range(10 ** 12))))[0]).to.equal('builtins.MemoryError');
    expect((await raised(() => new SharedList(range(0, 10, 0))))[0]).to.equal('builtins.ValueError');
    let deep: unknown = new Tuple();
    for (let i = 0; i < 5000; i++) deep = new Tuple(deep);
    expect((await raised(() => new SharedDict().__setitem__(deep, 1)))[0]).to.equal('builtins.RecursionError');
    expect(pyRepr(deep)).to.match(/^\(\(\(.*\.\.\..*\)$/);
  });

  it('a large slice assignment works (no argument spread)', () => {
    const l = new SharedList([0, 1]);
    l.__setitem__(slice(1, 1), range(300_000));
    expect(l.__len__()).to.equal(300_002);
    expect(l.__getitem__(-1)).to.equal(1);
  });
});

describe('pyRepr', () => {
  it('prints plain data as Python repr() does', () => {
    const cases: [unknown, string][] = [
      [null, 'None'],
      [[true, false], '[True, False]'],
      [[1, 10n ** 20n, -0, 1.5, new PyFloat(2), new PyFloat(1e16), 1e-5, Infinity, NaN], '[1, 100000000000000000000, -0.0, 1.5, 2.0, 1e+16, 1e-05, inf, nan]'],
      ["it's", '"it\'s"'],
      ['both \' and "', "'both \\' and \"'"],
      ['tab\tnl\n\u0007\u00e9\u00a0\u{1F600}\\', "'tab\\tnl\\n\\x07\u00e9\\xa0\u{1F600}\\\\'"],
      [Uint8Array.of(0, 39, 65, 255), 'b"\\x00\'A\\xff"'],
      [new Tuple(1), '(1,)'],
      [new Tuple(), '()'],
      [new Set(), 'set()'],
      [new Set([1]), '{1}'],
      [frozenset(), 'frozenset()'],
      [frozenset(1, 2), 'frozenset({1, 2})'],
      [bytearray(104, 105), "bytearray(b'hi')"],
      [new Map<unknown, unknown>([[new Tuple(1, 'a'), { x: [] }]]), "{(1, 'a'): {'x': []}}"],
      [slice(1, null, 2), 'slice(1, None, 2)'],
    ];
    for (const [value, text] of cases) expect(pyRepr(value), text).to.equal(text);
    const cyclic: unknown[] = [];
    cyclic.push(cyclic);
    expect(pyRepr(cyclic)).to.equal('[[...]]');
  });
});

describe('pyRepr against CPython', () => {
  const newest = newestPython();
  // Deterministic pseudo-random doubles and strings (xorshift), so a failure can be replayed.
  let seed = 0x9e3779b9;
  const next = (): number => {
    seed ^= seed << 13;
    seed ^= seed >>> 17;
    seed ^= seed << 5;
    return seed >>> 0;
  };
  const view = new DataView(new ArrayBuffer(8));
  const floats: number[] = [1e16, 9999999999999998, 1e-4, 0.00011, 5e-324, 1.7976931348623157e308, 0.1, 2 ** 53];
  for (let e = -25; e < 25; e++) floats.push(10 ** e, -1.5 * 10 ** e);
  while (floats.length < 1500) {
    view.setUint32(0, next());
    view.setUint32(4, next());
    floats.push(view.getFloat64(0));
  }
  const strings: string[] = ["'", '"', '\'', 'a\'b"c', '\u{1F600}\u{1F4A9}', '\u2028\u00ad\u200b'];
  // Blocks whose assignments no Unicode version since 3.0 has changed (the JS engine's and CPython's versions differ).
  const blocks: [number, number][] = [[0, 0x2ff], [0x370, 0x3ff], [0x2000, 0x206f], [0x4e00, 0x9fa5], [0xac00, 0xd7a3], [0xe000, 0xf8ff]];
  while (strings.length < 1500) {
    let text = '';
    for (let n = 1 + (next() % 6); n > 0; n--) {
      const [lo, hi] = blocks[next() % blocks.length]!;
      text += String.fromCodePoint(lo + (next() % (hi - lo + 1)));
    }
    strings.push(text);
  }
  const script = `
import sys, json, struct
for line in sys.stdin:
    kind, data = line.split()
    if kind == 'f':
        print(repr(struct.unpack('>d', bytes.fromhex(data))[0]))
    else:
        print(json.dumps(repr(bytes.fromhex(data).decode('utf-8', 'surrogatepass'))))
`;

  (newest === undefined ? it.skip : it)(`prints floats and strs as CPython ${newest?.version ?? '(none found)'} does`, async function () {
    this.timeout(30_000);
    const proc = runPython(newest!, script);
    try {
      const input = [
        ...floats.map((x) => {
          view.setFloat64(0, x);
          return `f ${Buffer.from(view.buffer).toString('hex')}`;
        }),
        ...strings.map((text) => `s ${Buffer.from(text, 'utf8').toString('hex')}`),
      ];
      proc.process.stdin!.end(input.join('\n') + '\n');
      const mismatches: string[] = [];
      for (const x of floats) {
        const theirs = await within(proc.line(), 20_000, 'python');
        if (pyRepr(new PyFloat(x)) !== theirs) mismatches.push(`${x}: ${pyRepr(new PyFloat(x))} vs ${theirs}`);
      }
      for (const text of strings) {
        const theirs = JSON.parse(await within(proc.line(), 20_000, 'python')) as string;
        if (pyRepr(text) !== theirs) mismatches.push(`${JSON.stringify(text)}: ${pyRepr(text)} vs ${theirs}`);
      }
      expect(mismatches).to.deep.equal([]);
    } finally {
      proc.kill();
    }
  });
});

describe('syncTypeids', () => {
  const ours = new Map(syncTypeids().map((t) => [t.typeid, t]));

  it('serves every SyncManager typeid but Pool, each creating its own object', () => {
    expect([...ours.keys()].sort()).to.deep.equal(
      ['Array', 'Barrier', 'BoundedSemaphore', 'Condition', 'Event', 'Iterator', 'JoinableQueue', 'Lock', 'Namespace',
        'Queue', 'RLock', 'Semaphore', 'Value', 'dict', 'list'].sort(),
    );
    const make = (typeid: string, ...args: unknown[]): object => ours.get(typeid)!.callable(...args);
    expect(make('Queue')).to.be.instanceOf(SharedQueue).and.not.equal(make('Queue'));
    expect(make('dict', new Kwargs({ a: 1 }))).to.be.instanceOf(SharedDict);
    expect(make('Barrier', 2)).to.be.instanceOf(SharedBarrier);
    const it = make('Iterator', [1]) as SharedIterator;
    expect(it.__next__()).to.equal(1);
    expect(ours.get('dict')!.methodToTypeid).to.deep.equal({ __iter__: 'Iterator' });
    for (const t of ours.values()) {
      const obj = t.callable(...(t.typeid === 'Barrier' ? [1] : t.typeid === 'Value' || t.typeid === 'Array' ? ['i', t.typeid === 'Array' ? [] : 0] : t.typeid === 'Iterator' ? [[]] : []));
      for (const name of t.exposed ?? []) expect(typeof (obj as Record<string, unknown>)[name], `${t.typeid}.${name}`).to.equal('function');
    }
  });

  // What each CPython's proxy classes call: their _exposed_ (and public_methods of a queue.Queue for AutoProxy).
  const script = `
import json, queue
from multiprocessing.managers import SyncManager, public_methods
out = {}
for typeid, (callable, exposed, m2t, proxytype) in SyncManager._registry.items():
    if typeid in ('Pool', 'AsyncResult'):
        continue
    names = exposed or getattr(proxytype, '_exposed_', None)
    if names is None:
        names = public_methods(queue.Queue())
    out[typeid] = {'exposed': sorted(names), 'm2t': m2t or getattr(proxytype, '_method_to_typeid_', None)}
print(json.dumps(out))
`;
  forEachPython(undefined, (py) => {
    it(`exposes what CPython ${py.version}'s proxies call`, async function () {
      this.timeout(20_000);
      const proc = runPython(py, script);
      try {
        const theirs = JSON.parse(await within(proc.line(), 15_000, 'python')) as Record<string, { exposed: string[]; m2t: Record<string, string> | null }>;
        expect(Object.keys(theirs).sort()).to.deep.equal([...ours.keys()].sort());
        for (const [typeid, { exposed, m2t }] of Object.entries(theirs)) {
          // 3.6's DictProxy still lists Python 2's has_key (a CPython server fails it too); 3.13's Queue gained shutdown().
          const expected = exposed.filter((name) => name !== 'has_key');
          if (typeid.endsWith('Queue') && !expected.includes('shutdown')) expected.push('shutdown');
          expected.sort();
          expect([...(ours.get(typeid)!.exposed ?? [])].sort(), typeid).to.deep.equal(expected);
          expect(ours.get(typeid)!.methodToTypeid ?? null, typeid).to.deep.equal(m2t);
        }
      } finally {
        proc.kill();
      }
    });
  });
});

/**
 * The same classes behind a real ManagerServer, used by unmodified CPython
 * programs through SyncManager's proxies: one batch of checks per CPython,
 * all run at once, each against a server of its own (it counts the server's
 * objects), plus a queue the Node program holds and reads itself while the
 * Python programs put into it.
 */
const THROUGH_PROXIES = `
import sys, queue, threading, time, array, gc, multiprocessing
from multiprocessing.managers import SyncManager
class Manager(SyncManager):
    pass
Manager.register('get_shared')
multiprocessing.current_process().authkey = b'sync-test'  # proxies rebuilt from stored values use it
m = Manager(address=(sys.argv[1], int(sys.argv[2])), authkey=b'sync-test')
m.connect()
fails = []
def check(name, got, want):
    if not (got == want and type(got) is type(want)):
        fails.append('%s: got %r, want %r' % (name, got, want))
def raises(name, exc, fn, args=None):
    try:
        fn()
    except exc as e:
        if args is not None and e.args != args:
            fails.append('%s: args %r, want %r' % (name, e.args, args))
    except BaseException as e:
        fails.append('%s: raised %r, want %s' % (name, e, exc.__name__))
    else:
        fails.append('%s: raised nothing, want %s' % (name, exc.__name__))
start = m._number_of_objects()

q = m.Queue(2)
q.put((1, 2.0, bytearray(b'x'), frozenset({(1, 2)})))
check('queue round trip', q.get(), (1, 2.0, bytearray(b'x'), frozenset({(1, 2)})))
raises('queue.Empty', queue.Empty, lambda: q.get(timeout=0.01))
raises('get_nowait', queue.Empty, q.get_nowait)
q.put(1); q.put(2)
raises('queue.Full', queue.Full, lambda: q.put(3, True, 0.01))
raises('put_nowait', queue.Full, lambda: q.put_nowait(3))
raises('negative timeout', ValueError, lambda: q.get(timeout=-1))
check('qsize', (q.qsize(), q.full(), q.empty()), (2, True, False))
got = []
t = threading.Thread(target=lambda: got.append(q.get(True, 10)))
q.get(); q.get(); t.start(); time.sleep(0.05); q.put({'late': 1.0}); t.join()
check('blocking get released by another connection', got, [{'late': 1.0}])

d = m.dict({'a': 1, (1, 2): [1.0]})
d[1] = 'int'; d[1.0] = 'float'; d[frozenset({3, 4})] = 'fs'
check('dict keys by Python equality', (d[True], d[frozenset({4, 3})]), ('float', 'fs'))
check('dict order and types', d.copy(), {'a': 1, (1, 2): [1.0], 1: 'float', frozenset({3, 4}): 'fs'})
check('dict str', str(d), "{'a': 1, (1, 2): [1.0], 1: 'float', frozenset({3, 4}): 'fs'}")
check('dict iteration', list(d), ['a', (1, 2), 1, frozenset({3, 4})])
check('dict items', d.items()[1], ((1, 2), [1.0]))
raises('KeyError', KeyError, lambda: d['missing'], ('missing',))
raises('unhashable', TypeError, lambda: d.__setitem__([1], 2), ("unhashable type: 'list'",))
def grow():
    for k in d:
        d['x' + str(k)] = 1
raises('changed size', RuntimeError, grow, ('dictionary changed size during iteration',))
check('popitem', d.popitem(), ('x' + 'a', 1))
d.update({'u': 1}, v=2)
check('update', (d['u'], d['v'], len(d)), (1, 2, 6))

l = m.list([3, 1, 2])
l.append(4.0); l += [(5,)]
check('list slice', l[1:3], [1, 2])
check('list iteration', list(l), [3, 1, 2, 4.0, (5,)])
check('list str', str(l), '[3, 1, 2, 4.0, (5,)]')
check('index by equality', (l.index(4), l.count(4.0), (5,) in l, [5] in l), (3, 1, True, False))
raises('IndexError', IndexError, lambda: l[10], ('list index out of range',))
raises('not in list', ValueError, lambda: l.remove(99))
l[0:1] = range(3)
check('slice assignment from a range', l[:], [0, 1, 2, 1, 2, 4.0, (5,)])
del l[-1]
l.sort(reverse=True)
check('sort', l[:], [4.0, 2, 2, 1, 1, 0])
check('reversed', list(reversed(l)), [0, 1, 1, 2, 2, 4.0])
l *= 2
check('imul', len(l), 12)
check('add', m.list([1]) + [2], [1, 2])

ns = m.Namespace(name='Bob')
ns.age = 3
check('namespace', (ns.name, ns.age, str(ns)), ('Bob', 3, "Namespace(age=3, name='Bob')"))
raises('namespace AttributeError', AttributeError, lambda: ns.missing)
check('namespace value', type(ns._getvalue()).__name__, 'Namespace')

v = m.Value('d', 1.0)
v.value += 1
check('value', (v.value, str(v)), (2.0, "Value('d', 2.0)"))
a = m.Array('i', range(4))
a[1:3] = array.array('i', [7, 8, 9])
check('array', (len(a), a[1], a[:]), (5, 7, array.array('i', [0, 7, 8, 9, 3])))
raises('array item type', TypeError, lambda: a.__setitem__(0, 1.5))
check('float array', m.Array('d', [1, 2])[0], 1.0)

lock = m.Lock()
check('lock', (lock.acquire(), lock.acquire(False), lock.acquire(timeout=0.01)), (True, False, False))
lock.release()
raises('release unlocked', RuntimeError, lock.release)
raises('a NaN timeout', ValueError, lambda: lock.acquire(True, float('nan')), ('Invalid value NaN (not a number)',))
rl = m.RLock()
rl.acquire(); rl.acquire()
other = []
t = threading.Thread(target=lambda: other.append(rl.acquire(timeout=0.01))); t.start(); t.join()
check('rlock belongs to its connection', other, [False])
rl.release(); rl.release()
raises('rlock unowned', RuntimeError, rl.release, ('cannot release un-acquired lock',))
s = m.Semaphore(0)
threading.Timer(0.05, s.release).start()
check('semaphore', (s.acquire(timeout=10), s.acquire(timeout=0.01)), (True, False))
raises('bounded', ValueError, m.BoundedSemaphore(1).release)

c = m.Condition()
woken = []
def waiter():
    with c:
        woken.append(c.wait(10))
t = threading.Thread(target=waiter); t.start()
while True:
    with c:
        if c._callmethod('__repr__').endswith(' 1)>'):
            c.notify()
            break
    time.sleep(0.01)
t.join()
check('condition wait/notify', woken, [True])
with c:
    check('condition timeout', c.wait(0.01), False)
raises('condition unowned', RuntimeError, c.notify)

e = m.Event()
threading.Timer(0.05, e.set).start()
check('event', (e.wait(10), e.is_set()), (True, True))
b = m.Barrier(2, timeout=10)
res = []
ts = [threading.Thread(target=lambda: res.append(b.wait())) for _ in range(2)]
[t.start() for t in ts]; [t.join() for t in ts]
check('barrier', (sorted(res), b.parties, b.n_waiting, b.broken), ([0, 1], 2, 0, False))
raises('broken barrier', threading.BrokenBarrierError, lambda: b.wait(0.01))

jq = m.JoinableQueue()
def worker():
    while jq.get() is not None:
        jq.task_done()
    jq.task_done()
t = threading.Thread(target=worker); t.start()
for i in range(3):
    jq.put(i)
jq.put(None); jq.join(); t.join()
raises('task_done too many', ValueError, jq.task_done)

holder = m.dict()
inner = m.list([1])
holder['inner'] = inner
holder['inner'].append(2)
check('a proxy stored in a dict comes back working', inner[:], [1, 2])
check('and prints as a proxy', str(holder).startswith("{'inner': <ListProxy object, typeid 'list' at 0x"), True)

shared_lock = m.RLock()
cl = m.Condition(shared_lock)
shared_lock.acquire()
check('Condition(lock) is over that lock of this server', cl.notify(), None)
shared_lock.release()
raises('which it then needs owned', RuntimeError, cl.notify)
cl = m.Condition(lock=m.Lock())
with cl:
    check('Condition(lock=...) too', cl.wait(0.01), False)
del shared_lock, cl
dp = m.dict(**{'__proto__': [1]})
dp._callmethod('update', (), {'constructor': 2, 'toString': 3})
check('keywords named like JS internals are keys', dp.copy(), {'__proto__': [1], 'constructor': 2, 'toString': 3})
nsp = m.Namespace(**{'__proto__': 5})
check('and namespace attributes', nsp._callmethod('__getattribute__', ('__proto__',)), 5)
del dp, nsp
dz = m.dict()
dz[-0.0] = 'z'
check('a -0.0 key stays a float', (repr(dz.copy()), str(dz), repr(dz.keys())), ("{-0.0: 'z'}", "{-0.0: 'z'}", '[-0.0]'))
from multiprocessing.managers import RemoteError
def traceback_tail(fn):
    try:
        fn()
    except RemoteError as e:
        return str(e).strip('-\\n ').splitlines()[-1]
check('a failed create ends its traceback as Python does', traceback_tail(lambda: m.Semaphore(-1)),
      'ValueError: semaphore initial value must be >= 0')
check('and a KeyError with its repr', traceback_tail(lambda: m._create('NoSuchTypeid')), "KeyError: 'NoSuchTypeid'")

shared = m.get_shared()
shared.put(('from python', sys.version_info[0], sys.version_info[1], 1.0))

del q, d, l, ns, v, a, lock, rl, s, c, e, b, jq, holder, inner, shared, t, ts, dz
gc.collect()
time.sleep(0.1)
check('objects freed', m._number_of_objects(), start)
for f in fails:
    print('FAIL', f)
print('DONE', len(fails))
`;

describe('through a ManagerServer, with CPython proxies', () => {
  const servers: ManagerServer[] = [];
  const shared = new SharedQueue();
  const runs = new Map<string, { proc: PythonProcess; lines: Promise<string[]> }>();

  before(async function () {
    this.timeout(20_000);
    if (pythons().length === 0) return;
    // Every version at once: each test then waits for its own.
    for (const py of pythons()) {
      const server = await ManagerServer.listen(['127.0.0.1', 0], { authkey: 'sync-test', registry: { get_shared: () => shared } });
      servers.push(server);
      const [host, port] = server.address as readonly [string, number];
      const proc = runPython(py, THROUGH_PROXIES, [host, String(port)]);
      const lines = (async () => {
        const out: string[] = [];
        for (;;) {
          const line = await proc.line();
          out.push(line);
          if (line.startsWith('DONE')) return out;
        }
      })();
      lines.catch(() => {});
      runs.set(py.version, { proc, lines });
    }
  });

  after(async () => {
    for (const { proc } of runs.values()) proc.kill();
    await Promise.all(servers.map((server) => server.close()));
  });

  forEachPython(undefined, (py) => {
    it(`CPython ${py.version}: every sync typeid behaves as its proxies expect`, async function () {
      this.timeout(60_000);
      const run = runs.get(py.version)!;
      const lines = await within(run.lines, 50_000, `python ${py.version}`);
      expect(lines.filter((line) => line.startsWith('FAIL'))).to.deep.equal([]);
      expect(lines[lines.length - 1]).to.equal('DONE 0');
      const item = await within(shared.get(true, 10), 12_000, 'the Node side reading the shared queue');
      expect(item).to.be.instanceOf(Tuple);
      expect((item as unknown[])[0]).to.equal('from python');
      expect((item as unknown[])[3]).to.deep.equal(new PyFloat(1));
    });
  });
});
