import { createInterface } from 'node:readline';
import type { Readable, Writable } from 'node:stream';
import {
  type Address,
  AuthenticationError,
  Client,
  type Connection,
  ConnectionStateError,
  EOFError,
  Listener,
  MpconnError,
  type SerializerOption,
} from '../index.js';
import { type Serializer } from '../serializers/index.js';
import { resolveSerializer } from '../serializers/resolve.js';
import { CHALLENGE_PROBE_MS, type Format, type ListenCommand, parseValue, type SendCommand } from './args.js';
import { InputError, taggedJsonText } from './json-values.js';

/** Where a command reads and writes; the process's own streams in `mpconn`. */
export interface Io {
  stdin: Readable;
  stdout: Writable;
  stderr: Writable;
}

/** A failure that ends the command with exit code 1 and this one-line reason. */
export class CommandError extends Error {}

const CHALLENGE = Buffer.from('#CHALLENGE#', 'latin1');
const KEY_FLAGS = '--authkey-env NAME or --authkey-file PATH';

/**
 * `mpconn listen`: prints every message from every client until `stop`
 * aborts, then closes the Listener (which removes its socket file) and every
 * open connection. Nothing a client sends ends it: a message that cannot be
 * decoded or shown is printed as an error line, and the others are served on.
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
    const who = peer === null ? 'a peer' : showPeer(peer) ?? 'a peer';
    const hint = err instanceof AuthenticationError ? ' (does it use the same authkey?)' : '';
    line(io.stderr, `mpconn: ${who} failed the handshake: ${reason(err)}${hint}`);
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
      serve(conn, id, peer, cmd, io)
        .catch((err: unknown) => line(io.stderr, `mpconn: connection ${id} failed: ${reason(err)}`))
        .finally(() => {
          open.delete(conn);
          return conn.close().catch(() => {});
        }),
    );
  }
  await shutdown();
  await Promise.all(served);
}

async function serve(conn: Connection, id: number, peer: string | null, cmd: ListenCommand, io: Io): Promise<void> {
  const head = JSON.stringify({ connection: id, peer }).slice(0, -1);
  const decoder = resolveSerializer(serializerOf(cmd.format));
  for (let index = 0; ; index++) {
    let bytes: Buffer;
    try {
      bytes = await conn.recvBytes();
    } catch (err) {
      if (err instanceof EOFError) return;
      if (err instanceof ConnectionStateError && err.code === 'ERR_CLOSED') return; // we are shutting down
      line(io.stderr, `mpconn: connection ${id}${peer === null ? '' : ` (${peer})`} failed: ${reason(err)}`);
      return;
    }
    const shown = show(bytes, cmd.format, decoder);
    io.stdout.write(`${head},"index":${index},${shown.fields}}\n`);
    if (cmd.echo && shown.ok) {
      try {
        if (cmd.format === 'raw') await conn.sendBytes(bytes);
        else await conn.send(shown.value);
      } catch (err) {
        line(io.stderr, `mpconn: connection ${id}: cannot echo message ${index}: ${reason(err)}`);
      }
    }
  }
}

/** A received message as the JSON text of its line's fields: `"message":...`, or `"error":...,"bytes":...`. */
type Shown = { ok: true; value: unknown; fields: string } | { ok: false; fields: string; hint: string | null };

/**
 * Decodes and renders one message; never throws. Whatever goes wrong (not
 * valid in the format, nested too deep to render, anything else) becomes an
 * error line that carries the message's bytes, so nothing is lost.
 */
function show(bytes: Buffer, format: Format, decoder: Serializer): Shown {
  try {
    const value = format === 'raw' ? bytes : decoder.decode(bytes);
    // JSON messages are JSON already: shown as received, without tags.
    return { ok: true, value, fields: `"message":${taggedJsonText(value, { tagged: format !== 'json' })}` };
  } catch (err) {
    const code = err instanceof MpconnError ? err.code : err instanceof RangeError ? 'ERR_RENDER' : 'ERR_DECODE';
    const hint = formatHint(bytes, format);
    const message = oneLine((err as Error)?.message ?? String(err)) + (hint === null ? '' : `; ${hint}`);
    const fields = JSON.stringify({ error: { code, message }, bytes: bytes.toString('base64') }).slice(1, -1);
    return { ok: false, fields, hint };
  }
}

/** What the bytes of a message that failed to decode look like instead, as a hint naming the flag to use. */
export function formatHint(bytes: Uint8Array, format: Format): string | null {
  if (startsWith(bytes, CHALLENGE)) return `it is an authentication challenge: give the key with ${KEY_FLAGS}`;
  if (format !== 'pickle' && bytes[0] === 0x80) {
    return 'it starts with 0x80, the pickle protocol byte (Python conn.send()): use --format pickle';
  }
  if (format !== 'json' && looksLikeJson(bytes)) return 'it is JSON text: use --format json';
  if (format === 'pickle' || format === 'json') {
    try {
      resolveSerializer('msgpack').decode(bytes);
      return 'it decodes as msgpack: use --format msgpack (the default)';
    } catch {
      // not msgpack either
    }
  }
  return format === 'raw' ? null : 'use --format raw to see the bytes as they are';
}

