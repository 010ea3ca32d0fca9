/**
 * The managers' option names: a misspelled option of `ManagerServer.listen`,
 * `ManagerServer.register` or `ManagerClient.connect` is a TypeError naming
 * the nearest valid one, raised before anything is bound or connected, where
 * it used to be ignored.
 */
import { expect } from 'chai';
import { Client, Listener, ManagerClient, ManagerServer } from '../src/index.js';
import { rejectionOf } from './helpers/wire.js';

const KEY = 'manager-options-test-key';
const LOCALHOST: [string, number] = ['127.0.0.1', 0];

/** Options objects typed loosely on purpose: these are the mistakes the types catch, made from JavaScript. */
const loose = (o: object): never => o as never;

describe('managers: option names', function () {
  this.timeout(20_000);
  let server: ManagerServer | null = null;
  afterEach(async () => {
    await server?.close();
    server = null;
  });

  it('ManagerServer.listen() refuses a misspelled option, naming the one meant, and binds nothing', async () => {
    const err = await rejectionOf(ManagerServer.listen(LOCALHOST, loose({ authkey: KEY, authTimout: 100 })));
    expect(err).to.be.instanceOf(TypeError);
    expect(err.message).to.equal("unknown option 'authTimout' (did you mean 'authTimeout'?) in ManagerServer.listen() options");
    const typo = await rejectionOf(ManagerServer.listen(LOCALHOST, loose({ authKey: KEY })));
    expect(typo.message).to.contain("'authKey' (did you mean 'authkey'?)");
    const unknown = await rejectionOf(ManagerServer.listen(LOCALHOST, loose({ authkey: KEY, colour: 'blue' })));
    expect(unknown.message).to.equal("unknown option 'colour' in ManagerServer.listen() options");
  });

  it('ManagerServer.listen() with correctly spelled options still serves', async () => {
    server = await ManagerServer.listen(LOCALHOST, { authkey: KEY, sync: true, authTimeout: 5000, backlog: 16 });
    const manager = await ManagerClient.connect(server.address, { authkey: KEY });
    try {
      const d = await manager.dict();
      await d.__setitem__('k', 1);
      expect(await d.get('k')).to.equal(1);
    } finally {
      await manager.close();
    }
  });

  it('register() refuses a misspelled option, naming the one meant, and registers nothing', async () => {
    server = await ManagerServer.listen(LOCALHOST, { authkey: KEY, sync: false });
    const make = (): object => ({ ping: () => 'pong', secret: () => 'hidden' });
    const err = (() => {
      try {
        server.register('Thing', make, loose({ expose: ['ping'] }));
      } catch (e) {
        return e as Error;
      }
      return null;
    })();
    expect(err).to.be.instanceOf(TypeError);
    expect(err!.message).to.equal("unknown option 'expose' (did you mean 'exposed'?) in register() options");
    const manager = await ManagerClient.connect(server.address, { authkey: KEY });
    try {
      // The refused registration did not happen (with every method public, as a typo'd `exposed` would have left it).
      expect((await rejectionOf(manager.create('Thing'))).message).to.contain("KeyError: 'Thing'");
      server.register('Thing', make, { exposed: ['ping'] });
      const thing = await manager.create('Thing');
      expect(await thing.ping()).to.equal('pong');
      expect(thing.exposed).to.deep.equal(['ping']);
      expect((await rejectionOf(thing.callMethod('secret'))).message).to.contain('is not in exposed');
    } finally {
      await manager.close();
    }
  });

  it('ManagerClient.connect() refuses a misspelled option before it connects', async () => {
    // A plain Listener stands in for the server: any connection attempt would show as an accept.
    const listener = await Listener.listen(LOCALHOST, { authkey: KEY });
    let accepted = 0;
    listener.on('handshakeError', () => {});
    void (async () => {
      for (;;) {
        try {
          const conn = await listener.accept();
          accepted++;
          await conn.close();
        } catch {
          return;
        }
      }
    })();
    try {
      const err = await rejectionOf(ManagerClient.connect(listener.address, loose({ authkey: KEY, maxConection: 2 })));
      expect(err).to.be.instanceOf(TypeError);
      expect(err.message).to.equal(
        "unknown option 'maxConection' (did you mean 'maxConnections'?) in ManagerClient.connect() options",
      );
      const other = await rejectionOf(ManagerClient.connect(listener.address, loose({ authKey: KEY })));
      expect(other.message).to.contain("'authKey' (did you mean 'authkey'?)");
      // A connection of our own goes through, so an attempt by connect() would have been counted before it.
      const probe = await Client(listener.address, { authkey: KEY });
      await probe.close();
      while (accepted < 1) await new Promise((resolve) => setTimeout(resolve, 5));
      expect(accepted).to.equal(1);
    } finally {
      await listener.close();
    }
  });
});
