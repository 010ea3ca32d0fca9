/**
 * bench/raw/manager-floor.ts is the M3 benchmark's Node floor: the least a
 * Node server can do per manager call. Its figures only mean something if it
 * really serves what the M3 clients ask, so an unmodified CPython SyncManager
 * client (every version found) uses it here as the benchmark's clients do.
 */
import { expect } from 'chai';
import type { Server } from 'node:net';
import { listenManagerFloor } from '../bench/raw/manager-floor.js';
import { forEachPython, pythonsKilledAfterEach } from './helpers/python.js';

const CLIENT = `
import sys
from multiprocessing.managers import SyncManager
m = SyncManager(address=('127.0.0.1', int(sys.argv[1])), authkey=sys.argv[2].encode())
m.connect()
d = m.dict()
for i in range(200):
    d[i % 7] = i
    assert d.get(i % 7) == i, (i, d.get(i % 7))
assert d.get('missing') is None
e = m.dict()
e[1] = 'other'
assert d.get(1) == 197 and e.get(1) == 'other'
print('ok', flush=True)
`;

describe('the M3 benchmark floor (bench/raw/manager-floor.ts)', () => {
  let server: Server | null = null;
  afterEach(() => {
    server?.close();
    server = null;
  });

  forEachPython(undefined, (py) => {
    const python = pythonsKilledAfterEach(py);

    it(`Python ${py.version}: a SyncManager dict set and read back through it, each dict its own`, async () => {
      server = await listenManagerFloor('127.0.0.1', 0, Buffer.from('floor-key'));
      const port = (server.address() as { port: number }).port;
      const client = python(CLIENT, [String(port), 'floor-key']);
      const exited = await client.exit();
      expect(exited.stderr).to.equal('');
      expect(exited.stdout.trim()).to.equal('ok');
      expect(exited.code).to.equal(0);
    });

    it(`Python ${py.version}: a client with another authkey is refused`, async () => {
      server = await listenManagerFloor('127.0.0.1', 0, Buffer.from('floor-key'));
      const port = (server.address() as { port: number }).port;
      const client = python(CLIENT, [String(port), 'wrong-key']);
      const exited = await client.exit();
      expect(exited.code).to.not.equal(0);
      expect(exited.stdout).to.not.include('ok');
    });
  });
});
