import { createHmac, randomFillSync, timingSafeEqual } from 'node:crypto';
import type { Connection } from '../connection/index.js';
import { AuthenticationError } from '../core/errors.js';
import { authkeyBytes, describe } from '../core/validate.js';

const CHALLENGE = Buffer.from('#CHALLENGE#');
export const WELCOME = Buffer.from('#WELCOME#');
export const FAILURE = Buffer.from('#FAILURE#');
/** The cap on every message either side of the handshake reads (CPython's). */
export const MAX_HANDSHAKE_MESSAGE = 256;
const NONCE_LENGTH = 40;
/** A Python <= 3.11 listener's challenge: 20 random bytes, answered with a raw HMAC-MD5. */
const LEGACY_CHALLENGE_LENGTH = 20;
/** A Python <= 3.11 client's reply: a raw 16-byte HMAC-MD5. */
const LEGACY_REPLY_LENGTH = 16;

/** Python's digest names (the wire carries these) and Node's for the same hash. */
const DIGESTS: ReadonlyMap<string, string> = new Map([
  ['md5', 'md5'],
  ['sha256', 'sha256'],
  ['sha384', 'sha384'],
  ['sha3_256', 'sha3-256'],
  ['sha3_384', 'sha3-384'],
]);
const MAX_DIGEST_NAME = Math.max(...[...DIGESTS.keys()].map((name) => name.length));

/** The digests a challenge may name, as CPython 3.12+ allows them. */
export const ALLOWED_DIGESTS: readonly string[] = [...DIGESTS.keys()];

function hmac(digest: string, key: Uint8Array, message: Uint8Array): Buffer {
  return createHmac(DIGESTS.get(digest)!, key).update(message).digest();
}

/**
 * Splits a challenge or reply into its digest name and payload the way
 * CPython 3.12+ does: a 16- or 20-byte message is the legacy HMAC-MD5
 * protocol (name `''`); anything else must start with `{name}`.
 */
function digestAndPayload(message: Buffer): [digest: string, payload: Buffer] {
  if (message.length === LEGACY_CHALLENGE_LENGTH || message.length === LEGACY_REPLY_LENGTH) return ['', message];
  if (message[0] === 0x7b /* { */) {
    const close = message.indexOf(0x7d /* } */, 1);
    if (close > 0 && close <= MAX_DIGEST_NAME + 1) {
      const name = message.toString('latin1', 1, close);
      if (DIGESTS.has(name)) return [name, message.subarray(close + 1)];
    }
  }
  throw new AuthenticationError(
    `unsupported message length (${message.length} bytes), missing digest prefix, or unsupported digest; ` +
      `the peer must use one of ${ALLOWED_DIGESTS.join(', ')}`,
    { reason: 'bad-message' },
  );
}

/**
 * An `authkey` option (`null`/`undefined`: none) as bytes of our own: like
 * Python's immutable `bytes`, the key a Listener or Client was given stays the
 * key even if the caller later reuses or wipes its buffer.
 */
export function ownAuthkey(authkey: unknown): Uint8Array | null {
  const key = authkeyBytes(authkey);
  return key === null || typeof authkey === 'string' ? key : new Uint8Array(key);
}

function checkKey(authkey: unknown): Uint8Array {
  const key = ownAuthkey(authkey);
  if (key === null) throw new TypeError(`authkey must be a Uint8Array or a string, not ${describe(authkey)}`);
  return key;
}

/**
 * The challenging side of the handshake (a Listener runs it first): sends a
 * random challenge naming `digest`, verifies the peer's HMAC of it, and
 * answers `#WELCOME#` or `#FAILURE#`. Rejects with `AuthenticationError` on a
 * wrong reply. Python: `deliver_challenge`.
 *
 * @example
 * ```ts
 * await deliverChallenge(conn, 'secret');
 * await answerChallenge(conn, 'secret');
 * ```
 */
export async function deliverChallenge(conn: Connection, authkey: Uint8Array | string, digest = 'sha256'): Promise<void> {
  const key = checkKey(authkey);
  if (typeof digest !== 'string') throw new TypeError(`digest must be a string, not ${describe(digest)}`);
  if (!DIGESTS.has(digest)) throw new RangeError(`digest must be one of ${ALLOWED_DIGESTS.join(', ')}; got ${JSON.stringify(digest)}`);
  const challenge = newChallenge(digest);
  await conn.sendBytes(challenge.frame);
  await judgeReply(conn, key, challenge.message, await conn.recvBytes(MAX_HANDSHAKE_MESSAGE));
}

/**
 * The answering side of the handshake (a Client runs it first): reads the
 * peer's challenge, replies with its HMAC (raw HMAC-MD5 to a Python <= 3.11
 * peer, `{digest}` + HMAC otherwise), and requires `#WELCOME#`. Python:
 * `answer_challenge`.
 *
 * @example
 * ```ts
 * await answerChallenge(conn, 'secret');
 * await deliverChallenge(conn, 'secret');
 * ```
 */
export async function answerChallenge(conn: Connection, authkey: Uint8Array | string): Promise<void> {
  const key = checkKey(authkey);
  await conn.sendBytes(replyTo(key, await conn.recvBytes(MAX_HANDSHAKE_MESSAGE)));
  await expectWelcome(conn);
}

