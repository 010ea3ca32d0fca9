// A Node parent farming tasks out to two Python worker processes, through the
// pool of examples/pool. The workers are plain Python (worker.py, standard
// library only): spawn() runs them with the connection on fd 3, and the pickle
// serializer lets both sides send their own values (tuples, sets, big ints, dicts).
//
//   PYTHON=python3.12 node dist/examples/python-worker/main.js
import { existsSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { Pool } from '../pool/pool.js';

// worker.py sits next to this file in the source tree; compiled, this file runs from dist/examples/.
const worker = [new URL('./worker.py', import.meta.url), new URL('../../../examples/python-worker/worker.py', import.meta.url)]
  .map((url) => fileURLToPath(url))
  .find((path) => existsSync(path))!;
const python = process.env.PYTHON ?? 'python3';

const pool = new Pool(worker, {
  processes: 2,
  command: python,
  serializer: 'pickle',
  initializer: 'init',
  initargs: ['from the initializer'],
});

const factorials = await pool.map<number | bigint>('factorial', [5, 10, 20, 25]);
console.log('factorials:', factorials.map((f) => `${f} (${typeof f})`).join(', '));

const stats = await pool.apply<{ n: number; mean: number; distinct: Set<number>; label: string }>('stats', [[3, 1, 4, 1, 5, 9, 2, 6]]);
console.log('stats:', `n=${stats.n} mean=${stats.mean} distinct=${[...stats.distinct].sort((a, b) => a - b).join(',')} label=${stats.label}`);

try {
  await pool.apply('sing');
} catch (err) {
  console.log('a task raised in Python:', (err as Error).message);
}

const inOrder: (number | bigint)[] = [];
for await (const f of pool.imap<number | bigint>('factorial', [1, 2, 3, 4])) inOrder.push(f);
console.log('imap:', inOrder.join(' '));

// Eight tasks of 0.2 s, one per message: each worker takes the next as soon as it is free, so both get some.
const pids = new Set(await pool.map<number>('pid', Array.from({ length: 8 }, () => 0.2), 1));
console.log('python workers used:', pids.size, 'of', pool.pids.length);

pool.close();
await pool.join();
console.log('pool closed and joined');
