// Demo of the pool: a map over two workers, a task that throws, and a worker
// that dies mid-task (it is replaced; only its own task fails).
import { fileURLToPath } from 'node:url';
import { Pool } from './pool.js';

const pool = new Pool(fileURLToPath(new URL('./tasks.js', import.meta.url)), 2);

const inputs = Array.from({ length: 20 }, (_, i) => i + 1);
console.log('collatz steps of 1..20:', (await pool.map<number>(inputs)).join(' '));

try {
  await pool.map([1, 'throw', 3]);
} catch (err) {
  console.log('a task threw:', (err as Error).message);
}

const settled = await pool.mapSettled([27, 'crash', 97]);
for (const [i, outcome] of settled.entries()) {
  console.log(`task ${i}:`, outcome.status === 'fulfilled' ? outcome.value : `failed (${(outcome.reason as Error).message})`);
}

console.log('after the crash, still', pool.pids.length, 'workers; map again:', (await pool.map<number>([6, 7, 8])).join(' '));
await pool.close();
console.log('pool closed');
