// A counting semaphore for the worker's task slots: a pull loop takes a slot before it asks for
// a message and the task gives it back when it is over, so tasks in flight never exceed the
// executor's concurrency. Waiters are served in order, so the pull loops take turns.

export class Slots {
  private free: number;
  private readonly waiters: Array<(ok: boolean) => void> = [];
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
    else this.free++;
  }

  /** Slots held right now. */
  get used(): number {
    return this.size - this.free;
  }

  /** Every waiter (and every later acquire) gets false; held slots may still be released. */
  close(): void {
    this.closed = true;
    for (const w of this.waiters.splice(0)) w(false);
  }
}
