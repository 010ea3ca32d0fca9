/**
 * The SyncManager typeids a `ManagerServer` registers when `sync` is on
 * (Python's `SyncManager`: `Queue`, `dict`, `Lock` …, not `Pool`). Their
 * objects keep what Python clients store losslessly (a tuple stays a tuple,
 * 1.0 a float), so the server decodes requests for them with the lossless
 * pickle decoder, however they were registered (`() => sharedQueue` too).
 */
import {
  SharedArray,
  SharedBarrier,
  SharedCondition,
  SharedDict,
  SharedEvent,
  SharedIterator,
  SharedList,
  SharedLock,
  SharedNamespace,
  SharedQueue,
  SharedRLock,
  SharedSemaphore,
  SharedValue,
  syncTypeids,
} from './sync/index.js';
import type { SyncTypeid } from './sync/index.js';

export type SyncRegistration = SyncTypeid;

export function syncRegistrations(): SyncRegistration[] {
  return syncTypeids();
}

// Subclasses (SharedJoinableQueue, SharedBoundedSemaphore) are covered by their bases.
const SYNC_CLASSES: ReadonlyArray<abstract new (...args: never[]) => object> = [
  SharedArray,
  SharedBarrier,
  SharedCondition,
  SharedDict,
  SharedEvent,
  SharedIterator,
  SharedList,
  SharedLock,
  SharedNamespace,
  SharedQueue,
  SharedRLock,
  SharedSemaphore,
  SharedValue,
];

/** Whether `obj` is one of the SyncManager classes, which want their requests decoded losslessly. */
export function isSyncObject(obj: unknown): boolean {
  return SYNC_CLASSES.some((cls) => obj instanceof cls);
}
