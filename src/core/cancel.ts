import { timeoutError } from './errors.js';

/** setTimeout's longest delay. */
const MAX_DELAY_MS = 2 ** 31 - 1;

/**
 * Arms an optional AbortSignal and timeout for one pending call. `cancel`
 * runs at most once, with the signal's reason or a `TimeoutError`; the
 * returned function disarms both and must be called when the call settles.
 */
export function armCancel(
  signal: AbortSignal | undefined,
  timeout: number | undefined,
  what: string,
  cancel: (reason: unknown) => void,
): () => void {
  let timer: NodeJS.Timeout | undefined;
  const onAbort = (): void => {
    disarm();
    cancel(signal!.reason);
  };
  const disarm = (): void => {
    if (timer !== undefined) clearTimeout(timer);
    signal?.removeEventListener('abort', onAbort);
  };
  if (timeout !== undefined && timeout !== Infinity) {
    // setTimeout fires at once for delays past 2**31-1 ms: longer timeouts re-arm.
    const arm = (left: number): void => {
      timer = setTimeout(() => {
        if (left > MAX_DELAY_MS) return arm(left - MAX_DELAY_MS);
        disarm();
        cancel(timeoutError(what, timeout));
      }, Math.min(left, MAX_DELAY_MS));
    };
    arm(timeout);
  }
  signal?.addEventListener('abort', onAbort, { once: true });
  return disarm;
}

/**
 * Settles as `promise` does, or rejects with the signal's reason as soon as it
 * aborts; what the promise does after that is dropped (its rejection too, so
 * it is never unhandled). Without a signal it is `promise` itself.
 */
export function untilAborted<T>(promise: Promise<T>, signal: AbortSignal | undefined): Promise<T> {
  if (signal === undefined) return promise;
  if (signal.aborted) {
    promise.catch(() => {});
    return Promise.reject(signal.reason);
  }
  return new Promise<T>((resolve, reject) => {
    const onAbort = (): void => reject(signal.reason);
    signal.addEventListener('abort', onAbort, { once: true });
    promise.then(
      (value) => {
        signal.removeEventListener('abort', onAbort);
        resolve(value);
      },
      (err: unknown) => {
        signal.removeEventListener('abort', onAbort);
        reject(err);
      },
    );
  });
}
