/**
 * `maxMessageSize` on both manager roles: the longest request a ManagerServer
 * takes from a client, and the longest reply a ManagerClient takes. Past it,
 * only the connection that carried the message ends; the server and the
 * client go on serving and calling.
 */
import { expect } from 'chai';
import { ManagerClient, ManagerServer, ProtocolError } from '../src/index.js';
import { forEachPython, pythonsKilledAfterEach } from './helpers/python.js';
import { rejectionOf } from './helpers/wire.js';

const KEY = 'manager-message-size-key';
const LOCALHOST: [string, number] = ['127.0.0.1', 0];
const LIMIT = 64 * 1024;

describe('managers: maxMessageSize', function () {
  this.timeout(30_000);
  let server: ManagerServer | null = null;
  let manager: ManagerClient | null = null;
  afterEach(async () => {
    await manager?.close();
    manager = null;
    await server?.close();
    server = null;
  });

  it('the server ends the connection of a request over its limit; that client and others go on', async () => {
    server = await ManagerServer.listen(LOCALHOST, { authkey: KEY, maxMessageSize: LIMIT });
    manager = await ManagerClient.connect(server.address, { authkey: KEY });
    const d = await manager.dict();
    await d.__setitem__('small', 'x'.repeat(LIMIT / 2));
    const err = await rejectionOf(d.__setitem__('big', 'x'.repeat(LIMIT * 4)));
    expect(err).to.be.an('error'); // the connection it went on is gone
    expect(err).to.not.be.instanceOf(TypeError);
    // Nothing of the refused request was stored, the server still serves this client on a new connection, and others.
    expect(await d.get('big')).to.equal(null);
    expect(await d.get('small')).to.equal('x'.repeat(LIMIT / 2));
    const other = await ManagerClient.connect(server.address, { authkey: KEY });
    try {
      const q = await other.Queue();
      await q.put(1);
      expect(await q.get()).to.equal(1);
    } finally {
      await other.close();
    }
    expect(await manager.numberOfObjects()).to.equal(1); // the dict; the queue went with the other client
  });

  it('the client rejects a reply over its limit with ERR_MESSAGE_TOO_LONG, then calls on', async () => {
    server = await ManagerServer.listen(LOCALHOST, { authkey: KEY });
    manager = await ManagerClient.connect(server.address, { authkey: KEY, maxMessageSize: LIMIT });
    const d = await manager.dict();
    await d.__setitem__('big', 'x'.repeat(LIMIT * 2)); // the request is the server's to limit, not the client's
    await d.__setitem__('small', 'ok');
    const err = await rejectionOf(d.get('big'));
    expect(err).to.be.instanceOf(ProtocolError);
    expect((err as ProtocolError).code).to.equal('ERR_MESSAGE_TOO_LONG');
    expect(await d.get('small')).to.equal('ok');
    expect(await d.__len__()).to.equal(2);
  });

  it('a pinned proxy rejects a reply over the limit the same way, and calls on over a new connection', async () => {
    server = await ManagerServer.listen(LOCALHOST, { authkey: KEY });
    manager = await ManagerClient.connect(server.address, { authkey: KEY, maxMessageSize: LIMIT });
    const d = await manager.create('dict', [], {}, { pinned: true });
    await d.callMethod('__setitem__', ['big', 'x'.repeat(LIMIT * 2)]);
    const err = await rejectionOf(d.callMethod('get', ['big']));
    expect(err).to.be.instanceOf(ProtocolError);
    expect((err as ProtocolError).code).to.equal('ERR_MESSAGE_TOO_LONG');
    expect(await d.callMethod('__len__')).to.equal(1);
  });

  it('is checked as a byte count on both roles', async () => {
    const bad = await rejectionOf(ManagerServer.listen(LOCALHOST, { authkey: KEY, maxMessageSize: -1 }));
    expect(bad).to.be.instanceOf(RangeError);
    expect(bad.message).to.contain('maxMessageSize');
    const notNumber = await rejectionOf(ManagerClient.connect(LOCALHOST, { authkey: KEY, maxMessageSize: '1' as never }));
    expect(notNumber).to.be.instanceOf(TypeError);
    expect(notNumber.message).to.equal('options.maxMessageSize must be a number, not the string "1"');
  });

  describe('unmodified Python clients', () => {
    forEachPython(undefined, (py) => {
      const python = pythonsKilledAfterEach(py);
      it(`Python ${py.version}: a request over the limit ends that connection only; the next calls are served`, async () => {
        server = await ManagerServer.listen(LOCALHOST, { authkey: KEY, maxMessageSize: LIMIT });
        const port = (server.address as [string, number])[1];
        const client = python(
          `
import sys, threading
from multiprocessing.managers import SyncManager
m = SyncManager(address=('127.0.0.1', ${port}), authkey=b'${KEY}')
m.connect()
d = m.dict()
d['small'] = 'x' * ${LIMIT / 2}
try:
    d['big'] = 'x' * ${LIMIT * 4}
    print('stored', flush=True)
except (EOFError, OSError) as e:
    print('refused', type(e).__name__, flush=True)
# That thread's connection is gone; another thread calls on a connection of its own.
def after():
    d['after'] = 1
    print(sorted(d.keys()), len(d['small']), flush=True)
t = threading.Thread(target=after)
t.start()
t.join()
`,
        );
        const exited = await client.exit();
        expect(exited.stderr).to.equal('');
        const lines = exited.stdout.trim().split('\n');
        expect(lines[0]).to.match(/^refused (EOFError|ConnectionResetError|BrokenPipeError|ConnectionAbortedError)$/);
        expect(lines[1]).to.equal(`['after', 'small'] ${LIMIT / 2}`);
      });
    });
  });
});
