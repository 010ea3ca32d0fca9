import { expect } from 'chai';
import { once } from 'node:events';
import { mkdtempSync, rmSync } from 'node:fs';
import net from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { ConnectionStateError, EOFError, ProtocolError } from 'mpconn';
import { ReadState, ReceiveKind, Receiver, resolveSerializer, WaitQueue, type Waiter } from '../src/internal.js';
import { endRaw, frame, header, rejectionOf, sleep, until, writeRaw } from './helpers/wire.js';

const KiB = 1024;

/** A Receiver fed by the near end of a real Unix socket, as a Connection wires it; the test writes raw bytes on the far end. */
interface Fed {
  receiver: Receiver;
  near: net.Socket;
  raw: net.Socket;
}

const open: Fed[] = [];

async function fedReceiver(maxMessageSize = 1 << 20): Promise<Fed> {
  const dir = mkdtempSync(join(tmpdir(), 'mpconn-receiver-'));
  const path = join(dir, 's');
  const server = net.createServer({ allowHalfOpen: true });
  server.listen(path);
  await once(server, 'listening');
  const accepted = once(server, 'connection') as Promise<[net.Socket]>;
  const raw = net.connect({ path, allowHalfOpen: true });
  const [[near]] = await Promise.all([accepted, once(raw, 'connect')]);
  server.close();
  rmSync(dir, { recursive: true, force: true });
  const receiver = new Receiver(near, {
    serializer: () => resolveSerializer('msgpack'),
    maxMessageSize,
    owner: {},
    onWaitingChange: null,
  });
  near.on('data', (chunk: Buffer) => receiver.push(chunk));
  near.on('end', () => receiver.end(undefined));
  raw.on('error', () => {});
  const fed = { receiver, near, raw };
  open.push(fed);
  return fed;
}

function recvBytes(receiver: Receiver, options: { signal?: AbortSignal; timeout?: number } = {}): Promise<Buffer> {
  return receiver.receive(ReceiveKind.Bytes, Infinity, null, 0, options.signal, options.timeout) as Promise<Buffer>;
}

afterEach(() => {
  for (const { raw, near } of open.splice(0)) {
    raw.destroy();
    near.destroy();
  }
});

describe('Receiver', () => {
  describe('read state', () => {
    it('is open, then ending when the peer ends: the messages before the end come first, then EOFError', async () => {
      const { receiver, raw } = await fedReceiver();
      expect(receiver.state).to.equal(ReadState.Open);
      expect(receiver.ready()).to.equal(false);
      await writeRaw(raw, Buffer.concat([frame(Buffer.from('one')), frame(Buffer.from('two'))]));
      await endRaw(raw);
      await until(() => receiver.state === ReadState.Ending, 5000, 'the end of stream');
      expect(receiver.buffered).to.equal(2);
      expect(receiver.ready()).to.equal(true);
      expect((await recvBytes(receiver)).toString()).to.equal('one');
      expect((await recvBytes(receiver)).toString()).to.equal('two');
      expect(await rejectionOf(recvBytes(receiver))).to.be.instanceOf(EOFError);
      // A clean end is reported to every receive that asks, not once.
      expect(await rejectionOf(recvBytes(receiver))).to.be.instanceOf(EOFError);
      expect(receiver.state).to.equal(ReadState.Ending);
    });

    it('reports bad framing once, after the messages before it, and is unreadable from then on', async () => {
      const { receiver, raw } = await fedReceiver();
      await writeRaw(raw, Buffer.concat([frame(Buffer.from('kept')), header(-2)]));
      await until(() => receiver.state === ReadState.Ending, 5000, 'the framing error');
      expect((await recvBytes(receiver)).toString()).to.equal('kept');
      const err = await rejectionOf(recvBytes(receiver));
      expect(err).to.be.instanceOf(ProtocolError);
      expect(err.code).to.equal('ERR_BAD_LENGTH');
      expect(receiver.state).to.equal(ReadState.Unreadable);
      expect(receiver.ready()).to.equal(true);
    });

    it('gives the pending receives the end at once: the first the framing error, the next ones ERR_NOT_READABLE', async () => {
      const { receiver, raw } = await fedReceiver();
      const first = recvBytes(receiver);
      const second = recvBytes(receiver);
      await writeRaw(raw, header(-5));
      expect((await rejectionOf(first)).code).to.equal('ERR_BAD_LENGTH');
      const later = await rejectionOf(second);
      expect(later).to.be.instanceOf(ConnectionStateError);
      expect(later.code).to.equal('ERR_NOT_READABLE');
      expect(receiver.state).to.equal(ReadState.Unreadable);
    });

    it('on close rejects the pending receives with the reason given, drops the inbox and goes on reading a paused stream', async () => {
      const { receiver, near, raw } = await fedReceiver();
      // Past the inbox's high-water mark (1 MiB) the stream is paused.
      const payload = Buffer.alloc(64 * KiB, 7);
      const frames = Buffer.concat(Array.from({ length: 20 }, () => frame(payload)));
      void writeRaw(raw, frames).catch(() => {});
      await until(() => near.isPaused(), 5000, 'the stream to pause');
      expect(receiver.buffered).to.be.greaterThan(0);
      let made = 0;
      receiver.close(() => {
        made++;
        return new Error('closing');
      });
      expect(made, 'no receive was waiting, so no error was made').to.equal(0);
      expect(receiver.state).to.equal(ReadState.Closed);
      expect(receiver.buffered).to.equal(0);
      expect(near.isPaused()).to.equal(false);
      // What still arrives is read and dropped: the writer's bytes all leave its socket.
      await until(() => raw.writableLength === 0, 5000, 'the rest to be read');
      expect(receiver.buffered).to.equal(0);
    });

    it('stays unreadable once closed (that is what `readable` reports)', async () => {
      const { receiver, raw } = await fedReceiver();
      const tooLong = receiver.receive(ReceiveKind.Bytes, 2, null, 0, undefined, undefined);
      await writeRaw(raw, frame(Buffer.from('three')));
      expect((await rejectionOf(tooLong)).code).to.equal('ERR_MESSAGE_TOO_LONG');
      expect(receiver.state).to.equal(ReadState.Unreadable);
      receiver.close(() => new Error('closing'));
      expect(receiver.state).to.equal(ReadState.Unreadable);
    });

    it('rejects every waiting receive with the one error close() makes', async () => {
      const { receiver } = await fedReceiver();
      const waiting = [0, 1].map(() => receiver.receive(ReceiveKind.Bytes, Infinity, null, 0, undefined, undefined));
      let made = 0;
      receiver.close(() => Object.assign(new Error('closing'), { serial: ++made }));
      const errors = await Promise.all(waiting.map((w) => rejectionOf(w)));
      expect(made).to.equal(1);
      expect(errors.map((e) => (e as Error & { serial: number }).serial)).to.deep.equal([1, 1]);
    });
  });

  describe('pending receives', () => {
    it('a receive aborted while its buffer was being filled loses nothing: the next receive gets the whole message', async () => {
      const { receiver, raw } = await fedReceiver();
      const payload = Buffer.alloc(256 * KiB);
      for (let i = 0; i < payload.length; i++) payload[i] = (i * 31) % 251;
      const into = new Uint8Array(payload.length);
      const controller = new AbortController();
      const aborted = receiver.receive(ReceiveKind.Into, Infinity, into, 0, controller.signal, undefined);
      const message = frame(payload);
      await writeRaw(raw, message.subarray(0, 100 * KiB));
      await until(() => into[100] === payload[100] && into[50 * KiB] === payload[50 * KiB], 5000, 'the first bytes in the buffer');
      controller.abort(new Error('gave up'));
      expect((await rejectionOf(aborted)).message).to.equal('gave up');
      const next = recvBytes(receiver);
      await writeRaw(raw, message.subarray(100 * KiB));
      expect((await next).equals(payload)).to.equal(true);
    });
  });
});

