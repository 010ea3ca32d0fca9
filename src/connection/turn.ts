/**
 * Work one event-loop turn may do before a send or a receive yields to the
 * loop. A loop of `await send()` (or of `await recv()` over buffered messages)
 * whose promises are already resolved never leaves the microtask queue; without
 * a budget it would starve every other socket and timer of the process.
 */
const TURN_BYTE_BUDGET = 1 << 20;
const TURN_CALL_BUDGET = 4096;

/** Accounting of the current turn, shared by every connection of the process. */
const turn = {
  bytes: 0,
  calls: 0,
  scheduled: false,
  next: null as Promise<void> | null,
  resolveNext: null as (() => void) | null,
};

function newTurn(): void {
  turn.bytes = 0;
  turn.calls = 0;
  turn.scheduled = false;
  const resolve = turn.resolveNext;
  turn.next = null;
  turn.resolveNext = null;
  resolve?.();
}

/**
 * Counts one call moving `bytes`. Returns a promise that resolves on the next
 * turn of the event loop when this turn's budget is spent, else `undefined`.
 */
export function spendTurn(bytes: number): Promise<void> | undefined {
  turn.bytes += bytes;
  turn.calls += 1;
  if (!turn.scheduled) {
    turn.scheduled = true;
    setImmediate(newTurn);
  }
  if (turn.bytes <= TURN_BYTE_BUDGET && turn.calls <= TURN_CALL_BUDGET) return undefined;
  turn.next ??= new Promise<void>((resolve) => {
    turn.resolveNext = resolve;
  });
  return turn.next;
}