function looksLikeJson(bytes: Uint8Array): boolean {
  const first = bytes.find((b) => b !== 0x20 && b !== 0x0a && b !== 0x0d && b !== 0x09);
  // `{`, `[` or `"`: a bare number or word is valid msgpack as often as JSON, so it proves nothing.
  if (first !== 0x7b && first !== 0x5b && first !== 0x22) return false;
  try {
    JSON.parse(Buffer.from(bytes).toString('utf8'));
    return true;
  } catch {
    return false;
  }
}

function startsWith(bytes: Uint8Array, prefix: Uint8Array): boolean {
  return bytes.length >= prefix.length && prefix.every((b, i) => bytes[i] === b);
}

/** `mpconn send`: connects, sends the values (or stdin lines), prints `cmd.recv` replies. */
export async function send(cmd: SendCommand, io: Io): Promise<void> {
  const target = showAddress(cmd.address);
  let conn: Connection;
  try {
    conn = await Client(cmd.address, {
      family: cmd.family,
      authkey: cmd.authkey,
      serializer: serializerOf(cmd.format),
      ...(cmd.timeout === undefined ? {} : { timeout: cmd.timeout }),
    });
  } catch (err) {
    throw new CommandError(`cannot connect to ${target}: ${reason(err)}${connectHint(err, cmd)}`, { cause: err });
  }
  try {
    const keyRequired = (): CommandError =>
      new CommandError(`${target} requires an authkey (it sent an authentication challenge): use ${KEY_FLAGS}`);
    /** Without a key: whether a challenge is buffered (it came late, and a message was taken as a wrong answer). */
    const challengeArrived = async (): Promise<boolean> => {
      if (cmd.authkey !== null) return false;
      try {
        return (await conn.poll(0)) && startsWith(await conn.recvBytes(), CHALLENGE);
      } catch {
        return false;
      }
    };

    let early: Buffer | null = null;
    if (cmd.authkey === null) {
      try {
        if (await conn.poll(Math.min(CHALLENGE_PROBE_MS, cmd.timeout ?? Infinity))) early = await conn.recvBytes();
      } catch (err) {
        if (!(err instanceof EOFError)) throw new CommandError(`connection to ${target} failed: ${reason(err)}`, { cause: err });
      }
      if (early !== null && startsWith(early, CHALLENGE)) throw keyRequired();
    }

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
        if (await challengeArrived()) throw keyRequired();
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

    const decoder = resolveSerializer(serializerOf(cmd.format));
    const wait = cmd.timeout ?? Infinity;
    let undecodable = 0;
    let firstHint: string | null = null;
    for (let index = 0; index < cmd.recv; index++) {
      let bytes: Buffer;
      try {
        if (index === 0 && early !== null) {
          bytes = early;
        } else {
          if (!(await conn.poll(wait))) {
            throw new CommandError(
              `reply ${index + 1} of ${cmd.recv} did not come within ${wait} ms: raise --timeout (now ${wait})`,
            );
          }
          bytes = await conn.recvBytes();
        }
      } catch (err) {
        if (err instanceof CommandError) throw err;
        if (err instanceof EOFError) {
          throw new CommandError(`the peer closed the connection after ${index} of ${cmd.recv} replies`, { cause: err });
        }
        throw new CommandError(`receiving reply ${index + 1} failed: ${reason(err)}`, { cause: err });
      }
      if (index === 0 && cmd.authkey === null && startsWith(bytes, CHALLENGE)) throw keyRequired();
      const shown = show(bytes, cmd.format, decoder);
      io.stdout.write(`{"index":${index},${shown.fields}}\n`);
      if (!shown.ok) {
        undecodable++;
        firstHint ??= shown.hint;
      }
    }
    if (undecodable > 0) {
      const hint = firstHint === null ? '' : `: ${firstHint}`;
      throw new CommandError(`${undecodable} of ${cmd.recv} replies could not be decoded as ${cmd.format}${hint}`);
    }
    if (await challengeArrived()) throw keyRequired();
  } finally {
    await conn.close().catch(() => {});
  }
}

/** What to try when connecting failed, naming the flag; '' when there is nothing to add. */
function connectHint(err: unknown, cmd: SendCommand): string {
  if (err instanceof DOMException && err.name === 'TimeoutError') {
    const ms = cmd.timeout ?? 20_000;
    const key =
      cmd.authkey === null
        ? ''
        : '; a listener without an authkey never starts the handshake: leave out --authkey-env/--authkey-file if it has none';
    return ` (no connection within ${ms} ms: raise --timeout${key})`;
  }
  if (err instanceof AuthenticationError) {
    // The library reports a handshake that never started (no challenge came) as an authentication failure too.
    return err.reason === 'no-challenge'
      ? ' (if the listener has no authkey, leave out --authkey-env/--authkey-file; else raise --timeout)'
      : ' (wrong key? check --authkey-env / --authkey-file)';
  }
  const code = (err as NodeJS.ErrnoException | null)?.code;
  if (cmd.family === 'AF_INET' && code === 'ECONNREFUSED') return ' (nothing listens on that port: is the listener up, and is it the right host:port?)';
  if (cmd.family === 'AF_UNIX' && (code === 'ENOENT' || code === 'ECONNREFUSED')) {
    return code === 'ENOENT'
      ? ' (no socket file there; for TCP give host:port: missing :port?)'
      : ' (a socket file with nobody listening on it)';
  }
  return '';
}

function serializerOf(format: Format): SerializerOption | undefined {
  return format === 'raw' ? undefined : format;
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

