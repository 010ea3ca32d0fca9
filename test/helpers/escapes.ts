/**
 * Unhandled rejections (and uncaught exceptions) while a suite runs: a failure
 * path that forgets a promise shows here, not as a crash of a later test.
 */
import { expect } from 'chai';

export interface Escapes {
  /** What escaped so far (since the current test began, with `perTest`). */
  readonly seen: unknown[];
  /** Lets Node report what the last microtasks left unhandled, then fails the test if anything escaped. */
  check(): Promise<void>;
}

/**
 * Call inside a `describe`: listens from its first test to its last for
 * unhandled rejections, and with `uncaught` for uncaught exceptions too.
 */
export function escapes(options: { uncaught?: boolean; perTest?: boolean } = {}): Escapes {
  const seen: unknown[] = [];
  const spy = (reason: unknown): void => {
    seen.push(reason);
  };
  before(() => {
    process.on('unhandledRejection', spy);
    if (options.uncaught === true) process.on('uncaughtException', spy);
  });
  after(() => {
    process.off('unhandledRejection', spy);
    process.off('uncaughtException', spy);
  });
  if (options.perTest === true) beforeEach(() => void (seen.length = 0));
  return {
    seen,
    async check() {
      // Node reports an unhandled rejection after the microtask queue drains.
      await new Promise((resolve) => setImmediate(resolve));
      await new Promise((resolve) => setImmediate(resolve));
      expect(seen.map(String), 'unhandled rejections / uncaught exceptions').to.deep.equal([]);
    },
  };
}
