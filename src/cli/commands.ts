import { createInterface } from 'node:readline';
import type { Readable, Writable } from 'node:stream';
import {
  type Address,
  Client,
  type Connection,
  ConnectionStateError,
  EOFError,
  Listener,
  MpconnError,
  ProtocolError,
  type SerializerOption,
  UnpicklingError,
} from '../index.js';
import { type Format, type ListenCommand, parseValue, type SendCommand } from './args.js';
import { InputError, type Json, toTaggedJson } from './json-values.js';

/** Where a command reads and writes; the process's own streams in `mpconn`. */
export interface Io {
  stdin: Readable;
  stdout: Writable;
  stderr: Writable;
}

/** A failure that ends the command with exit code 1 and this one-line reason. */
export class CommandError extends Error {}

/**
 * `mpconn listen`: prints every message from every client until `stop`
 * aborts, then closes the Listener (which removes its socket file) and every
 * open connection.
 */
export async function listen(cmd: ListenCommand, io: Io, stop: AbortSignal): Promise<void> {
  let listener: Listener;
  try {
    listener = await Listener.listen(cmd.address, {
      family: cmd.family,
      authkey: cmd.authkey,
      serializer: serializerOf(cmd.format),
    });
  } catch (err) {
    throw new CommandError(`cannot listen on ${showAddress(cmd.address)}: ${reason(err)}`, { cause: err });
  }
  const open = new Set<Connection>();
  const served: Promise<void>[] = [];
  listener.on('handshakeError', (err: Error, peer: Address | null) => {
    line(io.stderr, `mpconn: ${peer === null ? 'a peer' : showPeer(peer) ?? 'a peer'} failed the handshake: ${reason(err)}`);
  });
  const shutdown = async (): Promise<void> => {
    await listener.close();
    await Promise.all([...open].map((conn) => conn.close()));
  };
  stop.addEventListener('abort', () => void shutdown(), { once: true });
  if (stop.aborted) await shutdown();

  const auth = cmd.authkey === null ? 'no authkey' : 'authkey required';
  line(io.stderr, `mpconn: listening on ${showAddress(listener.address)} (format ${cmd.format}, ${auth}); Ctrl-C stops`);
  let connection = 0;
  for await (const conn of listener) {
    const peer = showPeer(listener.lastAccepted);
    const id = connection++;
    open.add(conn);
    served.push(
      serve(conn, id, peer, cmd, io).finally(() => {
        open.delete(conn);
        return conn.close();
      }),
    );
  }
  await shutdown();
  await Promise.all(served);
}

async function serve(conn: Connection, id: number, peer: string | null, cmd: ListenCommand, io: Io): Promise<void> {
  const head = { connection: id, peer };
  for (let index = 0; ; index++) {
    let message: unknown;
    try {
      message = cmd.format === 'raw' ? await conn.recvBytes() : await conn.recv();
    } catch (err) {
      if (err instanceof EOFError) return;
      if (err instanceof ConnectionStateError && err.code === 'ERR_CLOSED') return; // we are shutting down
      const undecodable = undecodableLine(err);
      if (undecodable !== null) {
        jsonLine(io.stdout, { ...head, index, ...undecodable });
        continue;
      }
      line(io.stderr, `mpconn: connection ${id}${peer === null ? '' : ` (${peer})`} failed: ${reason(err)}`);
      return;
    }
    jsonLine(io.stdout, { ...head, index, message: render(message, cmd.format) });
    if (cmd.echo) {
      try {
        if (cmd.format === 'raw') await conn.sendBytes(message as Buffer);
        else await conn.send(message);
      } catch (err) {
        line(io.stderr, `mpconn: connection ${id}: cannot echo message ${index}: ${reason(err)}`);
      }
    }
  }
}

