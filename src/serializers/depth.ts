/**
 * How deep the built-in decoders let a value nest. Every decoder here is
 * iterative, but the code that uses a decoded value (a renderer, a recursive
 * walk, `JSON.stringify`, our own msgpack encoder) usually is not, and a
 * one-byte-per-level bomb also costs a JS object per byte. CPython's own
 * encoders stop far below this default (json and pickle at the interpreter's
 * recursion limit: about 1,000 levels up to 3.12, a few thousand in 3.13;
 * msgpack-python at 512), so no real message meets it.
 */
export const DEFAULT_MAX_DEPTH = 10_000;

/** A decoder met a value nested deeper than its limit. */
export class DepthLimitError extends Error {
  constructor(readonly maxDepth: number) {
    super(`the value is nested more than ${maxDepth} levels deep (maxDepth ${maxDepth})`);
    this.name = 'DepthLimitError';
  }
}
