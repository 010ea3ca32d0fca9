/**
 * Managers: CPython's `multiprocessing.managers` protocol in both roles, on
 * top of the public connection API (as auth is). `ManagerClient` uses the
 * objects a Python (or Node) manager server holds through `Proxy` objects;
 * `ManagerServer` holds objects that unmodified Python programs use.
 */
export { Kwargs, kwargs, Token } from './protocol.js';
export { currentCall } from './context.js';
export type { CallContext } from './context.js';
