/**
 * The objects behind Python's `SyncManager` typeids (`Queue`, `dict`, `Lock`
 * …), written so that Python's proxy classes (`AutoProxy`, `DictProxy`,
 * `AcquirerProxy`, `ConditionProxy` … of `multiprocessing/managers.py`, every
 * CPython 3.6–3.13) see what a CPython manager server would give them: the
 * same method names and arguments, results, and Python exceptions (thrown as
 * inert `PyObject` records, which the server answers `('#ERROR', record)`).
 *
 * A `ManagerServer` started with `sync` registers `syncTypeids()`. The classes
 * are exported too, so a Node program can hold one and use it itself while
 * Python clients use it through the server. Besides the exposed methods, each
 * has `__repr__()` (what the server answers `__repr__`/`__str__` with, as
 * Python's `repr()`), and the containers `__getvalue__()` (the `#GETVALUE`
 * answer: what a CPython server would pickle, e.g. a dict's contents as a
 * `Map`, a Namespace as a `multiprocessing.managers.Namespace` record).
 */
export { SharedArray, SharedDict, SharedIterator, SharedList, SharedNamespace, SharedValue } from './containers.js';
export {
  SharedBarrier,
  SharedBoundedSemaphore,
  SharedCondition,
  SharedEvent,
  SharedLock,
  SharedRLock,
  SharedSemaphore,
} from './locks.js';
export { SharedJoinableQueue, SharedQueue } from './queue.js';
