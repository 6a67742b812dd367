// A counting semaphore for the worker's task slots: a task holds a slot while it runs, so tasks
// in flight never exceed the executor's concurrency. Pull loops wait for *a* free slot before
// they ask for a message (waitFree) but do not hold one through the long-poll: a loop holding a
// slot while polling an idle consumer would keep a task waiting on another consumer.

export class Slots {
  private free: number;
  private readonly waiters: Array<(ok: boolean) => void> = [];
  private readonly freeWaiters: Array<(ok: boolean) => void> = [];
  private closed = false;

  constructor(readonly size: number) {
    if (!Number.isSafeInteger(size) || size < 1) throw new RangeError(`slots must be a positive integer, got ${size}`);
    this.free = size;
  }

  /** Resolves true with a slot held, or false once closed (no slot held then). */
  acquire(): Promise<boolean> {
    if (this.closed) return Promise.resolve(false);
    if (this.free > 0) {
      this.free--;
      return Promise.resolve(true);
    }
    return new Promise((resolve) => this.waiters.push(resolve));
  }

  release(): void {
    const next = this.closed ? undefined : this.waiters.shift();
    if (next) next(true);
    else {
      this.free++;
      for (const w of this.freeWaiters.splice(0)) w(true);
    }
  }

  /** Resolves true once at least one slot is free (without taking it), or false once closed. */
  waitFree(): Promise<boolean> {
    if (this.closed) return Promise.resolve(false);
    if (this.free > 0) return Promise.resolve(true);
    return new Promise((resolve) => this.freeWaiters.push(resolve));
  }

  /** Slots free right now. */
  get available(): number {
    return this.free;
  }

  /** Slots held right now. */
  get used(): number {
    return this.size - this.free;
  }

  /** Every waiter (and every later acquire) gets false; held slots may still be released. */
  close(): void {
    this.closed = true;
    for (const w of this.waiters.splice(0)) w(false);
    for (const w of this.freeWaiters.splice(0)) w(false);
  }
}
