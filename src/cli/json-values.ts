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
  return render(value, new Set());
}

function render(value: unknown, path: Set<object>): Json {
  switch (typeof value) {
    case 'string':
    case 'boolean':
      return value;
    case 'number':
      return Number.isFinite(value) ? value : { $float: String(value) };
    case 'bigint':
      return { $bigint: value.toString() };
    case 'undefined':
      return null;
    case 'object':
      break;
    default:
      return { $type: typeof value };
  }
  if (value === null) return null;
  if (value instanceof ArrayBuffer || value instanceof SharedArrayBuffer) return bytesTag(new Uint8Array(value));
  if (ArrayBuffer.isView(value)) return bytesTag(new Uint8Array(value.buffer, value.byteOffset, value.byteLength));
  if (value instanceof Date) return { $date: Number.isNaN(value.getTime()) ? 'Invalid Date' : value.toISOString() };
  if (path.has(value)) return { $cycle: true };
  path.add(value);
  try {
    if (Array.isArray(value)) return value.map((item) => render(item, path));
    if (value instanceof Map) return { $map: [...value].map(([k, v]) => [render(k, path), render(v, path)]) };
    if (value instanceof Set) return { $set: [...value].map((item) => render(item, path)) };
    // fromEntries defines own properties, so a key named "__proto__" stays a key.
    const fields: { [key: string]: Json } = Object.fromEntries(
      Object.entries(value).map(([key, field]) => [key, render(field, path)]),
    );
    const proto: unknown = Object.getPrototypeOf(value);
    if (proto !== Object.prototype && proto !== null) {
      const name = (value as { constructor?: { name?: unknown } }).constructor?.name;
      return { $type: typeof name === 'string' && name !== '' ? name : 'Object', ...fields };
    }
    return Object.keys(fields).some((key) => key.startsWith('$')) ? { $object: fields } : fields;
  } finally {
    path.delete(value);
  }
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
