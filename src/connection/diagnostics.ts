/**
 * `NODE_DEBUG=mpconn` lines and `diagnostics_channel` events for the life of
 * connections: connect, accept, handshake, close, framing errors. Both cost
 * one boolean test when nobody listens: debuglog is checked once (its
 * `enabled`), and a channel message is only built when the channel has
 * subscribers.
 */
import diagnostics from 'node:diagnostics_channel';
import { debuglog } from 'node:util';

type Debug = ReturnType<typeof debuglog>;

let debugFn: Debug | null = null;
let debugEnabled: boolean | null = null;

/** Whether `NODE_DEBUG` names `mpconn` (read on first use, as Node's own debuglog does). */
export function debugging(): boolean {
  if (debugEnabled === null) {
    debugFn = debuglog('mpconn');
    debugEnabled = debugFn.enabled;
  }
  return debugEnabled;
}

/** One `MPCONN <pid>: ...` line on stderr when `NODE_DEBUG=mpconn`. */
export function debug(format: string, ...args: unknown[]): void {
  if (debugging()) debugFn!(format, ...args);
}

/** The channel names, as documented in the README. */
export const channels = {
  clientConnect: diagnostics.channel('mpconn:client:connect'),
  listenerAccept: diagnostics.channel('mpconn:listener:accept'),
  handshakeOk: diagnostics.channel('mpconn:handshake:ok'),
  handshakeError: diagnostics.channel('mpconn:handshake:error'),
  connectionClose: diagnostics.channel('mpconn:connection:close'),
  connectionError: diagnostics.channel('mpconn:connection:error'),
} as const;

/** Publishes `make()` on `channel` only if someone subscribed (the message is never built otherwise). */
export function publish(channel: diagnostics.Channel, make: () => object): void {
  if (channel.hasSubscribers) channel.publish(make());
}

/** How an address reads in a debug line. */
export function showAddress(address: unknown): string {
  if (typeof address === 'string') return address === '' ? "''" : JSON.stringify(address);
  if (Array.isArray(address)) return `${String(address[0])}:${String(address[1])}`;
  if (address !== null && typeof address === 'object') {
    const a = address as { host?: unknown; port?: unknown };
    return `${String(a.host)}:${String(a.port)}`;
  }
  return String(address);
}
