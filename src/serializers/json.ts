import type { Serializer } from './types.js';

/** UTF-8 JSON. */
export function jsonSerializer(): Serializer {
  const decoder = new TextDecoder('utf-8', { fatal: true });
  return {
    encode(value) {
      const text = JSON.stringify(value);
      if (text === undefined) throw new TypeError(`${typeof value} cannot be sent as JSON`);
      return Buffer.from(text, 'utf8');
    },
    decode: (bytes) => JSON.parse(decoder.decode(bytes)),
  };
}
