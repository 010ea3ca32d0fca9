/**
 * The `mpconn` command, run as a real process (`node dist/src/cli/main.js`),
 * against mpconn peers in this process and against a real CPython.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { existsSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createInterface } from 'node:readline';
import { fileURLToPath } from 'node:url';
import { expect } from 'chai';
import fc from 'fast-check';
import { type Address, Client, type Connection, EOFError, Listener, Pipe } from 'mpconn';
import { fromTaggedJson, parseAddress, parseCommandLine, toTaggedJson } from '../src/internal.js';
import { depthOf, nested } from './helpers/deep.js';
import { forEachPython, newestPython, type Python, runPython } from './helpers/python.js';

const BIN = fileURLToPath(new URL('../src/cli/main.js', import.meta.url));
const KEY_ENV = 'MPCONN_CLI_TEST_KEY';
const KEY = 'cli test key';
const USAGE_HINT = 'usage: mpconn listen ADDRESS';

interface Result {
  code: number | null;
  signal: NodeJS.Signals | null;
  stdout: string;
  stderr: string;
}

const children = new Set<ChildProcess>();
afterEach(() => {
  for (const child of children) if (child.exitCode === null && child.signalCode === null) child.kill('SIGKILL');
  children.clear();
});

function spawnCli(args: string[], env: NodeJS.ProcessEnv = {}): ChildProcess {
  const child = spawn(process.execPath, [BIN, ...args], {
    stdio: ['pipe', 'pipe', 'pipe'],
    env: { ...process.env, [KEY_ENV]: KEY, ...env },
  });
  children.add(child);
  return child;
}

function finished(child: ChildProcess): Promise<Result> {
  let stdout = '';
  let stderr = '';
  child.stdout!.on('data', (d: Buffer) => (stdout += d.toString()));
  child.stderr!.on('data', (d: Buffer) => (stderr += d.toString()));
  return new Promise((resolve) => child.on('close', (code, signal) => resolve({ code, signal, stdout, stderr })));
}

/** Runs `mpconn args...` to completion, with `input` on stdin. */
function runCli(args: string[], options: { env?: NodeJS.ProcessEnv; input?: string } = {}): Promise<Result> {
  const child = spawnCli(args, options.env);
  const result = finished(child);
  child.stdin!.end(options.input ?? '');
  return result;
}

function jsonLines(stdout: string): unknown[] {
  return stdout
    .split('\n')
    .filter((l) => l !== '')
    .map((l) => JSON.parse(l) as unknown);
}

function stderrLines(result: Result): string[] {
  return result.stderr.split('\n').filter((l) => l !== '');
}

/** A running `mpconn listen`: its bound address (from the "listening on" line) and its JSON lines as they come. */
interface Listening {
  child: ChildProcess;
  address: string;
  next(): Promise<unknown>;
  stderr(): string;
  stop(signal: NodeJS.Signals): Promise<Result>;
}

