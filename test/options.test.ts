/**
 * Option checking at every entry point: misspelled names, Python's positional
 * forms, `authkey: undefined`, `new Listener()`, `null` as "no limit", and
 * `recv({ parse })`, also against real CPython listeners.
 */
import { execFile } from 'node:child_process';
import { PassThrough } from 'node:stream';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';
import { expect } from 'chai';
import { Client, Connection, Listener, Pipe, spawn, wait } from '../src/index.js';
import { forEachPython, pythonsKilledAfterEach } from './helpers/python.js';
import { rejectionOf, stillPending, thrown } from './helpers/wire.js';

const LOCALHOST: [string, number] = ['127.0.0.1', 0];
const ROOT = fileURLToPath(new URL('../../', import.meta.url));
const execFileAsync = promisify(execFile);

/** Options objects typed loosely on purpose: these are the mistakes the types catch, made from JavaScript. */
const loose = (o: object): never => o as never;

describe('options: unknown names, positional forms, authkey: undefined', function () {
  this.timeout(20_000);
  let listener: Listener | null = null;
  afterEach(async () => {
    await listener?.close();
    listener = null;
  });

  it('a misspelled option is a TypeError naming the nearest valid one, at every entry point', async () => {
    listener = await Listener.listen(LOCALHOST);
    const [a, b] = await Pipe();
    const cases: [string, Promise<unknown> | (() => unknown), string, string][] = [
      ['Client', Client(listener.address, loose({ authKey: 'k' })), 'authKey', 'authkey'],
      ['Client', Client(listener.address, loose({ timout: 5 })), 'timout', 'timeout'],
      ['Listener.listen', Listener.listen(LOCALHOST, loose({ authKey: 'k' })), 'authKey', 'authkey'],
      ['Listener.listen', Listener.listen(LOCALHOST, loose({ maxPendng: 3 })), 'maxPendng', 'maxPending'],
      ['Pipe', Pipe(true, loose({ serialiser: 'json' })), 'serialiser', 'serializer'],
      ['fromStream', () => Connection.fromStream(new PassThrough(), loose({ maxMessagesize: 1 })), 'maxMessagesize', 'maxMessageSize'],
      ['accept', listener.accept(loose({ timeOut: 1 })), 'timeOut', 'timeout'],
      ['recv', a.recv(loose({ signl: AbortSignal.timeout(1) })), 'signl', 'signal'],
      ['recvBytes', a.recvBytes(undefined, loose({ parse: String })), 'parse', 'signal'],
      ['close', a.close(loose({ timeuot: 1 })), 'timeuot', 'timeout'],
      ['spawn', () => spawn('./nothing.js', [], loose({ serialzer: 'json' })), 'serialzer', 'serializer'],
      ['spawn', () => spawn(loose({ command: 'python3', argz: [] })), 'argz', 'args'],
    ];
    for (const [where, attempt, name, near] of cases) {
      const err = typeof attempt === 'function' ? thrown(attempt) : await rejectionOf(attempt);
      expect(err, where).to.be.instanceOf(TypeError);
      expect(err.message, where).to.include(`unknown option '${name}'`);
      expect(err.message, where).to.match(/ in \S.* options$/);
      if (where === 'recvBytes') expect(err.message).to.not.include('did you mean');
      else expect(err.message, where).to.include(`unknown option '${name}' (did you mean '${near}'?) in `);
    }
    // Nothing was connected or spawned on the way: the listener saw no peer, the pipe still works.
    expect(await stillPending(listener.accept(), 50)).to.equal(true);
    await b.send('still usable');
    expect(await a.recv()).to.equal('still usable');
    await a.close();
    await b.close();
  });

  it("an option name far from every valid one is reported without a guess; spawn's stdio is refused", async () => {
    const err = await rejectionOf(Listener.listen(LOCALHOST, loose({ completelyDifferent: 1 })));
    expect(err).to.be.instanceOf(TypeError);
    expect(err.message).to.equal("unknown option 'completelyDifferent' in Listener.listen() options");
    const stdio = thrown(() => spawn('./nothing.js', [], loose({ stdio: 'inherit' })));
    expect(stdio).to.be.instanceOf(TypeError);
    expect(stdio.message).to.match(/stdio is spawn\(\)'s own/);
  });

  it("Python's positional Client(address, family, authkey) and Listener(address, family, backlog, authkey) are TypeErrors", async () => {
    listener = await Listener.listen(LOCALHOST, { authkey: 'key' });
    const errors = [
      await rejectionOf((Client as (...a: unknown[]) => Promise<unknown>)(listener.address, null, 'key')),
      await rejectionOf((Client as (...a: unknown[]) => Promise<unknown>)(listener.address, 'AF_INET', 'key')),
      await rejectionOf((Client as (...a: unknown[]) => Promise<unknown>)(listener.address, 'AF_INET')),
      await rejectionOf((Listener.listen as (...a: unknown[]) => Promise<unknown>)(LOCALHOST, 'AF_INET', 1, 'key')),
    ];
    for (const err of errors) {
      expect(err).to.be.instanceOf(TypeError);
      expect(err.message).to.match(/takes its options as one object, as (Client\(address, )?\{ family, (backlog, )?authkey \}/);
    }
    expect(errors[0].message).to.include('Python positional form');
    // No handshake was attempted: nothing reached the listener.
    const failures: unknown[] = [];
    listener.on('handshakeError', (err) => failures.push(err));
    expect(await stillPending(listener.accept(), 50)).to.equal(true);
    expect(failures).to.deep.equal([]);
  });

  it('authkey: undefined means no authentication, with one process warning saying so (an unset environment variable?)', async () => {
    // In a child: the warning is given once per process.
    const code = `
      import { Client, Listener } from 'mpconn';
      const warnings = [];
      process.on('warning', (w) => warnings.push([w.code, w.message]));
      const listener = await Listener.listen(['127.0.0.1', 0], { authkey: process.env.MPCONN_SURELY_UNSET_VARIABLE });
      for (let i = 0; i < 2; i++) {
        const [c, s] = await Promise.all([Client(listener.address, { authkey: undefined }), listener.accept()]);
        await c.send(i);
        console.log(JSON.stringify({ got: await s.recv() }));
        await c.close();
        await s.close();
      }
      await listener.close();
      await new Promise((resolve) => setImmediate(resolve));
      console.log(JSON.stringify({ warnings }));
    `;
    const { stdout } = await execFileAsync(process.execPath, ['--input-type=module', '-e', code], { cwd: ROOT, timeout: 20_000 });
    const lines = stdout.trim().split('\n').map((line) => JSON.parse(line) as { got?: number; warnings?: string[][] });
    expect(lines.slice(0, 2)).to.deep.equal([{ got: 0 }, { got: 1 }]);
    const { warnings } = lines[2]!;
    expect(warnings).to.have.lengthOf(1);
    expect(warnings![0]![0]).to.equal('MPCONN_UNDEFINED_AUTHKEY');
    expect(warnings![0]![1]).to.match(/^authkey is undefined in Listener\.listen\(\) options \(an unset environment variable\?\), so the connection is not authenticated/);
  });

  it('null and a left-out authkey mean none', async () => {
    listener = await Listener.listen(LOCALHOST, { authkey: null });
    for (const opts of [{ authkey: null }, {}, undefined, null]) {
      const [c, s] = await Promise.all([Client(listener.address, opts as never), listener.accept()]);
      await c.send(1);
      expect(await s.recv()).to.equal(1);
      await c.close();
      await s.close();
    }
  });

  it('new Listener() and new Listener(address) say to use Listener.listen', () => {
    const Ctor = Listener as unknown as new (...a: unknown[]) => Listener;
    for (const args of [[], [['127.0.0.1', 6000]], ['/tmp/x.sock']]) {
      const err = thrown(() => new Ctor(...args));
      expect(err).to.be.instanceOf(TypeError);
      expect(err.message).to.include('await Listener.listen(address, options)');
    }
  });

  it('null means no limit for recv, recvBytes, accept, poll, wait and close', async () => {
    listener = await Listener.listen(LOCALHOST);
    const accepting = listener.accept({ timeout: null });
    const client = await Client(listener.address, { timeout: null });
    const server = await accepting;
    const receiving = server.recv({ timeout: null });
    const bytes = server.recvBytes(undefined, { timeout: null });
    expect(await stillPending(receiving, 30)).to.equal(true);
    await client.send('one');
    await client.sendBytes(Buffer.from('two'));
    expect(await receiving).to.equal('one');
    expect((await bytes).toString()).to.equal('two');
    const polled = server.poll(null);
    const waiting = wait([server], null);
    expect(await stillPending(polled, 30)).to.equal(true);
    await client.send('three');
    expect(await polled).to.equal(true);
    expect(await waiting).to.deep.equal([server]);
    expect(await server.recv()).to.equal('three');
    await client.close({ timeout: null });
    await server.close({ timeout: null });
  });
});

describe('recv({ parse })', function () {
  this.timeout(20_000);

  it('resolves with what parse returns; a throw rejects that recv alone and the connection goes on', async () => {
    const [a, b] = await Pipe(true, { serializer: 'json' });
    const seen: unknown[] = [];
    const parse = (value: unknown): { id: number } => {
      seen.push(value);
      if (typeof value !== 'object' || value === null || typeof (value as { id?: unknown }).id !== 'number') {
        throw new TypeError(`not a job: ${JSON.stringify(value)}`);
      }
      return { id: (value as { id: number }).id * 10 };
    };
    await b.send({ id: 1 });
    await b.send('garbage');
    await b.send({ id: 3 });
    expect(await a.recv({ parse })).to.deep.equal({ id: 10 });
    const err = await rejectionOf(a.recv({ parse }));
    expect(err).to.be.instanceOf(TypeError);
    expect(err.message).to.equal('not a job: "garbage"');
    // A queued recv (waiting for the message) runs parse too.
    expect(await a.recv({ parse })).to.deep.equal({ id: 30 });
    const later = a.recv({ parse, timeout: 5000 });
    expect(await stillPending(later, 20)).to.equal(true);
    await b.send({ id: 4 });
    expect(await later).to.deep.equal({ id: 40 });
    expect(seen).to.deep.equal([{ id: 1 }, 'garbage', { id: 3 }, { id: 4 }]);
    const notAFunction = await rejectionOf(a.recv(loose({ parse: 'yes' })));
    expect(notAFunction).to.be.instanceOf(TypeError);
    expect(notAFunction.message).to.match(/^parse must be a function/);
    await b.send('after all that');
    expect(await a.recv()).to.equal('after all that');
    await a.close();
    await b.close();
  });
});

describe('options against CPython listeners', function () {
  this.timeout(60_000);

  forEachPython(undefined, (py) => {
    describe(`CPython ${py.version}`, () => {
      const run = pythonsKilledAfterEach(py);

      it('a misspelled authkey or the positional form never connects unauthenticated; recv({ parse }) validates its messages', async () => {
        // The listener requires a key; it accepts one connection, sends two JSON messages and then echoes what it receives.
        const python = run(
          `
import json, signal, sys
from multiprocessing.connection import Listener
signal.alarm(30)
with Listener(('127.0.0.1', 0), authkey=b'key') as l:
    print(l.address[1], flush=True)
    with l.accept() as c:
        c.send_bytes(json.dumps({'id': 7}).encode())
        c.send_bytes(json.dumps(['not', 'a', 'job']).encode())
        print('echo', c.recv_bytes().decode(), flush=True)
`,
        );
        const port = Number(await python.line());
        const address: [string, number] = ['127.0.0.1', port];
        for (const attempt of [
          Client(address, loose({ authKey: 'key', serializer: 'json' })),
          (Client as (...a: unknown[]) => Promise<unknown>)(address, null, 'key'),
        ]) {
          expect(await rejectionOf(attempt)).to.be.instanceOf(TypeError);
        }
        const conn = await Client(address, { authkey: 'key', serializer: 'json' });
        const parse = (v: unknown): { id: number } => {
          if (typeof v !== 'object' || v === null || Array.isArray(v)) throw new RangeError(`bad job ${JSON.stringify(v)}`);
          return v as { id: number };
        };
        expect(await conn.recv({ parse })).to.deep.equal({ id: 7 });
        const err = await rejectionOf(conn.recv({ parse }));
        expect(err).to.be.instanceOf(RangeError);
        expect(err.message).to.equal('bad job ["not","a","job"]');
        await conn.send({ ok: true });
        expect(await python.line()).to.equal('echo {"ok":true}');
        await conn.close();
        expect((await python.exit()).code).to.equal(0);
      });
    });
  });
});
