import { readFileSync } from 'node:fs';
import { isIP } from 'node:net';
import { parseArgs } from 'node:util';
import type { Address, Family } from '../index.js';
import { fromTaggedJson, InputError } from './json-values.js';

/**
 * How long `send` without a key waits, after connecting and before sending
 * anything, for the authentication challenge a listener that requires a key
 * sends at once. Without this a keyless `send` to such a listener "succeeds":
 * the listener takes the first message as a (wrong) answer to its challenge
 * and drops the connection, and the message is lost.
 */
export const CHALLENGE_PROBE_MS = 200;

/** A command line that cannot run: exit code 2, with a short usage hint. */
export class UsageError extends Error {}

export type Format = 'msgpack' | 'pickle' | 'json' | 'raw';

interface Common {
  address: Address;
  family: Family;
  format: Format;
  authkey: Uint8Array | null;
}

export interface ListenCommand extends Common {
  command: 'listen';
  echo: boolean;
}

export interface SendCommand extends Common {
  command: 'send';
  /** The values from the command line, or null: read stdin lines. */
  values: unknown[] | null;
  recv: number;
  /** `--timeout`: ms for connecting and for each reply; undefined: the defaults (20 s to connect, replies unbounded). */
  timeout?: number;
}

export type Invocation = ListenCommand | SendCommand | { command: 'help' } | { command: 'version' };

const FORMATS: readonly Format[] = ['msgpack', 'pickle', 'json', 'raw'];
const FAMILIES: readonly Family[] = ['AF_INET', 'AF_UNIX', 'AF_PIPE'];

export const USAGE = `usage: mpconn listen ADDRESS [--format F] [--authkey-env NAME | --authkey-file PATH] [--echo]
       mpconn send ADDRESS [JSON...] [--format F] [--authkey-env NAME | --authkey-file PATH] [--recv N] [--timeout MS]
       mpconn --help`;

export const HELP = `mpconn: talk to Python's multiprocessing.connection (and to mpconn) from the shell.

${USAGE}

Commands
  listen ADDRESS        Listen, accept any number of clients, and print every
                        message received as one JSON line on stdout:
                          {"connection":0,"peer":"127.0.0.1:54321","index":0,"message":...}
                        connection: 0, 1, ... in accept order; peer: "host:port"
                        ("[::1]:port" for IPv6), null for Unix sockets; index: 0, 1, ...
                        within that connection. A message that cannot be decoded
                        prints {"connection":..,"peer":..,"index":..,"error":{"code","message"},"bytes":base64}
                        (the message says which --format it looks like, when it
                        looks like one) and the connection goes on. Any nesting
                        depth is printed; nothing a client sends stops listen.
                        "listening on ADDRESS" and handshake failures go to stderr.
                        Runs until Ctrl-C (SIGINT) or SIGTERM: it then closes every
                        connection, removes the socket file and exits with 0.
  send ADDRESS [JSON...]
                        Connect, send each JSON argument as one message (or, with
                        no JSON arguments, each non-empty stdin line, as it
                        arrives), then print --recv N replies as JSON lines:
                          {"index":0,"message":...}
                        Put -- before JSON values that start with "-" (e.g. -- -1).
                        Without a key, send first waits up to ${CHALLENGE_PROBE_MS} ms for the
                        challenge a listener that requires a key sends at once,
                        and then stops (exit 1) before sending anything.

ADDRESS
  host:port, [ipv6]:port  TCP (AF_INET); an empty host (":6000") listens on all interfaces
  /path/to.sock           a Unix socket (AF_UNIX): anything else, except what is surely a
                          TCP address missing its port (127.0.0.1, localhost, [::1],
                          host:notaport, http://...), a usage error ("missing :port?");
                          --family AF_UNIX takes such a name as a socket path
  @name                   Linux: a socket in the abstract namespace (Python's '\\0name')
  \\\\.\\pipe\\name           a Windows named pipe (AF_PIPE); with --family AF_PIPE a bare name

Options
  --format F          msgpack (default), pickle (Python's conn.send/recv), json
                      (UTF-8 JSON text) or raw (the message bytes themselves)
  --authkey-env NAME  the authkey is the UTF-8 value of environment variable NAME
                      (which must be set and not empty)
  --authkey-file PATH
                      the authkey is the file's bytes, minus ONE trailing newline
                      ("\\n" or "\\r\\n"), so 'echo secret > key' works
                      (the key itself is never given on the command line)
  --family F          AF_INET, AF_UNIX or AF_PIPE, when the address form is not enough
  --recv N            send: after sending, print N replies (default 0)
  --timeout MS        send: give up when connecting (with the handshake) or waiting
                      for any one reply takes longer: milliseconds (500, 500ms),
                      seconds (2s), or none. Default: 20000 to connect, as Python's
                      Client; replies are waited for without limit
  --echo              listen: also send each received message back to its sender
  -h, --help          this help;  --version  the version

Values (msgpack and pickle; json is plain JSON both ways)
  Messages are printed as JSON, and JSON given to send is read the same way. Values
  JSON cannot hold are one-key "tagged" objects, accepted by send as well:
    bytes          {"$bytes":"<base64>"}        big int     {"$bigint":"123456789012345678901"}
    NaN/Infinity   {"$float":"NaN"}             Map         {"$map":[[key,value],...]}
    Set            {"$set":[...]}               Date        {"$date":"2024-01-01T00:00:00.000Z"}
    an object with a key starting with "$"      {"$object":{...}}   (its keys taken literally)
  Printed only: any other class instance (e.g. a pickled Python object) as
  {"$type":"PyObject",...its fields}, and a cycle as {"$cycle":true}.
  raw: listen prints each message as {"$bytes":"<base64>"}; send takes a JSON string
  (sent as its UTF-8 bytes) or {"$bytes":"<base64>"}.

Exit status
  0    done; for listen: stopped by Ctrl-C (SIGINT) or SIGTERM, its normal end
  1    connecting, listening or authentication failed, the peer went away before
       the replies asked for, a reply did not come within --timeout, or a reply
       could not be decoded: one line on stderr, naming the flag that fixes it
       when there is one (--authkey-env, --format pickle, --timeout, host:port)
  2    bad arguments or input (a JSON argument or stdin line that is not valid
       JSON, or a value the format cannot encode): one line on stderr
  130  send interrupted by Ctrl-C (143: by SIGTERM)

Examples
  mpconn listen 127.0.0.1:6000 --format pickle --authkey-env APP_KEY
  mpconn send 127.0.0.1:6000 '{"cmd":"ping"}' --format json --recv 1
  printf '%s\\n' 1 2 3 | mpconn send /tmp/app.sock
`;

