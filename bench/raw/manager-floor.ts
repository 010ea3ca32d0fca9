/**
 * The M3 floor: the least a Node server can do per manager call over
 * `node:net`, to show what separates `ManagerServer` from Node's own limit.
 *
 * Just enough of CPython's manager protocol for the M3 client (a
 * `SyncManager.connect()`, one `m.dict()`, then `d[k] = v` and `d.get(k)`):
 * the handshake (a legacy 20-byte HMAC-MD5 challenge, which every CPython
 * client answers, though not on a FIPS-only host; the client's own challenge
 * answered in its digest), then on
 * each connection a synchronous 'data' handler that frames by hand, decodes
 * the request with mpconn's pickle decoder, runs it on a `Map` and writes the
 * reply in one `socket.write`. No promise, no queue, no Connection, no checks
 * beyond what the M3 client sends. Not a manager server: anything else it is
 * asked is answered with a `#ERROR` string, and a bad frame closes the socket.
 */
import { createHmac, randomFillSync, timingSafeEqual } from 'node:crypto';
import net from 'node:net';
import type { Socket } from 'node:net';
import { PickleDecoder, PickleEncoder, Tuple } from '../../src/serializers/pickle/index.js';
import { RawDecoder, frames } from './framer.js';
import { CHALLENGE, WELCOME } from './handshake.js';

/** The methods CPython's DictProxy exposes (`create` returns them). */
const DICT_EXPOSED = new Tuple(
  ...['__contains__', '__delitem__', '__getitem__', '__iter__', '__len__', '__setitem__', 'clear', 'copy', 'get', 'items', 'keys', 'pop', 'popitem', 'setdefault', 'update', 'values'],
);

/** A challenge `{name}payload` → [Node's digest name, the `{name}` prefix its answer starts with]; a bare 20-byte one is legacy MD5, answered without one. */
function digestOf(message: Buffer): [string, Buffer] {
  if (message.length === 20) return ['md5', message.subarray(0, 0)];
  const close = message.indexOf(0x7d /* } */);
  return [message.toString('latin1', 1, close).replace('_', '-'), message.subarray(0, close + 1)];
}

/** Serves the floor on `host:port` (0: any free port); resolves with the listening server. */
export async function listenManagerFloor(host: string, port: number, authkey: Buffer): Promise<net.Server> {
  const objects = new Map<string, Map<unknown, unknown>>();
  let nextId = 0;
  // As ManagerServer decodes requests for SyncManager objects (lossless), and sends `('#RETURN', None)` pre-pickled.
  const decoder = new PickleDecoder({ lossless: true });
  const encoder = new PickleEncoder();
  const returnNone = frames(encoder.encodeTupleLent(['#RETURN', null]));
  const server = net.createServer({ noDelay: true }, (socket) => serve(socket));

  function serve(socket: Socket): void {
    const mine = Buffer.allocUnsafe(20);
    randomFillSync(mine);
    let state = 0;
    let calls = false;
    const reply = (kind: string, value: unknown): void => {
      socket.write(frames(encoder.encodeTupleLent([kind, value])));
    };
    const framing = new RawDecoder((bytes, start, length) => {
      const frame = bytes!.subarray(start, start + length);
      if (state === 0) {
        const expected = createHmac('md5', authkey).update(mine).digest();
        if (frame.length !== expected.length || !timingSafeEqual(frame, expected)) throw new Error('floor: digest mismatch');
        socket.write(frames(WELCOME));
        state = 1;
      } else if (state === 1) {
        const challenge = frame.subarray(CHALLENGE.length);
        const [digest, prefix] = digestOf(challenge);
        socket.write(frames(Buffer.concat([prefix, createHmac(digest, authkey).update(challenge).digest()])));
        state = 2;
      } else if (state === 2) {
        if (!frame.equals(WELCOME)) throw new Error('floor: client refused');
        state = 3;
      } else {
        const [ident, method, args] = decoder.decode(frame) as [string | null, string, unknown[]];
        if (calls) {
          const dict = objects.get(ident!)!;
          if (method === '__setitem__') {
            dict.set(args[0], args[1]);
            socket.write(returnNone);
          } else if (method === 'get') {
            reply('#RETURN', dict.get(args[0]) ?? null);
          } else reply('#ERROR', `floor: no method ${method}`);
        } else if (method === 'accept_connection') {
          calls = true;
          reply('#RETURN', null);
        } else if (method === 'create') {
          const id = (nextId++).toString(16);
          objects.set(id, new Map());
          reply('#RETURN', new Tuple(id, DICT_EXPOSED));
        } else if (method === 'dummy' || method === 'incref' || method === 'decref') {
          reply('#RETURN', null);
        } else reply('#ERROR', `floor: no control ${method}`);
      }
    });
    socket.on('data', (chunk: Buffer) => {
      try {
        framing.push(chunk);
      } catch {
        socket.destroy();
      }
    });
    socket.on('error', () => {});
    socket.write(frames(Buffer.concat([CHALLENGE, mine])));
  }

  server.listen(port, host);
  await new Promise<void>((resolve, reject) => {
    server.once('listening', resolve);
    server.once('error', reject);
  });
  return server;
}