/** `mpconn send`: connects, sends the values (or stdin lines), prints `cmd.recv` replies. */
export async function send(cmd: SendCommand, io: Io): Promise<void> {
  let conn: Connection;
  try {
    conn = await Client(cmd.address, { family: cmd.family, authkey: cmd.authkey, serializer: serializerOf(cmd.format) });
  } catch (err) {
    throw new CommandError(`cannot connect to ${showAddress(cmd.address)}: ${reason(err)}`, { cause: err });
  }
  try {
    let sent = 0;
    const sendOne = async (value: unknown): Promise<void> => {
      try {
        if (cmd.format === 'raw') await conn.sendBytes(value as Uint8Array);
        else await conn.send(value);
      } catch (err) {
        // A value the format cannot encode is bad input (exit 2), not a connection failure.
        if (err instanceof TypeError || err instanceof RangeError) {
          throw new InputError(`message ${sent + 1} cannot be sent as ${cmd.format}: ${reason(err)}`, { cause: err });
        }
        throw new CommandError(`sending message ${sent + 1} failed: ${reason(err)}`, { cause: err });
      }
      sent++;
    };
    if (cmd.values !== null) {
      for (const value of cmd.values) await sendOne(value);
    } else {
      let lineNumber = 0;
      for await (const text of createInterface({ input: io.stdin, crlfDelay: Infinity })) {
        lineNumber++;
        if (text.trim() === '') continue;
        await sendOne(parseValue(text, cmd.format, `stdin line ${lineNumber}`));
      }
    }
    let undecodable = 0;
    for (let index = 0; index < cmd.recv; index++) {
      let message: unknown;
      try {
        message = cmd.format === 'raw' ? await conn.recvBytes() : await conn.recv();
      } catch (err) {
        const bad = undecodableLine(err);
        if (bad !== null) {
          jsonLine(io.stdout, { index, ...bad });
          undecodable++;
          continue;
        }
        if (err instanceof EOFError) {
          throw new CommandError(`the peer closed the connection after ${index} of ${cmd.recv} replies`, { cause: err });
        }
        throw new CommandError(`receiving reply ${index + 1} failed: ${reason(err)}`, { cause: err });
      }
      jsonLine(io.stdout, { index, message: render(message, cmd.format) });
    }
    if (undecodable > 0) throw new CommandError(`${undecodable} of ${cmd.recv} replies could not be decoded as ${cmd.format}`);
  } finally {
    await conn.close();
  }
}

function serializerOf(format: Format): SerializerOption | undefined {
  return format === 'raw' ? undefined : format;
}

function render(message: unknown, format: Format): Json {
  // JSON messages are JSON already: shown as received, without tags.
  return format === 'json' ? (message as Json) : toTaggedJson(message);
}

/** The fields of a line for a message that arrived whole but could not be decoded, or null for other errors. */
function undecodableLine(err: unknown): { error: { code: string; message: string }; bytes?: string } | null {
  if (err instanceof ProtocolError && err.code === 'ERR_DECODE') {
    const fields = { error: { code: err.code, message: oneLine(err.message) } };
    return err.data === undefined ? fields : { ...fields, bytes: err.data.toString('base64') };
  }
  if (err instanceof UnpicklingError) return { error: { code: err.code, message: oneLine(err.message) } };
  return null;
}

/** `host:port`, `[v6]:port`, or the path / pipe name. */
export function showAddress(address: Address): string {
  if (typeof address === 'string') return address.startsWith('\0') ? `@${address.slice(1)}` : address;
  const [host, port] = Array.isArray(address) ? address : [(address as { host: string }).host, (address as { port: number }).port];
  return host.includes(':') ? `[${host}]:${port}` : `${host}:${port}`;
}

/** A peer as printed: `host:port`, or null for a Unix socket (its peers have no name). */
function showPeer(peer: Address | null): string | null {
  if (peer === null || peer === '') return null;
  return showAddress(peer);
}

/** An error as one line: what happened, without a stack. */
export function reason(err: unknown): string {
  if (err instanceof MpconnError) return oneLine(`${err.message} (${err.name} ${err.code})`);
  if (err instanceof DOMException && err.name === 'TimeoutError') return oneLine(err.message);
  if (err instanceof Error) return oneLine(err.message);
  return oneLine(String(err));
}

function oneLine(text: string): string {
  return text.replace(/\s*[\r\n]+\s*/g, ' ').trim();
}

function line(stream: Writable, text: string): void {
  stream.write(`${text}\n`);
}

function jsonLine(stream: Writable, value: Json | Record<string, unknown>): void {
  stream.write(`${JSON.stringify(value)}\n`);
}