/**
 * A Client's whole handshake: `answerChallenge` then `deliverChallenge`.
 *
 * With `pipeline`, our challenge is sent together with our reply instead of
 * after `#WELCOME#`: a listener reads the two in order either way (CPython's
 * included: it is the same byte stream), and the Client is authenticated one
 * round trip sooner. Sending a nonce early reveals nothing. Only for Unix
 * sockets, though: over TCP a CPython listener writes `#WELCOME#` and its
 * answer as two small segments, so Nagle's algorithm holds the answer until
 * the welcome is acknowledged, and with nothing left for us to send the
 * acknowledgement waits for the delayed-ACK timer — a few milliseconds per
 * connect. Sending our challenge after the welcome carries that ACK at once.
 */
export async function answerThenDeliver(conn: Connection, key: Uint8Array, pipeline = true): Promise<void> {
  const reply = replyTo(key, await conn.recvBytes(MAX_HANDSHAKE_MESSAGE));
  const challenge = newChallenge('sha256');
  if (pipeline) {
    // Not awaited apart: both frames go to the transport in the same tick.
    const sent = conn.sendBytes(reply);
    await conn.sendBytes(challenge.frame);
    await sent;
    await expectWelcome(conn);
  } else {
    await conn.sendBytes(reply);
    await expectWelcome(conn);
    await conn.sendBytes(challenge.frame);
  }
  await judgeReply(conn, key, challenge.message, await conn.recvBytes(MAX_HANDSHAKE_MESSAGE));
}

/**
 * Random bytes for nonces, drawn from the CSPRNG a pool at a time: one
 * `randomFillSync` per hundred handshakes instead of one each, which showed in
 * the cost of an authenticated connect. Every byte is used once.
 */
const noncePool = Buffer.allocUnsafe(NONCE_LENGTH * 100);
let noncePoolUsed = noncePool.length;

/** A fresh challenge: the message the reply must be the HMAC of, and the frame payload to send. */
export function newChallenge(digest: string): { message: Buffer; frame: Buffer } {
  if (noncePoolUsed + NONCE_LENGTH > noncePool.length) {
    randomFillSync(noncePool);
    noncePoolUsed = 0;
  }
  const prefix = `{${digest}}`;
  const frame = Buffer.allocUnsafe(CHALLENGE.length + prefix.length + NONCE_LENGTH);
  CHALLENGE.copy(frame, 0);
  frame.write(prefix, CHALLENGE.length, 'latin1');
  noncePool.copy(frame, CHALLENGE.length + prefix.length, noncePoolUsed, noncePoolUsed + NONCE_LENGTH);
  noncePoolUsed += NONCE_LENGTH;
  return { message: frame.subarray(CHALLENGE.length), frame };
}

/** Verifies the peer's reply to our challenge and tells it the verdict (`#FAILURE#` then a rejection, or `#WELCOME#`). */
async function judgeReply(conn: Connection, key: Uint8Array, message: Buffer, reply: Buffer): Promise<void> {
  try {
    verify(key, message, reply);
  } catch (err) {
    await conn.sendBytes(FAILURE).catch(() => {});
    throw err;
  }
  await conn.sendBytes(WELCOME);
}

/**
 * Checks a reply the way CPython 3.12+ does: the peer picks the digest (a
 * legacy 16-byte reply is HMAC-MD5). Since the MAC covers the `{digest}`
 * prefix we sent, a peer cannot downgrade without knowing the key.
 */
export function verify(key: Uint8Array, message: Buffer, reply: Buffer): void {
  const [name, mac] = digestAndPayload(reply);
  const digest = name === '' ? 'md5' : name;
  const expected = hmac(digest, key, message);
  if (expected.length !== mac.length) {
    throw new AuthenticationError(`expected a ${digest} digest of ${expected.length} bytes, got ${mac.length}`, {
      reason: 'bad-message',
    });
  }
  if (!timingSafeEqual(expected, mac)) {
    throw new AuthenticationError('digest received was wrong: the peer has a different authkey', { reason: 'wrong-key' });
  }
}

/** Our reply to a received `#CHALLENGE#` message: HMAC of the whole challenge, `{digest}` prefix included. */
export function replyTo(key: Uint8Array, received: Buffer): Buffer {
  if (!received.subarray(0, CHALLENGE.length).equals(CHALLENGE)) {
    throw new AuthenticationError(`protocol error: expected a challenge, got ${preview(received)}`, {
      reason: 'no-challenge',
    });
  }
  const message = received.subarray(CHALLENGE.length);
  if (message.length < LEGACY_CHALLENGE_LENGTH) {
    throw new AuthenticationError(`challenge too short: ${message.length} bytes`, { reason: 'bad-message' });
  }
  const [name] = digestAndPayload(message);
  return name === '' ? hmac('md5', key, message) : Buffer.concat([Buffer.from(`{${name}}`), hmac(name, key, message)]);
}

async function expectWelcome(conn: Connection): Promise<void> {
  checkVerdict(await conn.recvBytes(MAX_HANDSHAKE_MESSAGE));
}

/** Throws unless the peer's verdict on our reply is `#WELCOME#`. */
export function checkVerdict(verdict: Buffer): void {
  if (!verdict.equals(WELCOME)) {
    throw new AuthenticationError('digest sent was rejected: the peer has a different authkey', { reason: 'rejected' });
  }
}

function preview(bytes: Buffer): string {
  const shown = bytes.subarray(0, 24).toString('latin1').replace(/[^\x20-\x7e]/g, '.');
  return `${bytes.length} bytes starting ${JSON.stringify(shown)}`;
}
