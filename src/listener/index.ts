/** Listener, Client, Pipe and addresses. */
export { addressType, arbitraryAddress } from './address.js';
export type { Address, Family, InetAddress } from './address.js';
export { Client, connect } from './client.js';
export type { ClientOptions } from './client.js';
export { Listener } from './listener.js';
export type { AcceptOptions, ListenerEvents, ListenerOptions } from './listener.js';
export { Pipe } from './pipe.js';
