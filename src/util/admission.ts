// Admission control for expensive calls: at most `limit` run at once, the rest wait their turn
// in arrival order, and a full queue refuses at once (the caller retries later). A waiting call
// whose caller went away (its signal aborted) leaves the queue without running.
//
// Why: a controller that takes every registration at once (10,000 executors starting together)
// interleaves all of them on one event loop, so each of its steps, and every heartbeat's step
// behind them, waits for a turn through the whole backlog; heartbeats then miss their deadline
// while the CPU is not even full. With a few at a time, the backlog per turn stays small and
// heartbeats keep flowing; registrations go no slower, since they were bound by CPU anyway.
//
// Hand-written rather than cockatiel's bulkhead (already installed with etcd3): that one stops
// dequeuing when the waiting call it takes next has been aborted, so the calls behind it would
// wait forever.

import { UnavailableError } from '../errors.js';

export class Admission {
  private active = 0;
  private readonly waiting: Array<() => void> = [];

  constructor(
    /** At most this many run at once. */
    readonly limit: number,
    /** At most this many wait; more are refused. */
    readonly queueLimit: number,
    /** What is admitted, for the messages ("registrations"). */
    private readonly what: string,
  ) {
    if (!(limit >= 1)) throw new RangeError(`admission limit must be at least 1, got ${limit}`);
  }

  /** Running now. */
  get running(): number {
    return this.active;
  }

  /** Waiting for a turn. */
  get queued(): number {
    return this.waiting.length;
  }

  /**
   * Runs `fn` when a slot is free; refuses when the queue is full or the caller went away.
   * With `o.maxRunMs`, a call still running after that long gives its slot back and its caller
   * gets UNAVAILABLE (naming where it was, as `o.overrun()` tells): one call stuck on a backend cannot hold
   * a slot, and with every slot so held, stop everything behind it. Its work is not undone; it
   * goes on, or fails, on its own, as it would had its caller gone away.
   */
  async run<T>(fn: () => Promise<T>, signal?: AbortSignal, o: { maxRunMs?: number; overrun?: () => string } = {}): Promise<T> {
    if (signal?.aborted) throw new UnavailableError(`the caller went away before its turn among the ${this.what}`);
    if (this.active >= this.limit) await this.wait(signal);
    else this.active++;
    let released = false;
    const release = () => {
      if (released) return;
      released = true;
      this.release();
    };
    let timer: NodeJS.Timeout | undefined;
    try {
      if (!o.maxRunMs) return await fn();
      const maxRunMs = o.maxRunMs;
      return await Promise.race([
        fn(),
        new Promise<never>((_, reject) => {
          timer = setTimeout(() => {
            this.overran++;
            release();
            const at = o.overrun?.();
            reject(new UnavailableError(`one of the ${this.what} took longer than ${maxRunMs / 1000} s${at ? ` (at: ${at})` : ''} and gave up its turn; retry`));
          }, maxRunMs);
        }),
      ]);
    } finally {
      clearTimeout(timer);
      release();
    }
  }

  /** Calls that overran `maxRunMs` and gave their slot back, since the start. */
  overran = 0;

  /** Waits until release() hands this call a slot (active stays counted across the hand-over). */
  private wait(signal?: AbortSignal): Promise<void> {
    if (this.waiting.length >= this.queueLimit) {
      return Promise.reject(
        new UnavailableError(`the controller is busy with ${this.active} ${this.what} and ${this.waiting.length} more waiting; retry in a few seconds`),
      );
    }
    return new Promise<void>((resolve, reject) => {
      const onAbort = () => {
        const i = this.waiting.indexOf(w);
        if (i >= 0) this.waiting.splice(i, 1);
        reject(new UnavailableError(`the caller went away while waiting for its turn among the ${this.what}`));
      };
      const w = () => {
        signal?.removeEventListener('abort', onAbort);
        resolve();
      };
      signal?.addEventListener('abort', onAbort, { once: true });
      this.waiting.push(w);
    });
  }

  private release(): void {
    // The slot goes straight to the next waiter (active unchanged), or is freed.
    const next = this.waiting.shift();
    if (next) next();
    else this.active--;
  }
}
