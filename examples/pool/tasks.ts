// The pool example's worker script: its functions, by name. Collatz stopping
// times, plus what the demo and the tests need: two ways to fail on purpose,
// an initializer, and the worker's pid.
import { collatzSteps } from './collatz.js';
import { runWorker } from './pool.js';

let greeting = '(no initializer ran)';

await runWorker({
  collatz(input: number | string) {
    if (input === 'throw') throw new Error('task refused: "throw" is not a number');
    if (input === 'crash') process.kill(process.pid, 'SIGKILL');
    return collatzSteps(input as number);
  },
  add: (a: number, b: number) => a + b,
  /** Resolves after `ms`: for tests that need a task still running. */
  sleep: (ms: number) => new Promise((resolve) => setTimeout(() => resolve(ms), ms)),
  pid: () => process.pid,
  /** The initializer of the demo and tests: runs once in each worker, before any task. */
  setGreeting(text: string) {
    if (text === 'fail') throw new Error('cannot greet');
    greeting = text;
  },
  greet: (name: string) => `${greeting}, ${name}`,
});
