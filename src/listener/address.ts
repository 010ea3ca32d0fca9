import { randomBytes } from 'node:crypto';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { describe } from '../core/validate.js';
import { onExit } from './cleanup.js';

/**
 * A TCP address: `[host, port]` as in Python, or `{ host, port }`.
 *
 * @example
 * ```ts
 * const a: InetAddress = ['localhost', 6000];
 * const b: InetAddress = { host: '::1', port: 6000 };
 * ```
 */
export type InetAddress =
  | readonly [host: string, port: number]
  | {
      /** Host name or IP address; `''` listens on every interface. */
      host: string;
      /** TCP port; 0 lets the OS choose one when listening. */
      port: number;
    };
/**
 * A TCP address, a Unix socket path (`'\0name'`: Linux abstract namespace), or a Windows pipe `'\\\\.\\pipe\\name'`.
 *
 * @example
 * ```ts
 * await Client(['localhost', 6000]);       // AF_INET
 * await Client('/tmp/app.sock');           // AF_UNIX
 * await Client('\\\\.\\pipe\\app');          // AF_PIPE (Windows)
 * ```
 */
export type Address = string | InetAddress;
/**
 * An address family, named as in Python: TCP, Unix domain sockets, Windows named pipes.
 *
 * @example
 * ```ts
 * const listener = await Listener.listen(null, { family: 'AF_INET' }); // localhost, a free port
 * ```
 */
export type Family = 'AF_INET' | 'AF_UNIX' | 'AF_PIPE';

const FAMILIES: readonly Family[] = ['AF_INET', 'AF_UNIX', 'AF_PIPE'];
const isWindows = process.platform === 'win32';

/** The family used when none is given and there is no address: Python's default. */
export const defaultFamily: Family = isWindows ? 'AF_PIPE' : 'AF_UNIX';

/**
 * The family of an address, by Python's rules: a `[host, port]` pair or
 * `{ host, port }` is `AF_INET`; a string starting with two backslashes is
 * `AF_PIPE`; any other string (including `'\0name'`) is `AF_UNIX`.
 *
 * @example
 * ```ts
 * addressType(['localhost', 6000]); // 'AF_INET'
 * addressType('/tmp/app.sock');     // 'AF_UNIX'
 * addressType('\\\\.\\pipe\\app');  // 'AF_PIPE'
 * ```
 */
export function addressType(address: Address): Family {
  if (typeof address === 'string') return address.startsWith('\\\\') ? 'AF_PIPE' : 'AF_UNIX';
  if (Array.isArray(address)) return 'AF_INET';
  if (typeof address === 'object' && address !== null && 'host' in address && 'port' in address) return 'AF_INET';
  throw new TypeError(`address type of ${describe(address)} unrecognized: use [host, port], { host, port } or a path`);
}

/** Validates a family name and that this platform has it. */
export function checkFamily(family: unknown): Family {
  if (!FAMILIES.includes(family as Family)) {
    throw new TypeError(`family must be one of ${FAMILIES.join(', ')}; got ${describe(family)}`);
  }
  if (family === 'AF_PIPE' && !isWindows) {
    throw Object.assign(
      new RangeError(`AF_PIPE (Windows named pipes) is not available on ${process.platform}: use AF_UNIX`),
      { code: 'ERR_UNSUPPORTED_FAMILY' },
    );
  }
  if (family === 'AF_UNIX' && isWindows) {
    throw Object.assign(new RangeError('AF_UNIX is not available through node:net on Windows: use AF_PIPE'), {
      code: 'ERR_UNSUPPORTED_FAMILY',
    });
  }
  return family as Family;
}

/** Host and port of an `AF_INET` address, checked. */
export function inetParts(address: Address): { host: string; port: number } {
  const [host, port] = Array.isArray(address)
    ? address
    : [(address as { host: unknown }).host, (address as { port: unknown }).port];
  if (typeof host !== 'string') throw new TypeError(`host must be a string, not ${describe(host)}`);
  if (typeof port !== 'number' || !Number.isInteger(port) || port < 0 || port > 65535) {
    throw new RangeError(`port must be an integer from 0 to 65535, got ${describe(port)}`);
  }
  return { host, port };
}

/**
 * Longest Unix socket path the OS takes, in bytes: `sun_path` holds 108 bytes
 * on Linux (104 on macOS and the BSDs) including the terminating NUL. Longer,
 * libuv would bind or connect a silently truncated path.
 */
export const MAX_UNIX_PATH = (process.platform === 'linux' ? 108 : 104) - 1;

/**
 * Checks a Unix socket path (or `'\0abstract'` name) before it reaches the
 * OS: an embedded NUL would cut it short (and a listener would bind a prefix
 * nobody connects to), and a path over `MAX_UNIX_PATH` bytes would be truncated.
 */
export function checkUnixPath(path: string, what = 'Unix socket path'): void {
  const abstract = path.startsWith('\0');
  if (path.indexOf('\0', abstract ? 1 : 0) !== -1) {
    throw new TypeError(`${what} ${JSON.stringify(path)} contains a NUL byte (only an abstract name's first byte may be NUL)`);
  }
  const length = Buffer.byteLength(path);
  if (length > MAX_UNIX_PATH) {
    throw Object.assign(
      new RangeError(
        `${what} is ${length} bytes long, over the ${MAX_UNIX_PATH}-byte limit of ${process.platform} ` +
          `(the kernel's sun_path): use a shorter path, e.g. in a directory closer to / (${JSON.stringify(path.slice(0, 60))}…)`,
      ),
      { code: 'ENAMETOOLONG' },
    );
  }
}

/** Private directories made by `arbitraryAddress` and not yet claimed, each with its exit-time removal. */
const privateDirs = new Map<string, () => void>();
let pipeCounter = 0;

/**
 * A fresh address for `family`: `['localhost', 0]` for `AF_INET` (the port
 * is chosen at bind time); for `AF_UNIX` a path in a new private (0700)
 * directory `mpconn-XXXX/listener-XXXX`; for `AF_PIPE` a unique pipe name.
 *
 * @example
 * ```ts
 * const listener = await Listener.listen(arbitraryAddress('AF_UNIX'));
 * ```
 */
export function arbitraryAddress(family: Family): Address {
  switch (checkFamily(family)) {
    case 'AF_INET':
      return ['localhost', 0];
    case 'AF_UNIX': {
      const dir = mkdtempSync(join(tmpdir(), 'mpconn-'));
      privateDirs.set(dir, onExit(() => rmSync(dir, { recursive: true, force: true })));
      return join(dir, `listener-${randomBytes(6).toString('hex')}`);
    }
    case 'AF_PIPE':
      return `\\\\.\\pipe\\mpconn-${process.pid}-${pipeCounter++}-${randomBytes(4).toString('hex')}`;
  }
}

/**
 * If `path` lies in a private directory `arbitraryAddress` made, hands that
 * directory over: the caller now removes it.
 */
export function claimPrivateDir(path: string): string | null {
  const dir = dirname(path);
  const cancelExitRemoval = privateDirs.get(dir);
  if (cancelExitRemoval === undefined) return null;
  privateDirs.delete(dir);
  cancelExitRemoval();
  return dir;
}
