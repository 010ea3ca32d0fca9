/** HMAC challenge authentication, wire-compatible with CPython 3.6-3.13. */
export { answerChallenge, deliverChallenge } from './challenge.js';
