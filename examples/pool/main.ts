// Demo of the pool, in the words of Python's multiprocessing.Pool: map (in
// chunks), starmap, imap, imapUnordered, apply, an initializer, a task that
// throws, a worker that dies mid-task (it is replaced; only its own task
// fails), maxTasksPerChild, then close() and join().
import { fileURLToPath } from 'node:url';
import { Pool } from './pool.js';

const tasks = fileURLToPath(new URL('./tasks.js', import.meta.url));
const pool = new Pool(tasks, { processes: 2, initializer: 'setGreeting', initargs: ['hello'] });

const inputs = Array.from({ length: 20 }, (_, i) => i + 1);
console.log('collatz steps of 1..20:', (await pool.map<number>('collatz', inputs)).join(' '));
console.log('starmap add:', (await pool.starmap<number>('add', [[1, 2], [3, 4], [5, 6]])).join(' '));

const inOrder: number[] = [];
for await (const steps of pool.imap<number>('collatz', [27, 97, 871])) inOrder.push(steps);
console.log('imap, in input order:', inOrder.join(' '));

const asTheyCome: number[] = [];
for await (const ms of pool.imapUnordered<number>('sleep', [500, 0])) asTheyCome.push(ms);
console.log('imapUnordered, as they finish:', asTheyCome.join(' '));

console.log('apply with the initializer:', await pool.apply('greet', ['pool']));

try {
  await pool.map('collatz', [1, 'throw', 3]);
} catch (err) {
  console.log('a task threw:', (err as Error).message);
}

const settled = await pool.mapSettled('collatz', [27, 'crash', 97]);
for (const [i, outcome] of settled.entries()) {
  console.log(`task ${i}:`, outcome.status === 'fulfilled' ? outcome.value : `failed (${(outcome.reason as Error).message})`);
}

console.log('after the crash, still', pool.pids.length, 'workers; map again:', (await pool.map<number>('collatz', [6, 7, 8])).join(' '));
pool.close();
await pool.join();
console.log('pool closed and joined');

// maxTasksPerChild: a fresh worker process after every 2 tasks (chunks).
const recycled = new Pool(tasks, { processes: 1, maxTasksPerChild: 2 });
const pids = await recycled.map<number>('pid', Array.from({ length: 6 }), 1);
console.log('6 tasks, maxTasksPerChild 2: worker processes used:', new Set(pids).size);
recycled.close();
await recycled.join();
