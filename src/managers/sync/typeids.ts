/** The SyncManager typeids a `ManagerServer` registers with `sync`, and which objects are theirs. */
import * as classes from './index.js';
import { bind, iterate } from './values.js';

/** One `SyncManager` typeid: what `ManagerServer.register()` takes. */
export interface SyncTypeid {
  readonly typeid: string;
  /** Called with the decoded `create` arguments (and one trailing `Kwargs` when there were keywords). */
  readonly callable: (...args: unknown[]) => object;
  /** The method names Python's proxy class for this typeid calls (dunder names included). */
  readonly exposed?: readonly string[];
  /** Methods whose result is served as a new object of another typeid (`dict.__iter__` → `Iterator`). */
  readonly methodToTypeid?: Readonly<Record<string, string>>;
}

const ACQUIRER = ['acquire', 'release'];
/**
 * `public_methods(queue.Queue())`, which `AutoProxy` gets back from `create`:
 * CPython 3.13's, with `shutdown` (older clients never call it).
 */
const QUEUE = ['empty', 'full', 'get', 'get_nowait', 'join', 'put', 'put_nowait', 'qsize', 'shutdown', 'task_done'];

/** `threading.Lock()` and the like take no arguments: a TypeError as Python's for any. */
function noArguments(typeid: string, args: readonly unknown[], make: () => object): object {
  bind(typeid, args, []);
  return make();
}

/**
 * The typeids of CPython's `SyncManager` except `Pool`, with the exposed
 * names of the proxy classes Python clients build for them (`exposed` as
 * `BaseManager.register` takes it from the proxy type's `_exposed_`). Each
 * call gives new callables; the objects they make are independent.
 */
export function syncTypeids(): SyncTypeid[] {
  return [
    { typeid: 'Queue', callable: (...args) => new classes.SharedQueue(...args), exposed: QUEUE },
    { typeid: 'JoinableQueue', callable: (...args) => new classes.SharedJoinableQueue(...args), exposed: QUEUE },
    {
      typeid: 'dict',
      callable: (...args) => new classes.SharedDict(...args),
      exposed: [
        '__contains__', '__delitem__', '__getitem__', '__iter__', '__len__', '__setitem__', 'clear', 'copy', 'get',
        'items', 'keys', 'pop', 'popitem', 'setdefault', 'update', 'values',
      ],
      methodToTypeid: { __iter__: 'Iterator' },
    },
    {
      typeid: 'list',
      callable: (...args) => new classes.SharedList(...args),
      exposed: [
        '__add__', '__contains__', '__delitem__', '__getitem__', '__len__', '__mul__', '__reversed__', '__rmul__',
        '__setitem__', 'append', 'count', 'extend', 'index', 'insert', 'pop', 'remove', 'reverse', 'sort', '__imul__',
      ],
    },
    {
      typeid: 'Namespace',
      callable: (...args) => new classes.SharedNamespace(...args),
      exposed: ['__getattribute__', '__setattr__', '__delattr__'],
    },
    { typeid: 'Value', callable: (...args) => new classes.SharedValue(...args), exposed: ['get', 'set'] },
    { typeid: 'Array', callable: (...args) => new classes.SharedArray(...args), exposed: ['__len__', '__getitem__', '__setitem__'] },
    { typeid: 'Lock', callable: (...args) => noArguments('Lock', args, () => new classes.SharedLock()), exposed: ACQUIRER },
    { typeid: 'RLock', callable: (...args) => noArguments('RLock', args, () => new classes.SharedRLock()), exposed: ACQUIRER },
    { typeid: 'Semaphore', callable: (...args) => new classes.SharedSemaphore(...args), exposed: ACQUIRER },
    { typeid: 'BoundedSemaphore', callable: (...args) => new classes.SharedBoundedSemaphore(...args), exposed: ACQUIRER },
    {
      typeid: 'Condition',
      callable: (...args) => new classes.SharedCondition(...args),
      exposed: ['acquire', 'release', 'wait', 'notify', 'notify_all'],
    },
    { typeid: 'Event', callable: (...args) => noArguments('Event', args, () => new classes.SharedEvent()), exposed: ['is_set', 'set', 'clear', 'wait'] },
    {
      typeid: 'Barrier',
      callable: (...args) => new classes.SharedBarrier(...args),
      exposed: ['__getattribute__', 'wait', 'abort', 'reset'],
    },
    // What dict.__iter__ returns is served under this typeid, as Python's server calls it with the iterator.
    {
      typeid: 'Iterator',
      callable: (...args) => {
        const [it] = bind('Iterator', args, [{ name: 'iterable' }]);
        return it instanceof classes.SharedIterator ? it : new classes.SharedIterator(iterate(it));
      },
      exposed: ['__next__', 'send', 'throw', 'close'],
    },
  ];
}

// Every class the sync folder exports (subclasses are covered by their bases anyway).
const SYNC_CLASSES: ReadonlyArray<abstract new (...args: never[]) => object> = Object.values(classes);

const SYNC_CLASS_SET: ReadonlySet<unknown> = new Set(SYNC_CLASSES);

/**
 * Whether `obj` was made by one of these classes itself, not by a subclass.
 * The server calls its methods with the caller known for their synchronous
 * part only (these classes read it there); a subclass's own methods may read
 * `currentCall()` after an `await`, so its calls are tracked.
 */
export function isPlainSyncObject(obj: unknown): boolean {
  return typeof obj === 'object' && obj !== null && SYNC_CLASS_SET.has(Object.getPrototypeOf(obj)?.constructor);
}

/**
 * Whether `obj` is one of these classes. A server decodes requests for them
 * losslessly (a tuple stays a tuple, 1.0 a float), however they were
 * registered (`() => sharedQueue` too).
 */
export function isSyncObject(obj: unknown): boolean {
  return SYNC_CLASSES.some((cls) => obj instanceof cls);
}
