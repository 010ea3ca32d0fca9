/** Collatz stopping time of n: the example's unit of work. */
export function collatzSteps(n: number): number {
  let steps = 0;
  for (let x = n; x > 1; steps++) x = x % 2 === 0 ? x / 2 : 3 * x + 1;
  return steps;
}
