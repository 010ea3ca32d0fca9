/**
 * Files: an address-less Listener lives in a private directory
 * (mode 0700, so no other user can reach or replace its socket), and its
 * socket file and directory are gone after `close()`, after the owning
 * process exits normally or of an uncaught exception, and after it is killed
 * by SIGTERM, SIGINT or SIGHUP, while a client is connected to it. The owners
 * are child processes. SIGKILL cannot be cleaned up after: the file stays,
 * and a new Listener on that path fails with EADDRINUSE instead of deleting it.
 */
import { expect } from 'chai';
import { existsSync, lstatSync, mkdtempSync, rmSync, statSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { basename, dirname, join } from 'node:path';
import { Client, EOFError, Listener } from 'mpconn';
import { within } from '../helpers/wire.js';
import { budget, runFixture } from './helpers.js';

function expectPrivate(address: string): void {
  const dir = dirname(address);
  expect(basename(dir)).to.match(/^mpconn-/);
  expect(basename(address)).to.match(/^listener-/);
  expect(statSync(dir).mode & 0o777, `mode of ${dir}`).to.equal(0o700);
  expect(lstatSync(address).isSocket(), `${address} is a socket`).to.equal(true);
}

function expectGone(address: string, privateDir = true): void {
  expect(existsSync(address), `${address} removed`).to.equal(false);
  if (privateDir) expect(existsSync(dirname(address)), `${dirname(address)} removed`).to.equal(false);
}

interface Ending {
  name: string;
  command?: string;
  signal?: NodeJS.Signals;
  options?: string[];
  code?: number;
}

describe('stress: socket files', function () {
  this.timeout(budget(60_000));

  it('an address-less Listener: a 0700 private directory, and nothing left after close()', async () => {
    const listener = await Listener.listen();
    const address = listener.address as string;
    expectPrivate(address);
    const client = await Client(address);
    const server = await listener.accept();
    await listener.close();
    expectGone(address);
    // Closing the listener leaves accepted connections working.
    await client.send('still open');
    expect(await server.recv()).to.equal('still open');
    await client.close();
    await server.close();
  });

  const endings: Ending[] = [
    { name: 'process.exit(0) without closing anything', command: 'exit', code: 0 },
    { name: 'an uncaught exception', command: 'throw', code: 1 },
    { name: 'closing and letting the event loop empty', command: 'drain', code: 0 },
    { name: 'SIGTERM', signal: 'SIGTERM' },
    { name: 'SIGINT', signal: 'SIGINT' },
    { name: 'SIGHUP', signal: 'SIGHUP' },
    { name: 'SIGTERM, when the process has its own handler that exits', signal: 'SIGTERM', options: ['own-handler'], code: 0 },
    { name: 'SIGTERM, with two address-less Listeners', signal: 'SIGTERM', options: ['two'] },
  ];
  for (const ending of endings) {
    it(`the owning process ending by ${ending.name}, with a client connected: the socket files and directories are gone`, async () => {
      const owner = runFixture('stress-files-owner', ending.options ?? []);
      try {
        const { addresses } = await within(owner.json<{ addresses: string[] }>(), 30_000, 'the owner listening');
        for (const address of addresses) expectPrivate(address);
        const client = await Client(addresses[0]!);
        expect(await within(owner.line(), 10_000, 'the owner accepting')).to.equal('accepted');
        if (ending.command !== undefined) owner.write(`${ending.command}\n`);
        else owner.kill(ending.signal);
        const exit = await within(owner.exit(), 10_000, 'the owner exiting');
        if (ending.code !== undefined) {
          expect(exit.code, exit.stderr).to.equal(ending.code);
        } else {
          // The cleanup re-raises the signal: the process still dies of it.
          expect(exit.signal, exit.stderr).to.equal(ending.signal);
        }
        for (const address of addresses) expectGone(address);
        // The client sees the end of the stream, not a hang.
        expect(await within(client.recv().catch((e: unknown) => e), 5_000, 'the client')).to.be.instanceOf(EOFError);
        await client.close();
      } finally {
        owner.kill();
        await owner.exit();
      }
    });
  }

  it('a Listener on a path of the caller\'s: the file is gone after SIGTERM, and the directory is left alone', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'mpconn-stress-files-'));
    const path = join(dir, 'app.sock');
    const owner = runFixture('stress-files-owner', [`path=${path}`]);
    try {
      await within(owner.json(), 30_000, 'the owner listening');
      expect(lstatSync(path).isSocket()).to.equal(true);
      const client = await Client(path);
      await within(owner.line(), 10_000, 'the owner accepting');
      owner.kill('SIGTERM');
      expect((await owner.exit()).signal).to.equal('SIGTERM');
      expectGone(path, false);
      expect(existsSync(dir), 'the caller\'s directory stays').to.equal(true);
      await client.close();
    } finally {
      owner.kill();
      await owner.exit();
      rmSync(dir, { recursive: true, force: true });
    }
  });

  it('after SIGKILL the file stays (nothing can run), and a new Listener on it fails with EADDRINUSE without deleting it', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'mpconn-stress-files-'));
    const path = join(dir, 'app.sock');
    const owner = runFixture('stress-files-owner', [`path=${path}`]);
    try {
      await within(owner.json(), 30_000, 'the owner listening');
      const client = await Client(path);
      await within(owner.line(), 10_000, 'the owner accepting');
      owner.kill('SIGKILL');
      await owner.exit();
      await client.close();
      expect(lstatSync(path).isSocket(), 'a stale socket file').to.equal(true);
      const err = await Listener.listen(path).then(
        (l) => l.close().then(() => null),
        (e: unknown) => e,
      );
      expect((err as { code?: string } | null)?.code).to.equal('EADDRINUSE');
      expect(existsSync(path), 'the stale file is not silently deleted').to.equal(true);
    } finally {
      owner.kill();
      await owner.exit();
      rmSync(dir, { recursive: true, force: true });
    }
  });

  it('a process whose Listeners are closed dies of SIGTERM as usual (no handler is left behind)', async () => {
    const owner = runFixture('stress-files-owner', []);
    try {
      const { addresses } = await within(owner.json<{ addresses: string[] }>(), 30_000, 'the owner listening');
      const client = await Client(addresses[0]!);
      await within(owner.line(), 10_000, 'the owner accepting');
      owner.write('close\n');
      expect(await within(owner.line(), 10_000, 'the owner closing')).to.equal('closed');
      expectGone(addresses[0]!);
      owner.kill('SIGTERM');
      expect((await within(owner.exit(), 10_000, 'the owner exiting')).signal).to.equal('SIGTERM');
      await client.close();
    } finally {
      owner.kill();
      await owner.exit();
    }
  });

  it('a second address-less Listener gets a directory of its own, and closing one leaves the other', async () => {
    const a = await Listener.listen();
    const b = await Listener.listen();
    try {
      expect(dirname(a.address as string)).to.not.equal(dirname(b.address as string));
      await a.close();
      expectGone(a.address as string);
      expectPrivate(b.address as string);
      const client = await Client(b.address);
      await client.close();
    } finally {
      await a.close();
      await b.close();
    }
    expectGone(b.address as string);
  });
});
