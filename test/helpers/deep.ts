/**
 * Deeply nested values as the bytes of each serializer, built without
 * recursion, and their depth read back the same way (the values may be far
 * deeper than the stack allows to walk recursively).
 */

export type Format = 'msgpack' | 'json' | 'pickle';

/** A value of `depth` nested one-element lists around null (None), in each format's bytes. */
export function nested(format: Format, depth: number): Buffer {
  switch (format) {
    case 'msgpack':
      return Buffer.concat([Buffer.alloc(depth, 0x91), Buffer.from([0xc0])]); // fixarray(1) ... nil
    case 'json':
      return Buffer.from('['.repeat(depth) + 'null' + ']'.repeat(depth));
    case 'pickle':
      // PROTO 4, None, TUPLE1 x depth, STOP: one byte per level, as CPython writes nested 1-tuples.
      return Buffer.concat([Buffer.from([0x80, 4, 0x4e]), Buffer.alloc(depth, 0x85), Buffer.from('.')]);
  }
}

/** How many arrays deep `value` is along its first items. */
export function depthOf(value: unknown): number {
  let depth = 0;
  for (let v = value; Array.isArray(v); v = (v as unknown[])[0]) depth++;
  return depth;
}