/** Parses `argv` (without `node` and the script) into what to run, or throws UsageError. */
export function parseCommandLine(argv: readonly string[], env: NodeJS.ProcessEnv): Invocation {
  let parsed;
  try {
    parsed = parseArgs({
      args: [...argv],
      allowPositionals: true,
      strict: true,
      options: {
        format: { type: 'string' },
        'authkey-env': { type: 'string' },
        'authkey-file': { type: 'string' },
        family: { type: 'string' },
        recv: { type: 'string' },
        timeout: { type: 'string' },
        echo: { type: 'boolean' },
        help: { type: 'boolean', short: 'h' },
        version: { type: 'boolean' },
      },
    });
  } catch (err) {
    const message = (err as Error).message.split('\n')[0]!;
    if (argv.some((arg) => arg === '--authkey' || arg.startsWith('--authkey='))) {
      throw new UsageError('the key is never given on the command line: use --authkey-env NAME or --authkey-file PATH');
    }
    throw new UsageError(message);
  }
  const { values: opts, positionals } = parsed;
  if (opts.help === true || positionals[0] === 'help') return { command: 'help' };
  if (opts.version === true) return { command: 'version' };

  const [command, addressText, ...rest] = positionals;
  if (command === undefined) throw new UsageError('missing command: listen or send');
  if (command !== 'listen' && command !== 'send') {
    throw new UsageError(`unknown command ${JSON.stringify(command)}: use listen or send`);
  }
  if (addressText === undefined || addressText === '') throw new UsageError(`${command}: missing ADDRESS`);

  const format = oneOf(opts.format ?? 'msgpack', FORMATS, '--format');
  const family = opts.family === undefined ? undefined : oneOf(opts.family, FAMILIES, '--family');
  const { address, family: resolvedFamily } = parseAddress(addressText, family);
  const authkey = readAuthkey(opts['authkey-env'], opts['authkey-file'], env);
  const common = { address, family: resolvedFamily, format, authkey };

  if (command === 'listen') {
    if (rest.length > 0) throw new UsageError(`listen takes one ADDRESS; unexpected ${JSON.stringify(rest[0])}`);
    if (opts.recv !== undefined) throw new UsageError('--recv is an option of send');
    if (opts.timeout !== undefined) throw new UsageError('--timeout is an option of send');
    return { command, ...common, echo: opts.echo === true };
  }
  if (opts.echo === true) throw new UsageError('--echo is an option of listen');
  const recv = opts.recv === undefined ? 0 : count(opts.recv, '--recv');
  const values = rest.length === 0 ? null : rest.map((text, i) => parseValue(text, format, `argument ${i + 1}`));
  const timeout = opts.timeout === undefined ? undefined : duration(opts.timeout, '--timeout');
  return { command, ...common, values, recv, ...(timeout === undefined ? {} : { timeout }) };
}

