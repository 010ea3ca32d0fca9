/**
 * The text codecs pickles use. Python writes `str` as UTF-8 with
 * `surrogatepass`, so a lone surrogate (legal in both Python and JS strings)
 * travels as the 3-byte sequence `ED A0 80`..`ED BF BF`, which the WHATWG
 * codecs (`TextEncoder`, `TextDecoder`) refuse or replace. These keep it, so a
 * string with a lone surrogate round-trips exactly.
 */

const utf8 = new TextDecoder('utf-8', { fatal: true, ignoreBOM: true });
const CHUNK = 0x2000;

type IsWellFormed = (this: string) => boolean;
const nativeIsWellFormed = (String.prototype as { isWellFormed?: IsWellFormed }).isWellFormed;
const LONE_SURROGATE = /[\uD800-\uDBFF](?![\uDC00-\uDFFF])|(?<![\uD800-\uDBFF])[\uDC00-\uDFFF]/;

/** True when `s` has no lone surrogate (so the WHATWG encoders are exact). */
export function isWellFormed(s: string): boolean {
  return nativeIsWellFormed !== undefined ? nativeIsWellFormed.call(s) : !LONE_SURROGATE.test(s);
}

/** UTF-8 byte length of `s`, lone surrogates counting 3 bytes. */
export function utf8Length(s: string): number {
  const n = s.length;
  if (n < 32) {
    let bytes = 0;
    for (let i = 0; i < n; i++) {
      const c = s.charCodeAt(i);
      if (c < 0x80) bytes += 1;
      else if (c < 0x800) bytes += 2;
      else if (c >= 0xd800 && c <= 0xdbff && i + 1 < n) {
        const d = s.charCodeAt(i + 1);
        if (d >= 0xdc00 && d <= 0xdfff) {
          bytes += 4;
          i++;
        } else bytes += 3;
      } else bytes += 3;
    }
    return bytes;
  }
  // Buffer counts a lone surrogate as its 3-byte replacement: the same length.
  return Buffer.byteLength(s, 'utf8');
}

/**
 * Writes `s` as UTF-8 (surrogatepass) at `out[pos]`; `out` has room for
 * `utf8Length(s)` bytes. Returns the new position.
 */
export function writeUtf8(s: string, out: Buffer, pos: number): number {
  const n = s.length;
  if (n >= 32 && isWellFormed(s)) return pos + out.write(s, pos, 'utf8');
  for (let i = 0; i < n; i++) {
    let c = s.charCodeAt(i);
    if (c < 0x80) {
      out[pos++] = c;
    } else if (c < 0x800) {
      out[pos++] = 0xc0 | (c >> 6);
      out[pos++] = 0x80 | (c & 0x3f);
    } else {
      if (c >= 0xd800 && c <= 0xdbff && i + 1 < n) {
        const d = s.charCodeAt(i + 1);
        if (d >= 0xdc00 && d <= 0xdfff) {
          c = 0x10000 + ((c - 0xd800) << 10) + (d - 0xdc00);
          i++;
          out[pos++] = 0xf0 | (c >> 18);
          out[pos++] = 0x80 | ((c >> 12) & 0x3f);
          out[pos++] = 0x80 | ((c >> 6) & 0x3f);
          out[pos++] = 0x80 | (c & 0x3f);
          continue;
        }
      }
      out[pos++] = 0xe0 | (c >> 12);
      out[pos++] = 0x80 | ((c >> 6) & 0x3f);
      out[pos++] = 0x80 | (c & 0x3f);
    }
  }
  return pos;
}

/** Thrown by the decoders below; the pickle decoder turns it into an `UnpicklingError`. */
export class TextDecodeError {
  constructor(readonly message: string) {}
}

function fromCodes(codes: number[]): string {
  if (codes.length <= CHUNK) return String.fromCharCode(...codes);
  let s = '';
  for (let i = 0; i < codes.length; i += CHUNK) s += String.fromCharCode(...codes.slice(i, i + CHUNK));
  return s;
}

/** Decodes `data[start..end)` as UTF-8 with surrogatepass, like Python's `str(b, 'utf-8', 'surrogatepass')`. */
export function readUtf8(data: Uint8Array, start: number, end: number): string {
  if (end - start < 24) {
    let s = '';
    let i = start;
    for (; i < end; i++) {
      const b = data[i]!;
      if (b >= 0x80) break;
      s += String.fromCharCode(b);
    }
    if (i === end) return s;
  }
  try {
    return utf8.decode(data.subarray(start, end));
  } catch {
    return readUtf8Slow(data, start, end);
  }
}

