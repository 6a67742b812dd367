// Group commit, as a helper: items added while a batch is being handled form the next batch.
// No waiting when idle (a lone item goes at once); under load, one round trip serves many.

export interface Pending<I, O> {
  item: I;
  resolve: (o: O) => void;
  reject: (err: unknown) => void;
}

export class Batcher<I, O> {
  private queue: Array<Pending<I, O>> = [];
  private running = false;

  constructor(
    private readonly o: {
      /** Most items handed to `run` at once. */
      max: number;
      /** Settles every item of the batch; if it throws, the items not settled yet are rejected. */
      run: (batch: Array<Pending<I, O>>) => Promise<void>;
    },
  ) {}

  add(item: I): Promise<O> {
    return new Promise<O>((resolve, reject) => {
      this.queue.push({ item, resolve, reject });
      if (!this.running) void this.drain();
    });
  }

  private async drain(): Promise<void> {
    this.running = true;
    try {
      while (this.queue.length) {
        const batch = this.queue.splice(0, this.o.max);
        try {
          await this.o.run(batch);
        } catch (err) {
          // Promises settle once: rejecting the ones already resolved does nothing.
          for (const p of batch) p.reject(err);
        }
      }
    } finally {
      this.running = false;
    }
  }
}
