/**
 * How the CLI shows messages as JSON and reads JSON into messages.
 *
 * msgpack and pickle carry values JSON has no word for (bytes, big integers,
 * NaN, maps with non-string keys, sets). Those are written as one-key
 * "tagged" objects, and `send` reads the same tags back, so the `message` of
 * a line `listen` printed can be fed to `send` and produces the same value:
 *
 * | value                                  | JSON                                  |
 * |----------------------------------------|---------------------------------------|
 * | `Uint8Array` (bytes, bytearray)        | `{"$bytes": "<base64>"}`              |
 * | `bigint` (int beyond 2**53)            | `{"$bigint": "12345678901234567890"}` |
 * | NaN, Infinity, -Infinity               | `{"$float": "NaN"}`                   |
 * | `Map` (dict with non-string keys)      | `{"$map": [[key, value], ...]}`       |
 * | `Set` (set, frozenset)                 | `{"$set": [...]}`                     |
 * | `Date` (msgpack timestamp)             | `{"$date": "2024-01-01T00:00:00.000Z"}` |
 * | an object with a key starting with `$` | `{"$object": {...}}` (keys literal)   |
 * | any other class instance (output only) | `{"$type": "PyGlobal", ...its fields}` |
 * | a cycle (output only)                  | `{"$cycle": true}`                    |
 *
 * The `json` format has no tags in either direction: JSON in, JSON out.
 */

/** A JSON value, as `JSON.stringify` writes it. */
export type Json = null | boolean | number | string | Json[] | { [key: string]: Json };

/** A value given on the command line or stdin that cannot become a message. */
export class InputError extends Error {}

const TAGS = new Set(['$bytes', '$bigint', '$float', '$map', '$set', '$date', '$object']);
const BASE64 = /^(?:[A-Za-z0-9+/]{4})*(?:[A-Za-z0-9+/]{2}==|[A-Za-z0-9+/]{3}=|[A-Za-z0-9+/]{2,3})?$/;
const INTEGER = /^-?\d+$/;

/** A received value as tagged JSON (see the module comment). */
export function toTaggedJson(value: unknown): Json {
  // JSON.parse is not recursive in V8, so this takes any depth the text writer does.
  return JSON.parse(taggedJsonText(value)) as Json;
}

/**
 * A received value as the text of its tagged JSON, for any nesting depth.
 *
 * A peer can send a value nested many thousands deep (5,000 msgpack `0x91`
 * bytes are 5,000 nested arrays), which a recursive walk, or `JSON.stringify`
 * itself, would overflow the call stack on. So the walk keeps its own stack.
 * With `tagged: false` (the json format, whose values are JSON already) no
 * `$object` wrapping is added.
 */
export function taggedJsonText(value: unknown, options: { tagged?: boolean } = {}): string {
  const tagged = options.tagged ?? true;
  const out: string[] = [];
  const path = new Set<object>();
  const stack: Frame[] = [];
  let next: unknown = value;
  for (;;) {
    writeValue(next, tagged, out, path, stack);
    // Climb out of finished containers until one has another item to write.
    let frame = stack.at(-1);
    while (frame !== undefined && frame.index === frame.items.length) {
      out.push(frame.close);
      if (frame.owner !== null) path.delete(frame.owner);
      stack.pop();
      frame = stack.at(-1);
    }
    if (frame === undefined) return out.join('');
    if (frame.index > 0 || frame.commaFirst) out.push(',');
    const key = frame.keys === null ? null : frame.keys[frame.index]!;
    if (key !== null) out.push(JSON.stringify(key), ':');
    next = frame.items[frame.index++];
  }
}

/** A container being written: its items (and keys, for an object) and how it ends. */
interface Frame {
  items: unknown[];
  keys: string[] | null;
  index: number;
  close: string;
  /** The object on the current path (for cycle detection), or null for a helper array. */
  owner: object | null;
  /** The first item follows a field already written (`"$type"`), so it needs a comma too. */
  commaFirst: boolean;
}

