/**
 * Managers: CPython's `multiprocessing.managers` protocol in both roles, on
 * top of the public connection API (as auth is). `ManagerClient` uses the
 * objects a Python (or Node) manager server holds through `Proxy` objects;
 * `ManagerServer` holds objects that unmodified Python programs use.
 */
export { Kwargs, kwargs, Token } from './protocol.js';
export { currentCall } from './context.js';
export type { CallContext } from './context.js';
export { ManagerClient } from './client.js';
export type { ManagerClientOptions } from './client-options.js';
export { Proxy } from './proxy.js';
export type {
  AcquirerProxy,
  AnyProxy,
  ArrayProxy,
  BarrierProxy,
  ConditionProxy,
  DictProxy,
  EventProxy,
  ListProxy,
  NamespaceProxy,
  ProxyMethod,
  QueueProxy,
  ValueProxy,
} from './proxy.js';
export { ManagerServer } from './server.js';
export type { ManagerCallable, ManagerServerOptions, RegisterOptions } from './server.js';
export * from './sync/index.js';