interface Entry extends Waiter<string> {
  name: string;
}

describe('WaitQueue', () => {
  function entry(name: string, settled: string[]): Entry {
    return {
      name,
      resolve: (value) => settled.push(`${name} got ${value}`),
      reject: (reason) => settled.push(`${name} rejected: ${(reason as Error).name}`),
      disarm: null,
    };
  }

  it('serves waiters oldest first; one that times out leaves the line and the next arrival goes to the one after it', async () => {
    const settled: string[] = [];
    const cancelled: string[] = [];
    const queue = new WaitQueue<Entry>('take', (w) => cancelled.push(w.name));
    queue.add(entry('a', settled), undefined, 1);
    queue.add(entry('b', settled), undefined, undefined);
    await until(() => queue.length === 1, 5000, 'the timeout');
    expect(settled).to.deep.equal(['a rejected: TimeoutError']);
    expect(cancelled).to.deep.equal(['a']);
    const next = queue.shift()!;
    next.resolve('x');
    expect(settled).to.deep.equal(['a rejected: TimeoutError', 'b got x']);
  });

  it('an aborted waiter rejects with the signal\'s reason and takes nothing with it', () => {
    const settled: string[] = [];
    const queue = new WaitQueue<Entry>('take');
    const controller = new AbortController();
    queue.add(entry('a', settled), controller.signal, undefined);
    queue.add(entry('b', settled), undefined, undefined);
    controller.abort(new RangeError('stop'));
    expect(settled).to.deep.equal(['a rejected: RangeError']);
    expect(queue.peek()!.name).to.equal('b');
  });

  it('disarms the waiters it hands out: no timeout or abort reaches them afterwards', async () => {
    const settled: string[] = [];
    const queue = new WaitQueue<Entry>('take');
    const controller = new AbortController();
    queue.add(entry('a', settled), controller.signal, 1);
    queue.add(entry('b', settled), undefined, 1);
    const [a, b] = [queue.shift()!, ...queue.drain()];
    expect([a!.name, b!.name]).to.deep.equal(['a', 'b']);
    controller.abort();
    await sleep(20); // past both timeouts
    expect(settled).to.deep.equal([]);
    expect(queue.length).to.equal(0);
  });
});
