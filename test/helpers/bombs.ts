/**
 * For the fixtures that receive decoding bombs in a process of their own: the
 * process's peak memory, how one receive ended, and a header field.
 */
import type { Connection } from 'mpconn';

/** Peak resident set size of this process so far, in bytes. */
export const peakRss = (): number => process.resourceUsage().maxRSS * 1024;

/** How one `conn.recv()` ended: 'value', or the error's name and code ('RangeError ERR_NESTING_TOO_DEEP'). */
export async function recvOutcome(conn: Connection): Promise<string> {
  try {
    await conn.recv();
    return 'value';
  } catch (err) {
    return `${(err as Error).name} ${(err as { code?: string }).code ?? ''}`.trim();
  }
}

/** `n` as 4 big-endian bytes (a msgpack or pickle length field). */
export function u32(n: number): Buffer {
  const b = Buffer.alloc(4);
  b.writeUInt32BE(n >>> 0);
  return b;
}
