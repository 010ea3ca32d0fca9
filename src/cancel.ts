import { timeoutError } from './errors.js';

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
    timer = setTimeout(() => {
      disarm();
      cancel(timeoutError(what, timeout));
    }, timeout);
  }
  signal?.addEventListener('abort', onAbort, { once: true });
  return disarm;
}