async function startListen(args: string[], env: NodeJS.ProcessEnv = {}): Promise<Listening> {
  const child = spawnCli(['listen', ...args], env);
  child.stdin!.end();
  let stdout = '';
  let stderr = '';
  const lines: unknown[] = [];
  const waiters: ((line: unknown) => void)[] = [];
  createInterface({ input: child.stdout! }).on('line', (l) => {
    stdout += `${l}\n`;
    const line = JSON.parse(l) as unknown;
    const waiter = waiters.shift();
    if (waiter) waiter(line);
    else lines.push(line);
  });
  const exited = new Promise<Result>((resolve) =>
    child.on('close', (code, signal) => resolve({ code, signal, stdout, stderr })),
  );
  const address = await new Promise<string>((resolve, reject) => {
    child.stderr!.on('data', (d: Buffer) => {
      stderr += d.toString();
      const m = /listening on (.+) \(format/.exec(stderr);
      if (m) resolve(m[1]!);
    });
    void exited.then((r) => reject(new Error(`mpconn listen exited (${r.code ?? r.signal}) before listening:\n${r.stderr}`)));
  });
  return {
    child,
    address,
    next: () => {
      const line = lines.shift();
      if (line !== undefined) return Promise.resolve(line);
      return new Promise<unknown>((resolve, reject) => {
        waiters.push(resolve);
        void exited.then((r) => reject(new Error(`mpconn listen exited (${r.code ?? r.signal}):\n${r.stderr}`)));
      });
    },
    stderr: () => stderr,
    stop: (signal) => {
      child.kill(signal);
      return exited;
    },
  };
}

/** `'127.0.0.1:1234'` as the library's address. */
function inet(text: string): Address {
  const i = text.lastIndexOf(':');
  return [text.slice(0, i), Number(text.slice(i + 1))];
}

function showInet(address: Address): string {
  const [host, port] = address as [string, number];
  return `${host}:${port}`;
}

/** Whether a pickle round trip works; false while the pickle serializer is still a stub. */
async function pickleWorks(): Promise<boolean> {
  const [a, b] = await Pipe(true, { serializer: 'pickle' });
  try {
    await a.send({ probe: 1 });
    await b.recv();
    return true;
  } catch (err) {
    if (/not implemented yet/.test((err as Error).message)) return false;
    return true; // some other failure: let the pickle tests run and show it
  } finally {
    await Promise.all([a.close(), b.close()]);
  }
}
const PICKLE_READY = await pickleWorks();
const PICKLE_PENDING = 'PENDING: the pickle serializer (src/serializers/pickle) still throws "not implemented yet"';

describe('mpconn CLI', function () {
  this.timeout(20_000);
  let dir: string;
  beforeEach(() => {
    dir = mkdtempSync(join(tmpdir(), 'mpconn-cli-test-'));
  });
  afterEach(() => {
    rmSync(dir, { recursive: true, force: true });
  });

  describe('tagged JSON', () => {
    const key = fc.oneof(fc.string(), fc.constantFrom('$bytes', '$object', '__proto__', '$'));
    const { value } = fc.letrec<{ value: unknown }>((tie) => ({
      value: fc.oneof(
        { depthSize: 'small' },
        fc.constant(null),
        fc.boolean(),
        fc.double().map((n) => (Object.is(n, -0) ? 0 : n)),
        fc.bigInt(),
        fc.string(),
        fc.uint8Array(),
        fc.date({ noInvalidDate: true }),
        fc.array(tie('value'), { maxLength: 4 }),
        fc.dictionary(key, tie('value'), { maxKeys: 4, noNullPrototype: true }),
        fc.uniqueArray(fc.tuple(fc.oneof(fc.string(), fc.integer()), tie('value')), { selector: ([k]) => k, maxLength: 3 }).map((entries) => new Map(entries)),
        fc.uniqueArray(fc.oneof(fc.string(), fc.integer()), { maxLength: 3 }).map((items) => new Set(items)),
      ),
    }));

    it('reads back, after a trip through JSON text, every value it prints', () => {
      fc.assert(
        fc.property(value, (v) => {
          const text = JSON.stringify(toTaggedJson(v));
          expect(fromTaggedJson(JSON.parse(text))).to.deep.equal(v);
        }),
        { numRuns: 300 },
      );
    });

    it('never prints an object a reader could mistake for a tag', () => {
      fc.assert(
        fc.property(fc.dictionary(key, fc.integer(), { maxKeys: 3, noNullPrototype: true }), (obj) => {
          const json = toTaggedJson(obj) as Record<string, unknown>;
          const dollar = Object.keys(obj).some((k) => k.startsWith('$'));
          expect(json).to.deep.equal(dollar ? { $object: obj } : obj);
        }),
      );
    });

    it('shows a cycle as {"$cycle": true} and a class instance by its name and fields', () => {
      const list: unknown[] = [1];
      list.push(list);
      expect(toTaggedJson(list)).to.deep.equal([1, { $cycle: true }]);
      class PyThing {
        constructor(readonly module: string, readonly name: string) {}
      }
      expect(toTaggedJson(new PyThing('os', 'system'))).to.deep.equal({ $type: 'PyThing', module: 'os', name: 'system' });
    });

    it('reads --timeout as milliseconds, "ms", seconds with "s", or none', () => {
      const timeout = (text: string): unknown => (parseCommandLine(['send', 'x.sock', '--timeout', text], {}) as { timeout?: number }).timeout;
      expect([timeout('500'), timeout('500ms'), timeout('2s'), timeout('1.5s'), timeout('none')]).to.deep.equal([500, 500, 2000, 1500, Infinity]);
      expect((parseCommandLine(['send', 'x.sock'], {}) as { timeout?: number }).timeout).to.equal(undefined);
    });

    it('reads addresses: host:port, [v6]:port, an empty host, paths, @abstract', () => {
      expect(parseAddress('localhost:6000', undefined)).to.deep.equal({ address: ['localhost', 6000], family: 'AF_INET' });
      expect(parseAddress('[::1]:80', undefined)).to.deep.equal({ address: ['::1', 80], family: 'AF_INET' });
      expect(parseAddress(':0', undefined)).to.deep.equal({ address: ['', 0], family: 'AF_INET' });
      expect(parseAddress('/tmp/a:1', undefined)).to.deep.equal({ address: '/tmp/a:1', family: 'AF_UNIX' });
      expect(parseAddress('app.sock', undefined)).to.deep.equal({ address: 'app.sock', family: 'AF_UNIX' });
      expect(parseAddress('a:1', 'AF_UNIX')).to.deep.equal({ address: 'a:1', family: 'AF_UNIX' });
      if (process.platform === 'linux') {
        expect(parseAddress('@name', undefined)).to.deep.equal({ address: '\0name', family: 'AF_UNIX' });
      }
    });
  });

  describe('usage', () => {
    it('prints the help (commands, address forms, tags, exit codes) with exit code 0', async () => {
      const result = await runCli(['--help']);
      expect(result.code).to.equal(0);
      for (const text of ['mpconn listen ADDRESS', 'mpconn send ADDRESS [JSON...]', '[ipv6]:port', '--authkey-env', '--authkey-file', '{"$bytes":"<base64>"}', 'Exit status']) {
        expect(result.stdout).to.include(text);
      }
    });

    const badCommandLines: [string, string[], RegExp][] = [
      ['no command', [], /missing command/],
      ['an unknown command', ['frobnicate', 'x'], /unknown command "frobnicate"/],
      ['a missing address', ['send'], /missing ADDRESS/],
      ['an unknown option', ['send', 'x.sock', '--bogus'], /--bogus/],
      ['an unknown format', ['listen', 'x.sock', '--format', 'yaml'], /--format must be one of msgpack, pickle, json, raw/],
      ['an unknown family', ['listen', 'x.sock', '--family', 'AF_BLUETOOTH'], /--family must be one of/],
      ['a value that is not JSON', ['send', 'x.sock', '{nope'], /argument 1 is not valid JSON/],
      ['a malformed tag', ['send', 'x.sock', '{"$bytes":"***"}'], /needs a base64 string/],
      ['a $ key outside a tag', ['send', 'x.sock', '{"$type":"x","a":1}'], /\$object/],
      ['raw with a value that is not bytes', ['send', 'x.sock', '--format', 'raw', '[1]'], /raw sends bytes/],
      ['--recv that is not a count', ['send', 'x.sock', '--recv', 'two'], /--recv must be a whole number/],
      ['both key options', ['send', 'x.sock', `--authkey-env=${KEY_ENV}`, '--authkey-file', 'k'], /not both/],
      ['an unset key variable', ['send', 'x.sock', '--authkey-env', 'MPCONN_CLI_TEST_UNSET'], /MPCONN_CLI_TEST_UNSET is not set/],
      ['a missing key file', ['send', 'x.sock', '--authkey-file', '/nonexistent/key'], /cannot read \/nonexistent\/key/],
      ['the key itself on the command line', ['send', 'x.sock', '--authkey', 'secret'], /never given on the command line/],
      ['a port out of range', ['listen', 'localhost:70000'], /port 70000 is out of range/],
      ['AF_INET with a path', ['listen', '/tmp/x.sock', '--family', 'AF_INET'], /not host:port/],
      ['--recv on listen', ['listen', 'x.sock', '--recv', '1'], /--recv is an option of send/],
      ['--echo on send', ['send', 'x.sock', '--echo'], /--echo is an option of listen/],
      ['two addresses on listen', ['listen', 'a.sock', 'b.sock'], /one ADDRESS/],
      ['an IP address without a port', ['send', '127.0.0.1', '1'], /"127\.0\.0\.1" has no port: missing :port\? \(e\.g\. 127\.0\.0\.1:6000/],
      ['localhost without a port', ['listen', 'localhost'], /missing :port\?/],
      ['[::1] without a port', ['send', '[::1]', '1'], /missing :port\? \(e\.g\. \[::1\]:6000/],
      ['a URL without a port', ['send', 'http://localhost', '1'], /URL without a port: missing :port\?.*localhost:6000/],
      ['a URL with a port', ['send', 'http://127.0.0.1:8080/', '1'], /takes host:port, without the scheme \(127\.0\.0\.1:8080\)/],
      ['a port that is not a number', ['send', '127.0.0.1:notaport', '1'], /port "notaport" in "127\.0\.0\.1:notaport" is not a number/],
      ['a colon and no port', ['send', 'localhost:', '1'], /no port after the ":": missing :port\?/],
      ['a --timeout that is not a time', ['send', 'x.sock', '--timeout', 'soon'], /--timeout must be a time above 0/],
      ['a --timeout of 0', ['send', 'x.sock', '--timeout', '0'], /--timeout must be a time above 0/],
      ['--timeout on listen', ['listen', 'x.sock', '--timeout', '1'], /--timeout is an option of send/],
    ];
    for (const [what, args, message] of badCommandLines) {
      it(`exits with 2 and a usage hint on ${what}`, async () => {
        const result = await runCli(args);
        expect(result.code, result.stderr).to.equal(2);
        expect(result.stderr).to.match(message);
        expect(result.stderr).to.include(USAGE_HINT);
        expect(stderrLines(result), 'one line').to.have.length(1);
        expect(result.stdout).to.equal('');
      });
    }

    if (process.platform !== 'win32') {
      it('exits with 2 on AF_PIPE, which is Windows-only, and says to use a Unix socket', async () => {
        const result = await runCli(['listen', 'name', '--family', 'AF_PIPE']);
        expect(result.code).to.equal(2);
        expect(result.stderr).to.match(/AF_PIPE .* not available .* use a Unix socket path/);
      });
    }
  });

  describe('listen', () => {
    it('prints each message from mpconn clients as a JSON line with the connection, the peer and the index', async () => {
      const listen = await startListen(['127.0.0.1:0']);
      const first = await Client(inet(listen.address));
      await first.send({ hello: 'world', n: [1, 2.5, null, true] });
      await first.send('second');
      const a = (await listen.next()) as Record<string, unknown>;
      const b = (await listen.next()) as Record<string, unknown>;
      expect(a).to.deep.include({ connection: 0, index: 0, message: { hello: 'world', n: [1, 2.5, null, true] } });
      expect(b).to.deep.include({ connection: 0, index: 1, message: 'second' });
      expect(Object.keys(a)).to.deep.equal(['connection', 'peer', 'index', 'message']);
      expect(a.peer).to.match(/^127\.0\.0\.1:\d+$/);
      expect(b.peer).to.equal(a.peer);
      const second = await Client(inet(listen.address));
      await second.send(42);
      const c = (await listen.next()) as Record<string, unknown>;
      expect(c).to.deep.include({ connection: 1, index: 0, message: 42 });
      expect(c.peer).to.match(/^127\.0\.0\.1:\d+$/).and.not.equal(a.peer);
      await Promise.all([first.close(), second.close()]);
      const result = await listen.stop('SIGINT');
      expect(result.code).to.equal(0);
    });

    it('shows bytes, big integers, NaN, Infinity and $-keyed objects as tagged JSON', async () => {
      const listen = await startListen(['127.0.0.1:0']);
      const conn = await Client(inet(listen.address));
      await conn.send(Uint8Array.from([0, 255, 104, 105]));
      await conn.send(2n ** 63n);
      await conn.send([NaN, -Infinity]);
      await conn.send(new Map<unknown, unknown>([[1, 'one'], ['k', 'v']]));
      await conn.send({ $weird: 1 });
      const messages = [];
      for (let i = 0; i < 5; i++) messages.push(((await listen.next()) as { message: unknown }).message);
      expect(messages).to.deep.equal([
        { $bytes: 'AP9oaQ==' },
        { $bigint: '9223372036854775808' },
        [{ $float: 'NaN' }, { $float: '-Infinity' }],
        // msgpack maps decode to plain objects; a Python dict with int keys reads the same way
        { 1: 'one', k: 'v' },
        { $object: { $weird: 1 } },
      ]);
      await conn.close();
      await listen.stop('SIGINT');
    });

    it('prints peer null on a Unix socket and removes the socket file on SIGINT, exiting with 0', async () => {
      const path = join(dir, 'listen.sock');
      const listen = await startListen([path]);
      expect(listen.address).to.equal(path);
      expect(existsSync(path)).to.equal(true);
      const conn = await Client(path);
      await conn.send('over unix');
      expect(await listen.next()).to.deep.equal({ connection: 0, peer: null, index: 0, message: 'over unix' });
      const result = await listen.stop('SIGINT');
      expect(result.code).to.equal(0);
      expect(result.signal).to.equal(null);
      expect(existsSync(path), 'socket file after SIGINT').to.equal(false);
      // the open connection was closed, not left hanging
      const err = await conn.recv().catch((e: unknown) => e);
      expect(err).to.be.instanceOf(EOFError);
      expect(result.stderr).not.to.match(/\n\s+at /);
    });

    it('removes the socket file on SIGTERM too, exiting with 0', async () => {
      const path = join(dir, 'term.sock');
      const listen = await startListen([path]);
      expect(existsSync(path)).to.equal(true);
      const result = await listen.stop('SIGTERM');
      expect(result.code).to.equal(0);
      expect(existsSync(path)).to.equal(false);
    });

    it('requires the key from --authkey-env; a client with another key is reported on stderr and serving goes on', async () => {
      const listen = await startListen(['127.0.0.1:0', '--authkey-env', KEY_ENV]);
      const wrong = await Client(inet(listen.address), { authkey: 'not the key' }).catch((e: unknown) => e);
      expect(wrong).to.have.property('code', 'ERR_AUTH');
      const right = await Client(inet(listen.address), { authkey: KEY });
      await right.send('authenticated');
      // the failed peer was not counted as a connection
      expect(await listen.next()).to.deep.include({ connection: 0, index: 0, message: 'authenticated' });
      expect(listen.stderr()).to.match(/127\.0\.0\.1:\d+ failed the handshake: .*ERR_AUTH/);
      await right.close();
      expect((await listen.stop('SIGINT')).code).to.equal(0);
    });

    it('reads the key from --authkey-file without its trailing newline', async () => {
      const keyFile = join(dir, 'key');
      writeFileSync(keyFile, 'from a file\n');
      const listen = await startListen(['127.0.0.1:0', '--authkey-file', keyFile]);
      const conn = await Client(inet(listen.address), { authkey: 'from a file' });
      await conn.send(1);
      expect(await listen.next()).to.deep.include({ message: 1 });
      await conn.close();
      await listen.stop('SIGINT');
    });

    it('prints a message that cannot be decoded as an error line with its bytes, and goes on', async () => {
      const listen = await startListen(['127.0.0.1:0', '--format', 'json']);
      const conn = await Client(inet(listen.address), { serializer: 'json' });
      await conn.sendBytes(Buffer.from('not json'));
      await conn.send({ ok: true });
      const bad = (await listen.next()) as Record<string, unknown>;
      expect(bad).to.deep.include({ connection: 0, index: 0, bytes: Buffer.from('not json').toString('base64') });
      expect(bad.error).to.have.property('code', 'ERR_DECODE');
      expect(await listen.next()).to.deep.include({ index: 1, message: { ok: true } });
      await conn.close();
      await listen.stop('SIGINT');
    });

    for (const format of ['msgpack', 'json', 'pickle'] as const) {
      it(`prints a ${format} message nested 5,000 deep, and serves the next message and the next client`, async () => {
        const listen = await startListen(['127.0.0.1:0', '--format', format]);
        const deep = await Client(inet(listen.address));
        await deep.sendBytes(nested(format, 5000));
        await deep.sendBytes(nested(format, 2));
        const line = (await listen.next()) as Record<string, unknown>;
        expect(line).to.have.property('message');
        expect(depthOf(line.message)).to.equal(5000);
        expect(depthOf(((await listen.next()) as { message: unknown }).message)).to.equal(2);
        const other = await Client(inet(listen.address), { serializer: format });
        await other.send({ still: 'serving' });
        expect(await listen.next()).to.deep.include({ connection: 1, index: 0, message: { still: 'serving' } });
        await Promise.all([deep.close(), other.close()]);
        const result = await listen.stop('SIGINT');
        expect(result.code).to.equal(0);
        expect(result.stderr).not.to.match(/RangeError|Maximum call stack/);
      });
    }

    it('prints a msgpack message nested 100,000 deep whole, or as an error line with its bytes, and goes on', async () => {
      const listen = await startListen(['127.0.0.1:0']);
      const conn = await Client(inet(listen.address));
      const bytes = nested('msgpack', 100_000);
      await conn.sendBytes(bytes);
      await conn.send('after');
      const line = (await listen.next()) as Record<string, unknown>;
      // a decoder may refuse such depth; then the line holds the bytes, so nothing is lost
      if ('message' in line) expect(depthOf(line.message)).to.equal(100_000);
      else expect(line).to.have.property('bytes', bytes.toString('base64'));
      expect(await listen.next()).to.deep.include({ index: 1, message: 'after' });
      await conn.close();
      expect((await listen.stop('SIGINT')).code).to.equal(0);
    });

    it('gives an ERR_UNPICKLING line its bytes, as every undecodable line', async () => {
      const listen = await startListen(['127.0.0.1:0', '--format', 'pickle']);
      const conn = await Client(inet(listen.address));
      const garbage = Buffer.from([0x80, 0x04, 0x95, 0xff, 0x00]);
      await conn.sendBytes(garbage);
      await conn.sendBytes(Buffer.from('{"json":1}'));
      const bad = (await listen.next()) as { error: { code: string; message: string }; bytes: string };
      expect(bad.error.code).to.equal('ERR_UNPICKLING');
      expect(bad.bytes).to.equal(garbage.toString('base64'));
      const json = (await listen.next()) as { error: { code: string; message: string }; bytes: string };
      expect(json.error.code).to.equal('ERR_UNPICKLING');
      expect(json.error.message).to.match(/it is JSON text: use --format json$/);
      expect(Buffer.from(json.bytes, 'base64').toString()).to.equal('{"json":1}');
      await conn.close();
      await listen.stop('SIGINT');
    });

    it('says "use --format pickle" for a pickle read with the default msgpack format (first byte 0x80)', async () => {
      const listen = await startListen(['127.0.0.1:0']);
      const conn = await Client(inet(listen.address), { serializer: 'pickle' });
      await conn.send({ from: 'conn.send() in Python' });
      const bad = (await listen.next()) as { error: { code: string; message: string }; bytes: string };
      expect(bad.error.code).to.equal('ERR_DECODE');
      expect(bad.error.message).to.match(/starts with 0x80, the pickle protocol byte .*: use --format pickle$/);
      expect(Buffer.from(bad.bytes, 'base64')[0]).to.equal(0x80);
      await conn.close();
      await listen.stop('SIGINT');
    });

    it('prints raw messages as {"$bytes": base64} and --echo sends each one back', async () => {
      const listen = await startListen(['127.0.0.1:0', '--format', 'raw', '--echo']);
      const conn = await Client(inet(listen.address));
      await conn.sendBytes(Buffer.from([1, 2, 3, 250]));
      expect(await listen.next()).to.deep.include({ message: { $bytes: 'AQID+g==' } });
      expect([...(await conn.recvBytes())]).to.deep.equal([1, 2, 3, 250]);
      await conn.close();
      await listen.stop('SIGINT');
    });

    it('exits with 1 and one line when the address is taken', async () => {
      const path = join(dir, 'taken');
      writeFileSync(path, '');
      const result = await runCli(['listen', path]);
      expect(result.code).to.equal(1);
      expect(stderrLines(result)).to.have.length(1);
      expect(result.stderr).to.match(/^mpconn: cannot listen on .*taken: .*EADDRINUSE/);
      expect(existsSync(path), 'an existing file is not deleted').to.equal(true);
    });
  });

  describe('send', () => {
    let listener: Listener;
    let accepted: Promise<Connection>;
    beforeEach(async () => {
      listener = await Listener.listen(['127.0.0.1', 0], { authkey: KEY });
      accepted = listener.accept();
      accepted.catch(() => {});
    });
    afterEach(async () => {
      await listener.close();
    });
    const address = (): string => showInet(listener.address);

    it('sends each JSON argument as a message, decoding tags, and prints --recv replies', async () => {
      const run = runCli(['send', address(), '{"a":[1,"x",null]}', '{"$bytes":"AP8="}', '{"$bigint":"18446744073709551615"}', '--recv', '2', '--authkey-env', KEY_ENV]);
      const conn = await accepted;
      expect(await conn.recv()).to.deep.equal({ a: [1, 'x', null] });
      expect([...((await conn.recv()) as Uint8Array)]).to.deep.equal([0, 255]);
      expect(await conn.recv()).to.equal(18446744073709551615n);
      await conn.send({ reply: 1 });
      await conn.send(new Set(['s']));
      const result = await run;
      expect(result.code, result.stderr).to.equal(0);
      expect(jsonLines(result.stdout)).to.deep.equal([
        { index: 0, message: { reply: 1 } },
        { index: 1, message: ['s'] }, // msgpack has no sets: a Set goes as an array
      ]);
      expect(result.stderr).to.equal('');
    });

    it('sends each non-empty stdin line when no value is given', async () => {
      const run = runCli(['send', address(), '--authkey-env', KEY_ENV], { input: '1\n\n"two"\r\n{"three":3}\n' });
      const conn = await accepted;
      expect(await conn.recv()).to.equal(1);
      expect(await conn.recv()).to.equal('two');
      expect(await conn.recv()).to.deep.equal({ three: 3 });
      const result = await run;
      expect(result.code, result.stderr).to.equal(0);
      expect(await conn.recv().catch((e: unknown) => e)).to.be.instanceOf(EOFError);
    });

    it('sends raw strings as their UTF-8 bytes', async () => {
      const run = runCli(['send', address(), '--format', 'raw', '"héllo"', '{"$bytes":"AAE="}', '--authkey-env', KEY_ENV]);
      const conn = await accepted;
      expect((await conn.recvBytes()).toString('utf8')).to.equal('héllo');
      expect([...(await conn.recvBytes())]).to.deep.equal([0, 1]);
      expect((await run).code).to.equal(0);
    });

    it('exits with 1 and exactly one line on stderr when the key is wrong', async () => {
      const result = await runCli(['send', address(), '1', '--authkey-env', KEY_ENV], { env: { [KEY_ENV]: 'wrong key' } });
      expect(result.code).to.equal(1);
      expect(stderrLines(result)).to.have.length(1);
      expect(result.stderr).to.match(/^mpconn: cannot connect to 127\.0\.0\.1:\d+: .*AuthenticationError ERR_AUTH/);
      expect(result.stdout).to.equal('');
    });

    it('exits with 1 and one line when nothing listens there', async () => {
      const result = await runCli(['send', join(dir, 'nobody.sock'), '1']);
      expect(result.code).to.equal(1);
      expect(stderrLines(result)).to.have.length(1);
      expect(result.stderr).to.match(/^mpconn: cannot connect to .*nobody\.sock: .*ENOENT .*\(no socket file there; for TCP give host:port: missing :port\?\)$/m);
    });

    it('exits with 1 and one line when the peer closes before the replies asked for', async () => {
      const run = runCli(['send', address(), '1', '--recv', '3', '--authkey-env', KEY_ENV]);
      const conn = await accepted;
      await conn.recv();
      await conn.send('only one');
      await conn.close();
      const result = await run;
      expect(result.code).to.equal(1);
      expect(jsonLines(result.stdout)).to.deep.equal([{ index: 0, message: 'only one' }]);
      expect(stderrLines(result)).to.deep.equal(['mpconn: the peer closed the connection after 1 of 3 replies']);
    });

    it('without a key, to a listener that requires one: exits 1 with one line naming --authkey-env, sending nothing', async () => {
      const failed = new Promise<Error>((resolve) => listener.once('handshakeError', resolve));
      const result = await runCli(['send', address(), '"lost?"']);
      expect(result.code).to.equal(1);
      expect(stderrLines(result)).to.deep.equal([
        `mpconn: ${address()} requires an authkey (it sent an authentication challenge): use --authkey-env NAME or --authkey-file PATH`,
      ]);
      // the listener saw a peer that never answered its challenge (no message was taken as an answer)
      expect((await failed).message).to.match(/closed/);
      expect(result.stdout).to.equal('');
    });

    it('--recv to a listener that never replies ends after --timeout, with one line naming it', async () => {
      const run = runCli(['send', address(), '"ping"', '--recv', '2', '--timeout', '300', '--authkey-env', KEY_ENV]);
      const conn = await accepted;
      expect(await conn.recv()).to.equal('ping');
      await conn.send('one');
      const result = await run;
      expect(result.code).to.equal(1);
      expect(jsonLines(result.stdout)).to.deep.equal([{ index: 0, message: 'one' }]);
      expect(stderrLines(result)).to.deep.equal(['mpconn: reply 2 of 2 did not come within 300 ms: raise --timeout (now 300)']);
      await conn.close();
    });

    it('takes --timeout in seconds with an "s" and ends connecting too: a key for a listener without one', async () => {
      const open = await Listener.listen(['127.0.0.1', 0]);
      try {
        const result = await runCli(['send', showInet(open.address), '1', '--timeout', '0.3s', '--authkey-env', KEY_ENV]);
        expect(result.code).to.equal(1);
        expect(stderrLines(result)).to.have.length(1);
        expect(result.stderr).to.match(/^mpconn: cannot connect to 127\.0\.0\.1:\d+: .*300 ms.*\(if the listener has no authkey, leave out --authkey-env\/--authkey-file; else raise --timeout\)\n$/);
      } finally {
        await open.close();
      }
    });

    it('prints a pickle reply read as msgpack with its bytes and exits 1 with one line: use --format pickle', async () => {
      const run = runCli(['send', address(), '1', '--recv', '1', '--authkey-env', KEY_ENV]);
      const conn = await accepted;
      await conn.recv();
      const [a, b] = await Pipe(true, { serializer: 'pickle' });
      await a.send(['a', 'pickled', 'reply']);
      const pickled = await b.recvBytes();
      await Promise.all([a.close(), b.close()]);
      await conn.sendBytes(pickled);
      const result = await run;
      expect(result.code).to.equal(1);
      const [line] = jsonLines(result.stdout) as { index: number; error: { code: string }; bytes: string }[];
      expect(line).to.deep.include({ index: 0, bytes: pickled.toString('base64') });
      expect(line!.error.code).to.equal('ERR_DECODE');
      expect(stderrLines(result)).to.have.length(1);
      expect(result.stderr).to.match(/^mpconn: 1 of 1 replies could not be decoded as msgpack: it starts with 0x80, .*: use --format pickle\n$/);
      await conn.close();
    });

    it('gives an undecodable pickle reply (ERR_UNPICKLING) its bytes', async () => {
      const run = runCli(['send', address(), '--format', 'pickle', '1', '--recv', '1', '--authkey-env', KEY_ENV]);
      const conn = await accepted;
      await conn.recvBytes();
      await conn.sendBytes(Buffer.from([0x80, 0x04, 0xfe]));
      const result = await run;
      expect(result.code).to.equal(1);
      expect(jsonLines(result.stdout)).to.have.deep.nested.property('[0].bytes', Buffer.from([0x80, 0x04, 0xfe]).toString('base64'));
      expect(jsonLines(result.stdout)).to.have.deep.nested.property('[0].error.code', 'ERR_UNPICKLING');
      expect(stderrLines(result)).to.deep.equal(['mpconn: 1 of 1 replies could not be decoded as pickle: use --format raw to see the bytes as they are']);
      await conn.close();
    });

    it('exits with 1 and one line naming host:port when nothing listens on a TCP port', async () => {
      const closed = await Listener.listen(['127.0.0.1', 0]);
      const port = (closed.address as [string, number])[1];
      await closed.close();
      const result = await runCli(['send', `127.0.0.1:${port}`, '1']);
      expect(result.code).to.equal(1);
      expect(stderrLines(result)).to.deep.equal([
        `mpconn: cannot connect to 127.0.0.1:${port}: connect ECONNREFUSED 127.0.0.1:${port} (nothing listens on that port: is the listener up, and is it the right host:port?)`,
      ]);
    });

    it('takes a name that looks like a host as a socket path with --family AF_UNIX', async () => {
      const result = await runCli(['send', '127.0.0.1', '1', '--family', 'AF_UNIX']);
      expect(result.code).to.equal(1);
      expect(stderrLines(result)).to.deep.equal([
        'mpconn: cannot connect to 127.0.0.1: connect ENOENT 127.0.0.1 (no socket file there; for TCP give host:port: missing :port?)',
      ]);
    });

    it('exits with 130 on SIGINT while waiting for stdin or replies', async () => {
      const child = spawnCli(['send', address(), '--authkey-env', KEY_ENV, '--recv', '1']);
      const result = finished(child);
      child.stdin!.write('"first"\n'); // stdin stays open: send waits for more lines
      const conn = await accepted;
      expect(await conn.recv()).to.equal('first');
      child.kill('SIGINT');
      const { code, stderr } = await result;
      expect(code).to.equal(130);
      expect(stderr).to.equal('');
      expect(await conn.recv().catch((e: unknown) => e)).to.be.instanceOf(EOFError);
    });

    it('exits with 2 on a stdin line that is not JSON, after sending the lines before it', async () => {
      const run = runCli(['send', address(), '--authkey-env', KEY_ENV], { input: '"fine"\n{broken\n"never"\n' });
      const conn = await accepted;
      expect(await conn.recv()).to.equal('fine');
      const result = await run;
      expect(result.code).to.equal(2);
      expect(result.stderr).to.match(/stdin line 2 is not valid JSON/);
      expect(await conn.recv().catch((e: unknown) => e)).to.be.instanceOf(EOFError);
    });
  });

  const newest = newestPython(12);
  forEachPython(newest === undefined ? { min: 12 } : { only: [newest.minor] }, (py: Python) => {
    describe(`with CPython ${py.version}`, () => {
      it('listen prints what a CPython client sends: JSON text over a Unix socket, raw bytes over TCP', async () => {
        const path = join(dir, 'py.sock');
        const jsonListen = await startListen([path, '--format', 'json', '--authkey-env', KEY_ENV]);
        const client = runPython(
          py,
          `
import json, os, sys
from multiprocessing.connection import Client
with Client(sys.argv[1], authkey=os.environ['${KEY_ENV}'].encode()) as c:
    c.send_bytes(json.dumps({'from': 'python', 'list': [1, 2.5, None]}).encode())
    c.send_bytes(json.dumps('é').encode())
`,
          [path],
          { [KEY_ENV]: KEY },
        );
        expect(await jsonListen.next()).to.deep.equal({ connection: 0, peer: null, index: 0, message: { from: 'python', list: [1, 2.5, null] } });
        expect(await jsonListen.next()).to.deep.equal({ connection: 0, peer: null, index: 1, message: 'é' });
        expect((await client.exit()).code).to.equal(0);
        expect((await jsonListen.stop('SIGINT')).code).to.equal(0);
        expect(existsSync(path)).to.equal(false);

        const rawListen = await startListen(['127.0.0.1:0', '--format', 'raw']);
        const rawClient = runPython(
          py,
          `
import sys
from multiprocessing.connection import Client
host, port = sys.argv[1].rsplit(':', 1)
with Client((host, int(port))) as c:
    c.send_bytes(b'\\x00\\xffpy')
`,
          [rawListen.address],
        );
        const line = (await rawListen.next()) as Record<string, unknown>;
        expect(line).to.deep.include({ connection: 0, index: 0, message: { $bytes: Buffer.from([0, 255, 0x70, 0x79]).toString('base64') } });
        expect(line.peer).to.match(/^127\.0\.0\.1:\d+$/);
        expect((await rawClient.exit()).code).to.equal(0);
        await rawListen.stop('SIGINT');
      });

      it('send delivers to a CPython Listener with the key from an env var, and prints its reply', async () => {
        const server = runPython(
          py,
          `
import json, os
from multiprocessing.connection import Listener
with Listener(('127.0.0.1', 0), authkey=os.environ['${KEY_ENV}'].encode()) as l:
    print(l.address[1], flush=True)
    with l.accept() as c:
        got = [json.loads(c.recv_bytes()) for _ in range(3)]
        print(json.dumps(got), flush=True)
        c.send_bytes(json.dumps({'count': len(got), 'peer': 'python'}).encode())
`,
          [],
          { [KEY_ENV]: KEY },
        );
        const port = Number(await server.line());
        const result = await runCli(
          ['send', `127.0.0.1:${port}`, '--format', 'json', '--authkey-env', KEY_ENV, '--recv', '1'],
          { input: '{"n":1}\n[true,false]\n"three"\n' },
        );
        expect(result.code, result.stderr).to.equal(0);
        expect(JSON.parse(await server.line())).to.deep.equal([{ n: 1 }, [true, false], 'three']);
        expect(jsonLines(result.stdout)).to.deep.equal([{ index: 0, message: { count: 3, peer: 'python' } }]);
        expect((await server.exit()).code).to.equal(0);
      });

      it('send without a key to a CPython Listener that requires one exits 1 naming --authkey-env; Python gets no message', async () => {
        const server = runPython(
          py,
          `
from multiprocessing.connection import Listener
with Listener(('127.0.0.1', 0), authkey=b'the python key') as l:
    print(l.address[1], flush=True)
    try:
        c = l.accept()
        print('accepted', repr(c.recv()), flush=True)
    except Exception as e:
        print(type(e).__name__, flush=True)
`,
        );
        const port = Number(await server.line());
        const result = await runCli(['send', `127.0.0.1:${port}`, '"would be taken as the answer"']);
        expect(result.code).to.equal(1);
        expect(stderrLines(result)).to.deep.equal([
          `mpconn: 127.0.0.1:${port} requires an authkey (it sent an authentication challenge): use --authkey-env NAME or --authkey-file PATH`,
        ]);
        // Python read no answer at all: the connection closed before anything was sent
        expect(await server.line()).to.equal('EOFError');
        expect((await server.exit()).code).to.equal(0);
      });

      it('send exits with 1 and one line when the CPython Listener has another key', async () => {
        const server = runPython(
          py,
          `
from multiprocessing.connection import Listener
from multiprocessing import AuthenticationError
with Listener(('127.0.0.1', 0), authkey=b'the python key') as l:
    print(l.address[1], flush=True)
    try:
        l.accept()
        print('accepted')
    except AuthenticationError as e:
        print('AuthenticationError', e)
`,
        );
        const port = Number(await server.line());
        const result = await runCli(['send', `127.0.0.1:${port}`, '1', '--authkey-env', KEY_ENV]);
        expect(result.code).to.equal(1);
        expect(stderrLines(result)).to.have.length(1);
        expect(result.stderr).to.match(/^mpconn: cannot connect to .*ERR_AUTH/);
        expect(await server.line()).to.match(/^AuthenticationError/);
      });

      if (!PICKLE_READY) {
        it(PICKLE_PENDING);
      } else {
        it('listen --format pickle prints what CPython conn.send() sends; send --format pickle reaches conn.recv()', async () => {
          const listen = await startListen(['127.0.0.1:0', '--format', 'pickle', '--echo']);
          const client = runPython(
            py,
            `
import sys
from multiprocessing.connection import Client
host, port = sys.argv[1].rsplit(':', 1)
with Client((host, int(port))) as c:
    c.send({'a': 1, 'b': b'\\x00\\xff', 't': (1, 'x'), 'big': 2**70, 's': {3}})
    print(repr(c.recv()))
    import datetime
    c.send([datetime.date(2024, 5, 17)])
    print(repr(c.recv()))
`,
            [listen.address],
          );
          expect(await listen.next()).to.deep.include({
            message: { a: 1, b: { $bytes: 'AP8=' }, t: [1, 'x'], big: { $bigint: String(2n ** 70n) }, s: { $set: [3] } },
          });
          // the echo went back through the pickle encoder
          expect(await client.line()).to.equal("{'a': 1, 'b': b'\\x00\\xff', 't': [1, 'x'], 'big': 1180591620717411303424, 's': {3}}");
          // a Python object is shown as the inert record the decoder made, and echoing it rebuilds it in Python
          const [date] = ((await listen.next()) as { message: Record<string, unknown>[] }).message;
          expect(date).to.deep.include({ $type: 'PyObject', callable: { $type: 'PyGlobal', module: 'datetime', name: 'date' } });
          expect(await client.line()).to.equal('[datetime.date(2024, 5, 17)]');
          await listen.stop('SIGINT');

          const server = runPython(
            py,
            `
from multiprocessing.connection import Listener
with Listener(('127.0.0.1', 0)) as l:
    print(l.address[1], flush=True)
    with l.accept() as c:
        print(repr(c.recv()), flush=True)
`,
          );
          const port = Number(await server.line());
          const result = await runCli(['send', `127.0.0.1:${port}`, '--format', 'pickle', '{"x":[1,{"$bytes":"AP8="},{"$bigint":"18446744073709551616"}]}']);
          expect(result.code, result.stderr).to.equal(0);
          expect(await server.line()).to.equal("{'x': [1, b'\\x00\\xff', 18446744073709551616]}");
        });
      }
    });
  });
});