function readUtf8Slow(data: Uint8Array, start: number, end: number): string {
  const units: number[] = [];
  let out = '';
  let i = start;
  while (i < end) {
    const b = data[i]!;
    let cp: number;
    let need: number;
    let min: number;
    if (b < 0x80) {
      units.push(b);
      i++;
      continue;
    } else if (b >= 0xc2 && b <= 0xdf) {
      cp = b & 0x1f;
      need = 1;
      min = 0x80;
    } else if (b >= 0xe0 && b <= 0xef) {
      cp = b & 0x0f;
      need = 2;
      min = 0x800;
    } else if (b >= 0xf0 && b <= 0xf4) {
      cp = b & 0x07;
      need = 3;
      min = 0x10000;
    } else {
      throw new TextDecodeError(`invalid UTF-8 start byte 0x${b.toString(16)} at ${i - start}`);
    }
    if (i + need >= end) {
      throw new TextDecodeError(`truncated UTF-8 sequence at ${i - start}`);
    }
    for (let k = 1; k <= need; k++) {
      const c = data[i + k]!;
      if ((c & 0xc0) !== 0x80) throw new TextDecodeError(`invalid UTF-8 continuation byte at ${i + k - start}`);
      cp = (cp << 6) | (c & 0x3f);
    }
    if (cp < min || cp > 0x10ffff) throw new TextDecodeError(`invalid UTF-8 sequence at ${i - start}`);
    i += need + 1;
    if (cp >= 0x10000) {
      cp -= 0x10000;
      units.push(0xd800 + (cp >> 10), 0xdc00 + (cp & 0x3ff));
    } else {
      units.push(cp); // includes surrogates: that is what surrogatepass allows
    }
    if (units.length >= CHUNK) {
      out += fromCodes(units);
      units.length = 0;
    }
  }
  return out + fromCodes(units);
}

/** Latin-1: every byte is the code point of the same value. */
export function readLatin1(data: Uint8Array, start: number, end: number): string {
  return Buffer.from(data.buffer, data.byteOffset + start, end - start).toString('latin1');
}

const HEX = /^[0-9a-fA-F]+$/;

/**
 * Python's `raw-unicode-escape` codec, used by the protocol 0 UNICODE opcode:
 * bytes are Latin-1, except `\uXXXX` and `\UXXXXXXXX` after an odd number of
 * backslashes.
 */
export function readRawUnicodeEscape(data: Uint8Array, start: number, end: number): string {
  let s = '';
  let runStart = start;
  let i = start;
  while (i < end) {
    if (data[i] !== 0x5c) {
      i++;
      continue;
    }
    let j = i;
    while (j < end && data[j] === 0x5c) j++;
    const backslashes = j - i;
    if (backslashes % 2 === 0 || j >= end || (data[j] !== 0x75 && data[j] !== 0x55)) {
      i = j;
      continue;
    }
    // keep the run (minus the escaping backslash), then the escape
    s += readLatin1(data, runStart, j - 1);
    const digits = data[j] === 0x75 ? 4 : 8;
    const hex = readLatin1(data, j + 1, Math.min(j + 1 + digits, end));
    if (hex.length !== digits || !HEX.test(hex)) {
      throw new TextDecodeError(`truncated \\${digits === 4 ? 'uXXXX' : 'UXXXXXXXX'} escape`);
    }
    const cp = parseInt(hex, 16);
    if (cp > 0x10ffff) throw new TextDecodeError('\\Uxxxxxxxx out of range');
    s += String.fromCodePoint(cp);
    i = runStart = j + 1 + digits;
  }
  return s + readLatin1(data, runStart, end);
}

const SIMPLE_ESCAPES: Record<number, number> = {
  0x5c: 0x5c, // \\
  0x27: 0x27, // \'
  0x22: 0x22, // \"
  0x61: 0x07, // \a
  0x62: 0x08, // \b
  0x66: 0x0c, // \f
  0x6e: 0x0a, // \n
  0x72: 0x0d, // \r
  0x74: 0x09, // \t
  0x76: 0x0b, // \v
};

function hexValue(b: number): number {
  if (b >= 0x30 && b <= 0x39) return b - 0x30;
  if (b >= 0x61 && b <= 0x66) return b - 0x57;
  if (b >= 0x41 && b <= 0x46) return b - 0x37;
  return -1;
}

/**
 * Python's `codecs.escape_decode` (string-literal escapes on bytes), used by
 * the protocol 0 STRING opcode. Returns the bytes as Latin-1 text.
 */
export function readEscaped(data: Uint8Array, start: number, end: number): string {
  const units: number[] = [];
  let out = '';
  for (let i = start; i < end; i++) {
    const b = data[i]!;
    if (b !== 0x5c) {
      units.push(b);
    } else {
      if (i + 1 >= end) throw new TextDecodeError('trailing \\ in string');
      const e = data[++i]!;
      const simple = SIMPLE_ESCAPES[e];
      if (simple !== undefined) {
        units.push(simple);
      } else if (e === 0x0a) {
        // backslash-newline: a line continuation, nothing
      } else if (e >= 0x30 && e <= 0x37) {
        let v = e - 0x30;
        for (let k = 0; k < 2 && i + 1 < end && data[i + 1]! >= 0x30 && data[i + 1]! <= 0x37; k++) {
          v = v * 8 + (data[++i]! - 0x30);
        }
        units.push(v & 0xff);
      } else if (e === 0x78) {
        const h = i + 2 < end ? hexValue(data[i + 1]!) : -1;
        const l = i + 2 < end ? hexValue(data[i + 2]!) : -1;
        if (h < 0 || l < 0) throw new TextDecodeError(`invalid \\x escape at ${i - 1 - start}`);
        units.push(h * 16 + l);
        i += 2;
      } else {
        units.push(0x5c, e); // unknown escapes are kept, as Python does
      }
    }
    if (units.length >= CHUNK) {
      out += fromCodes(units);
      units.length = 0;
    }
  }
  return out + fromCodes(units);
}
