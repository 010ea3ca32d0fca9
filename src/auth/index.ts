/** HMAC challenge authentication, wire-compatible with CPython 3.6-3.13. */
export { ALLOWED_DIGESTS, answerChallenge, deliverChallenge, ownAuthkey } from './challenge.js';
export { authenticatePeer, authenticateToListener } from './handshake.js';
