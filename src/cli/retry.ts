// grid-cli's retry of a call while the controller is unavailable, with backoff. Used for Execute
// only when the request carries an idempotency key: a call that got through before the failure
// then returns the execution it started instead of starting a second one.

import { UnavailableError } from '../errors.js';

export interface RetryOptions {
  /** The first wait; each next one is twice as long. */
  firstDelayMs?: number;
  /** The waits add up to at most this; then the last error is thrown. */
  budgetMs?: number;
  /** Told before each wait. */
  onRetry?: (err: UnavailableError, delayMs: number) => void;
  sleep?: (ms: number) => Promise<void>;
}

/** `call()`, again after 0.5 s, 1 s, 2 s… (30 s of waiting in all) while it fails with a retryable UnavailableError. */
export async function retryWhileUnavailable<T>(call: () => Promise<T>, o: RetryOptions = {}): Promise<T> {
  const sleep = o.sleep ?? ((ms: number) => new Promise<void>((r) => setTimeout(r, ms)));
  let delay = o.firstDelayMs ?? 500;
  let left = o.budgetMs ?? 30_000;
  for (;;) {
    try {
      return await call();
    } catch (err) {
      if (!(err instanceof UnavailableError) || !err.retryable || left <= 0) throw err;
      const wait = Math.min(delay, left);
      o.onRetry?.(err, wait);
      await sleep(wait);
      left -= wait;
      delay *= 2;
    }
  }
}
