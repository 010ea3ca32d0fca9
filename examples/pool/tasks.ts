// The pool example's worker script: Collatz stopping times, plus two ways to
// fail on purpose (for the demo and the tests).
import { collatzSteps } from './collatz.js';
import { runWorker } from './pool.js';

await runWorker((input: number | string) => {
  if (input === 'throw') throw new Error('task refused: "throw" is not a number');
  if (input === 'crash') process.kill(process.pid, 'SIGKILL');
  return collatzSteps(input as number);
});
