/**
 * How much work sends and receives may do before one of them yields to the
 * event loop. A loop of `await send()` (or of `await recv()` over buffered
 * messages) whose promises are already resolved never leaves the microtask
 * queue; without a budget it would starve every other socket and timer of the
 * process.
 *
 * The budget is not reset at every turn of the loop (that would cost a
 * `setImmediate` per turn, measurable on every ping-pong message): work is
 * counted until the budget is spent, then the call that spent it waits for a
 * `setImmediate`, which starts a fresh budget. Code that yields on its own
 * therefore pays one extra hop per budget's worth of work, and a flood yields
 * at least that often.
 */
const BYTE_BUDGET = 1 << 20;
const CALL_BUDGET = 4096;

/** Shared by every connection of the process. */
const budget = {
  bytes: 0,
  calls: 0,
  next: null as Promise<void> | null,
};

function refill(resolve: () => void): void {
  budget.bytes = 0;
  budget.calls = 0;
  budget.next = null;
  resolve();
}

/**
 * Counts one call moving `bytes`. Returns `undefined` to go on at once, or a
 * promise (resolved by a `setImmediate`, after the loop has served I/O and
 * timers) to wait on when the budget is spent.
 */
export function spendTurn(bytes: number): Promise<void> | undefined {
  if (budget.next !== null) return budget.next;
  budget.bytes += bytes;
  budget.calls += 1;
  if (budget.bytes <= BYTE_BUDGET && budget.calls <= CALL_BUDGET) return undefined;
  budget.next = new Promise<void>((resolve) => setImmediate(refill, resolve));
  return budget.next;
}
