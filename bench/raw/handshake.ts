/**
 * The W5 floor: the same authentication bytes mpconn and CPython exchange
 * (each side delivers a `#CHALLENGE#{sha256}` + 40 random bytes challenge and
 * answers the other's with `{sha256}` + HMAC-SHA256 of the whole message,
 * `#WELCOME#` as the verdict), over bare `node:net` sockets: a synchronous
 * state machine in the 'data' handler, frames coalesced so that each side
 * writes twice (server: challenge, then welcome + answer; client: reply +
 * own challenge, then welcome), no promise but the caller's.
 *
 * With `pipeline` (what mpconn's Client does over Unix sockets) the client
 * sends its challenge with its answer, and the server waits for both before it
 * says `#WELCOME#` and answers in one write. Without it (mpconn's Client over
 * TCP, and CPython's client) the client sends its challenge after the welcome,
 * so the server welcomes first. The two sides are meant for each other only,
 * with no checks beyond the digests.
 */
import { createHmac, randomFillSync, timingSafeEqual } from 'node:crypto';
import type { Socket } from 'node:net';
import { RawDecoder, frames } from './framer.js';

export const CHALLENGE = Buffer.from('#CHALLENGE#');
export const WELCOME = Buffer.from('#WELCOME#');
const PREFIX = Buffer.from('{sha256}');
const NONCE_LENGTH = 40;

function newMessage(): Buffer {
  const m = Buffer.allocUnsafe(PREFIX.length + NONCE_LENGTH);
  PREFIX.copy(m, 0);
  randomFillSync(m, PREFIX.length);
  return m;
}

function answer(key: Buffer, message: Buffer): Buffer {
  return Buffer.concat([PREFIX, createHmac('sha256', key).update(message).digest()]);
}

function challengeOf(frame: Buffer): Buffer {
  if (!frame.subarray(0, CHALLENGE.length).equals(CHALLENGE)) throw new Error('raw handshake: expected #CHALLENGE#');
  return frame.subarray(CHALLENGE.length);
}

function check(expected: Buffer, got: Buffer): void {
  if (expected.length !== got.length || !timingSafeEqual(expected, got)) throw new Error('raw handshake: digest mismatch');
}

/** Server side: runs on a freshly accepted socket, calls `done` (or `fail`) once the client said `#WELCOME#`. */
export function serverHandshake(
  socket: Socket,
  key: Buffer,
  pipeline: boolean,
  done: () => void,
  fail: (err: Error) => void,
): void {
  const mine = newMessage();
  let state = 0;
  const decoder = new RawDecoder((bytes, start, length) => {
    const frame = bytes!.subarray(start, start + length);
    if (state === 0) {
      check(answer(key, mine), frame);
      if (!pipeline) socket.write(frames(WELCOME));
      state = 1;
    } else if (state === 1) {
      const reply = answer(key, challengeOf(frame));
      socket.write(pipeline ? frames(WELCOME, reply) : frames(reply));
      state = 2;
    } else if (state === 2) {
      if (!frame.equals(WELCOME)) throw new Error('raw handshake: client refused');
      state = 3;
      socket.removeListener('data', onData);
      done();
    }
  });
  const onData = (chunk: Buffer): void => {
    try {
      decoder.push(chunk);
    } catch (err) {
      socket.destroy();
      fail(err as Error);
    }
  };
  socket.on('data', onData);
  socket.write(frames(Buffer.concat([CHALLENGE, mine])));
}

/** Client side: resolves once both sides are authenticated. */
export function clientHandshake(socket: Socket, key: Buffer, pipeline: boolean): Promise<void> {
  return new Promise((resolve, reject) => {
    const mine = newMessage();
    let state = 0;
    const decoder = new RawDecoder((bytes, start, length) => {
      const frame = bytes!.subarray(start, start + length);
      if (state === 0) {
        const reply = answer(key, challengeOf(frame));
        socket.write(pipeline ? frames(reply, Buffer.concat([CHALLENGE, mine])) : frames(reply));
        state = 1;
      } else if (state === 1) {
        if (!frame.equals(WELCOME)) throw new Error('raw handshake: server refused');
        if (!pipeline) socket.write(frames(Buffer.concat([CHALLENGE, mine])));
        state = 2;
      } else if (state === 2) {
        check(answer(key, mine), frame);
        socket.write(frames(WELCOME));
        state = 3;
        socket.removeListener('data', onData);
        socket.removeListener('close', onClose);
        resolve();
      }
    });
    const onData = (chunk: Buffer): void => {
      try {
        decoder.push(chunk);
      } catch (err) {
        socket.destroy();
        reject(err as Error);
      }
    };
    const onClose = (): void => reject(new Error('raw handshake: connection closed'));
    socket.on('data', onData);
    socket.on('close', onClose);
  });
}