function oneOf<T extends string>(value: string, allowed: readonly T[], what: string): T {
  if (!(allowed as readonly string[]).includes(value)) {
    throw new UsageError(`${what} must be one of ${allowed.join(', ')}; got ${JSON.stringify(value)}`);
  }
  return value as T;
}

function count(text: string, what: string): number {
  if (!/^\d+$/.test(text) || !Number.isSafeInteger(Number(text))) {
    throw new UsageError(`${what} must be a whole number, got ${JSON.stringify(text)}`);
  }
  return Number(text);
}

/**
 * `--timeout`: milliseconds, as everywhere in mpconn (`500`, or `500ms`);
 * `2s` or `1.5s` in seconds; `none` for no limit at all.
 */
export function duration(text: string, what: string): number {
  if (text === 'none') return Infinity;
  const m = /^(\d+(?:\.\d+)?)(ms|s)?$/.exec(text);
  const ms = m === null ? NaN : Number(m[1]) * (m[2] === 's' ? 1000 : 1);
  if (!Number.isFinite(ms) || ms <= 0) {
    throw new UsageError(`${what} must be a time above 0 in milliseconds (500, 500ms), seconds (2s) or none; got ${JSON.stringify(text)}`);
  }
  return ms;
}

const HOST_PORT = /^(?:\[([^\]]*)\]|([^/\\:[\]]*)):(\d{1,5})$/;

/** `scheme://...`: a URL, which mpconn does not take. */
const URL_FORM = /^[a-z][a-z0-9+.-]*:\/\//i;
/** `host:anything` (no path separator): TCP meant, with a port that is not a number. */
const HOST_BAD_PORT = /^(?:\[([^\]]*)\]|([^/\\:[\]]+)):([^/\\]*)$/;

/**
 * `host:port` and `[v6]:port` are TCP, a name starting with `\\` is a
 * Windows pipe, anything else is a Unix socket path; `--family` settles
 * what the form cannot (a relative socket path that looks like `a:1`).
 * What is almost surely a TCP address with the port missing or mistyped
 * (`127.0.0.1`, `localhost`, `[::1]`, `host:notaport`, a URL) is a usage
 * error with a "missing :port?" hint rather than a socket path that does
 * not exist; `--family AF_UNIX` (or `./127.0.0.1`) takes it as a path.
 */
export function parseAddress(text: string, family: Family | undefined): { address: Address; family: Family } {
  const inet = HOST_PORT.exec(text);
  const looks: Family = inet !== null ? 'AF_INET' : text.startsWith('\\\\') ? 'AF_PIPE' : 'AF_UNIX';
  const chosen = family ?? looks;
  if (chosen === 'AF_PIPE' && process.platform !== 'win32') {
    throw new UsageError(`AF_PIPE (Windows named pipes) is not available on ${process.platform}: use a Unix socket path`);
  }
  if (chosen === 'AF_UNIX' && process.platform === 'win32') {
    throw new UsageError('AF_UNIX is not available on Windows: use a named pipe (\\\\.\\pipe\\name)');
  }
  if (chosen === 'AF_INET' || (family === undefined && chosen === 'AF_UNIX')) {
    const mistake = inet === null ? inetMistake(text) : null;
    if (mistake !== null) throw new UsageError(mistake);
  }
  if (chosen === 'AF_INET') {
    if (inet === null) throw new UsageError(`${JSON.stringify(text)} is not host:port or [ipv6]:port`);
    const port = Number(inet[3]);
    if (port > 65535) throw new UsageError(`port ${port} is out of range (0-65535)`);
    return { address: [inet[1] ?? inet[2] ?? '', port], family: chosen };
  }
  if (chosen === 'AF_PIPE' && !text.startsWith('\\\\')) return { address: `\\\\.\\pipe\\${text}`, family: chosen };
  if (chosen === 'AF_UNIX' && text.startsWith('@') && process.platform === 'linux') {
    return { address: `\0${text.slice(1)}`, family: chosen }; // a NUL cannot be typed in an argument
  }
  return { address: text, family: chosen };
}