/** Writes a leaf whole, or the opening of a container (pushing its frame). */
function writeValue(value: unknown, tagged: boolean, out: string[], path: Set<object>, stack: Frame[]): void {
  switch (typeof value) {
    case 'string':
      out.push(JSON.stringify(value));
      return;
    case 'boolean':
      out.push(value ? 'true' : 'false');
      return;
    case 'number':
      out.push(Number.isFinite(value) ? JSON.stringify(value) : `{"$float":"${String(value)}"}`);
      return;
    case 'bigint':
      out.push(`{"$bigint":"${value.toString()}"}`);
      return;
    case 'undefined':
      out.push('null');
      return;
    case 'object':
      break;
    default:
      out.push(`{"$type":${JSON.stringify(typeof value)}}`);
      return;
  }
  if (value === null) {
    out.push('null');
    return;
  }
  if (value instanceof ArrayBuffer || value instanceof SharedArrayBuffer) {
    out.push(JSON.stringify(bytesTag(new Uint8Array(value))));
    return;
  }
  if (ArrayBuffer.isView(value)) {
    out.push(JSON.stringify(bytesTag(new Uint8Array(value.buffer, value.byteOffset, value.byteLength))));
    return;
  }
  if (value instanceof Date) {
    out.push(`{"$date":"${Number.isNaN(value.getTime()) ? 'Invalid Date' : value.toISOString()}"}`);
    return;
  }
  if (path.has(value)) {
    out.push('{"$cycle":true}');
    return;
  }
  const open = (items: unknown[], keys: string[] | null, start: string, close: string, commaFirst = false): void => {
    path.add(value);
    out.push(start);
    stack.push({ items, keys, index: 0, close, owner: value, commaFirst });
  };
  if (Array.isArray(value)) return open(value, null, '[', ']');
  if (value instanceof Map) {
    // Each entry is a fresh [key, value] array, written as a two-item array.
    return open([...value], null, '{"$map":[', ']}');
  }
  if (value instanceof Set) return open([...value], null, '{"$set":[', ']}');
  const entries = Object.entries(value);
  const proto: unknown = Object.getPrototypeOf(value);
  if (proto !== Object.prototype && proto !== null) {
    const name = (value as { constructor?: { name?: unknown } }).constructor?.name;
    const type = typeof name === 'string' && name !== '' ? name : 'Object';
    const fields = entries.filter(([key]) => key !== '$type');
    return open(fields.map(([, field]) => field), fields.map(([key]) => key), `{"$type":${JSON.stringify(type)}`, '}', true);
  }
  const keys = entries.map(([key]) => key);
  const items = entries.map(([, field]) => field);
  if (tagged && keys.some((key) => key.startsWith('$'))) return open(items, keys, '{"$object":{', '}}');
  return open(items, keys, '{', '}');
}

function bytesTag(bytes: Uint8Array): Json {
  return { $bytes: Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength).toString('base64') };
}

/** Tagged JSON (already parsed) as the value to send; throws InputError on a malformed tag. */
export function fromTaggedJson(json: unknown): unknown {
  if (Array.isArray(json)) return json.map(fromTaggedJson);
  if (typeof json !== 'object' || json === null) return json;
  const keys = Object.keys(json);
  const record = json as Record<string, unknown>;
  if (keys.length === 1 && TAGS.has(keys[0]!)) return fromTag(keys[0]!, record[keys[0]!]);
  const dollar = keys.find((key) => key.startsWith('$'));
  if (dollar !== undefined) {
    throw new InputError(
      `${JSON.stringify(dollar)} is not a tag here (tags are one-key objects: ${[...TAGS].join(', ')}); ` +
        'wrap an object whose keys start with $ in {"$object": {...}}',
    );
  }
  return literalObject(record);
}

function literalObject(record: Record<string, unknown>): Record<string, unknown> {
  // fromEntries defines own properties, so a key named "__proto__" stays a key.
  return Object.fromEntries(Object.entries(record).map(([key, value]) => [key, fromTaggedJson(value)]));
}

function fromTag(tag: string, body: unknown): unknown {
  const bad = (what: string): InputError => new InputError(`{"${tag}": ...} needs ${what}, got ${JSON.stringify(body)}`);
  switch (tag) {
    case '$bytes':
      if (typeof body !== 'string' || !BASE64.test(body)) throw bad('a base64 string');
      return new Uint8Array(Buffer.from(body, 'base64'));
    case '$bigint':
      if (typeof body === 'number' && Number.isInteger(body)) return BigInt(body);
      if (typeof body !== 'string' || !INTEGER.test(body)) throw bad('a decimal integer string');
      return BigInt(body);
    case '$float':
      if (body === 'NaN') return NaN;
      if (body === 'Infinity') return Infinity;
      if (body === '-Infinity') return -Infinity;
      if (typeof body === 'number') return body;
      throw bad('"NaN", "Infinity" or "-Infinity"');
    case '$map':
      if (!Array.isArray(body) || !body.every((pair) => Array.isArray(pair) && pair.length === 2)) {
        throw bad('an array of [key, value] pairs');
      }
      return new Map((body as [unknown, unknown][]).map(([k, v]) => [fromTaggedJson(k), fromTaggedJson(v)]));
    case '$set':
      if (!Array.isArray(body)) throw bad('an array');
      return new Set(body.map(fromTaggedJson));
    case '$date': {
      const date = typeof body === 'string' || typeof body === 'number' ? new Date(body) : null;
      if (date === null || Number.isNaN(date.getTime())) throw bad('an ISO 8601 date');
      return date;
    }
    default: // '$object'
      if (typeof body !== 'object' || body === null || Array.isArray(body)) throw bad('an object');
      return literalObject(body as Record<string, unknown>);
  }
}
