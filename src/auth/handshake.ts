import { armCancel } from '../core/cancel.js';
import { type Connection } from '../connection/index.js';
import { limitFrames } from '../connection/connection.js';
import { AuthenticationError, ProtocolError } from '../core/errors.js';
import { answerChallenge, answerThenDeliver, deliverChallenge, MAX_HANDSHAKE_MESSAGE } from './challenge.js';

/**
 * Each side reads three handshake messages (a challenge, a reply or verdict,
 * and the other of those); they are capped from their headers on, so a peer
 * announcing a huge first message costs nothing.
 */
export const HANDSHAKE_MESSAGES = 3;

/**
 * The handshake a Listener runs on each new connection: deliver, then answer
 * (as CPython's `Listener.accept`). Resolves when the peer is authenticated. On failure the
 * connection is closed and the error is an `AuthenticationError` or, for a
 * reply that broke the framing limits, a `ProtocolError`.
 *
 * It runs on a Connection, for a Listener whose accept event has a
 * diagnostics subscriber (who is given the Connection before the
 * handshake); otherwise `SocketHandshake` runs the same bytes on the bare
 * socket, and the Connection is made after.
 */
export async function authenticatePeer(conn: Connection, authkey: Uint8Array, timeout: number): Promise<void> {
  conn[limitFrames](HANDSHAKE_MESSAGES, MAX_HANDSHAKE_MESSAGE);
  try {
    await bounded(conn, timeout, undefined, async () => {
      await deliverChallenge(conn, authkey);
      await answerChallenge(conn, authkey);
    });
  } catch (err) {
    await conn.close();
    throw listenerFailure(err, timeout);
  }
}

/** What a Listener reports for a handshake that failed with `err`: an `AuthenticationError`, or the `ProtocolError` of a reply that broke the framing limits. */
export function listenerFailure(err: unknown, timeout: number): AuthenticationError | ProtocolError {
  if (err instanceof AuthenticationError || err instanceof ProtocolError) return err;
  if (isTimeout(err)) {
    return new AuthenticationError(`the peer did not finish the handshake within ${timeout} ms`, {
      cause: err,
      reason: 'timeout',
    });
  }
  return new AuthenticationError('the peer closed the connection during the handshake', { cause: err, reason: 'closed' });
}

/**
 * The handshake a Client runs after connecting: answer, then deliver. Bounded
 * by `timeout`, so a listener that has no authkey (and so never sends a
 * challenge) makes it fail instead of waiting forever (CPython gh-123736).
 * On a Connection only when the connect event has a diagnostics subscriber,
 * as `authenticatePeer`.
 */
export async function authenticateToListener(
  conn: Connection,
  authkey: Uint8Array,
  timeout: number | undefined,
  signal: AbortSignal | undefined,
  /** The caller's whole timeout (connect + handshake), which error messages name; default `timeout`. */
  reportedTimeout: number | undefined = timeout,
  /** Send our challenge with our reply (see `answerThenDeliver`: Unix sockets only). */
  pipeline = true,
): Promise<void> {
  conn[limitFrames](HANDSHAKE_MESSAGES, MAX_HANDSHAKE_MESSAGE);
  let challenged = false;
  try {
    await bounded(conn, timeout, signal, async () => {
      challenged = await conn.poll(Infinity);
      await answerThenDeliver(conn, authkey, pipeline);
    });
  } catch (err) {
    await conn.close();
    throw clientFailure(err, challenged, reportedTimeout, signal);
  }
}

/**
 * What a Client rejects with for a handshake that failed with `err`, once
 * `challenged` (a first message arrived) or not: the signal's reason when it
 * aborted, else an `AuthenticationError` that says what to check.
 */
export function clientFailure(
  err: unknown,
  challenged: boolean,
  reportedTimeout: number | undefined,
  signal: AbortSignal | undefined,
): unknown {
  if (signal?.aborted && err === signal.reason) return err;
  if (isTimeout(err)) {
    return new AuthenticationError(
      challenged
        ? `the authentication handshake did not finish within the ${reportedTimeout} ms timeout`
        : `no challenge received within the ${reportedTimeout} ms timeout — is the listener running without an authkey?`,
      { cause: err, reason: challenged ? 'timeout' : 'no-challenge' },
    );
  }
  if (err instanceof AuthenticationError) {
    if (err.reason !== 'no-challenge') return err;
    return new AuthenticationError(`${err.message} — is the listener running without an authkey?`, {
      cause: err,
      reason: 'no-challenge',
    });
  }
  if (err instanceof ProtocolError) {
    // e.g. a first message over the 256-byte cap: the listener is still there, it just broke the rules
    return new AuthenticationError(
      `the listener broke the handshake protocol: ${err.message}; is it a multiprocessing.connection Listener?`,
      { cause: err, reason: 'protocol' },
    );
  }
  return new AuthenticationError(
    'the listener closed the connection during the handshake: does it use the same authkey (or one at all)? ' +
      '(A listener out of file descriptors, or dropping pending connections over its maxPending, closes them this way too.)',
    { cause: err, reason: 'closed' },
  );
}

/** Runs `steps`; on timeout or abort, closes the connection and rejects with the reason. */
function bounded(
  conn: Connection,
  timeout: number | undefined,
  signal: AbortSignal | undefined,
  steps: () => Promise<void>,
): Promise<void> {
  if (signal?.aborted) return Promise.reject(signal.reason);
  return new Promise<void>((resolve, reject) => {
    let cancelled = false;
    const disarm = armCancel(signal, timeout, 'authentication handshake', (reason) => {
      cancelled = true;
      reject(reason);
      void conn.close();
    });
    steps().then(
      () => {
        disarm();
        if (!cancelled) resolve();
      },
      (err: unknown) => {
        disarm();
        if (!cancelled) reject(err);
      },
    );
  });
}

function isTimeout(err: unknown): boolean {
  return err instanceof DOMException && err.name === 'TimeoutError';
}
