/**
 * Files (issue 7): an address-less Listener lives in a private directory
 * (mode 0700, so no other user can reach or replace its socket), and its
 * socket file and directory are gone after `close()`, after the owning
 * process exits normally or of an uncaught exception, and after it is killed
 * by SIGTERM, SIGINT or SIGHUP, while a client is connected to it. The owners
 * are child processes; SIGKILL cannot be cleaned up after and is not tested.
 */
import { expect } from 'chai';
import { existsSync, lstatSync, statSync } from 'node:fs';
import { basename, dirname } from 'node:path';
import { Client, EOFError, Listener } from 'mpconn';
import { until, within } from '../helpers/wire.js';
import { budget, runFixture } from './helpers.js';

function expectPrivate(address: string): void {
  const dir = dirname(address);
  expect(basename(dir)).to.match(/^mpconn-/);
  expect(basename(address)).to.match(/^listener-/);
  expect(statSync(dir).mode & 0o777, `mode of ${dir}`).to.equal(0o700);
  expect(lstatSync(address).isSocket(), `${address} is a socket`).to.equal(true);
}

function expectGone(address: string): void {
  expect(existsSync(address), `${address} removed`).to.equal(false);
  expect(existsSync(dirname(address)), `${dirname(address)} removed`).to.equal(false);
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

  const endings: { name: string; command?: string; signal?: NodeJS.Signals; args?: string[]; code?: number }[] = [
    { name: 'process.exit(0) without closing anything', command: 'exit', code: 0 },
    { name: 'an uncaught exception', command: 'throw', code: 1 },
    { name: 'closing and letting the event loop empty', command: 'drain', code: 0 },
    { name: 'SIGTERM', signal: 'SIGTERM' },
    { name: 'SIGINT', signal: 'SIGINT' },
    { name: 'SIGHUP', signal: 'SIGHUP' },
    { name: 'SIGTERM, when the process has its own handler that exits', signal: 'SIGTERM', args: ['own-handler'], code: 0 },
  ];
  for (const ending of endings) {
    it(`the owning process ending by ${ending.name}, with a client connected: the socket file and directory are gone`, async () => {
      const owner = runFixture('stress-files-owner', ending.args ?? []);
      try {
        const { address } = await within(owner.json<{ address: string }>(), 30_000, 'the owner listening');
        expectPrivate(address);
        const client = await Client(address);
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
        expectGone(address);
        // The client sees the end of the stream, not a hang.
        expect(await within(client.recv().catch((e: unknown) => e), 5_000, 'the client')).to.be.instanceOf(EOFError);
        await client.close();
      } finally {
        owner.kill();
        await owner.exit();
      }
    });
  }

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