/** Why `text`, which is not host:port, still looks like a TCP address; null when it may well be a socket path. */
function inetMistake(text: string): string | null {
  const asPath = `or, for a Unix socket of that name, --family AF_UNIX`;
  if (URL_FORM.test(text)) {
    let url: URL | null = null;
    try {
      url = new URL(text);
    } catch {
      url = null;
    }
    if (url !== null && url.hostname !== '') {
      const host = url.hostname;
      return url.port === ''
        ? `${JSON.stringify(text)} is a URL without a port: missing :port? mpconn takes host:port (e.g. ${host}:6000)`
        : `${JSON.stringify(text)} is a URL: mpconn takes host:port, without the scheme (${host}:${url.port})`;
    }
    return `${JSON.stringify(text)} is a URL: mpconn takes host:port (e.g. localhost:6000)`;
  }
  const bare = text.startsWith('[') && text.endsWith(']') ? text.slice(1, -1) : text;
  if (isIP(bare) !== 0 || bare === 'localhost') {
    const example = isIP(bare) === 6 ? `[${bare}]:6000` : `${bare}:6000`;
    return `${JSON.stringify(text)} has no port: missing :port? (e.g. ${example}; ${asPath})`;
  }
  const bad = HOST_BAD_PORT.exec(text);
  if (bad !== null) {
    const port = bad[3]!;
    return port === ''
      ? `${JSON.stringify(text)} has no port after the ":": missing :port? (e.g. ${text}6000)`
      : `port ${JSON.stringify(port)} in ${JSON.stringify(text)} is not a number (0-65535): host:port, e.g. ${bad[1] === undefined ? bad[2] : `[${bad[1]}]`}:6000 (${asPath})`;
  }
  return null;
}

function readAuthkey(envName: string | undefined, file: string | undefined, env: NodeJS.ProcessEnv): Uint8Array | null {
  if (envName !== undefined && file !== undefined) throw new UsageError('give --authkey-env or --authkey-file, not both');
  if (envName !== undefined) {
    const value = env[envName];
    if (value === undefined) throw new UsageError(`--authkey-env: environment variable ${envName} is not set`);
    if (value === '') throw new UsageError(`--authkey-env: environment variable ${envName} is empty`);
    return Buffer.from(value, 'utf8');
  }
  if (file !== undefined) {
    let bytes: Buffer;
    try {
      bytes = readFileSync(file);
    } catch (err) {
      throw new UsageError(`--authkey-file: cannot read ${file}: ${(err as Error).message}`);
    }
    // One trailing newline is what `echo key > file` and editors add; it is not part of the key.
    let end = bytes.length;
    if (end > 0 && bytes[end - 1] === 0x0a) end -= end > 1 && bytes[end - 2] === 0x0d ? 2 : 1;
    if (end === 0) throw new UsageError(`--authkey-file: ${file} is empty`);
    return bytes.subarray(0, end);
  }
  return null;
}

/**
 * One JSON text as the message to send in `format`. Throws InputError (exit
 * code 2) naming `where` when it is not valid JSON or not sendable.
 */
export function parseValue(text: string, format: Format, where: string): unknown {
  let json: unknown;
  try {
    json = JSON.parse(text);
  } catch (err) {
    throw new InputError(`${where} is not valid JSON (${(err as Error).message}): ${abbreviate(text)}`);
  }
  if (format === 'json') return json;
  let value: unknown;
  try {
    value = fromTaggedJson(json);
  } catch (err) {
    throw new InputError(`${where}: ${(err as Error).message}`);
  }
  if (format === 'raw') {
    if (typeof value === 'string') return Buffer.from(value, 'utf8');
    if (value instanceof Uint8Array) return value;
    throw new InputError(`${where}: --format raw sends bytes: give a JSON string (sent as UTF-8) or {"$bytes":"<base64>"}`);
  }
  return value;
}

function abbreviate(text: string): string {
  return JSON.stringify(text.length > 60 ? `${text.slice(0, 57)}...` : text);
}
