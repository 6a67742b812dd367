// Batches a process's output before it reaches the sink. Output after a quiet spell goes out at
// once (a task's first line is not held back); what follows it within `batchMs` is gathered and
// written when that time is up, or as soon as `batchBytes` are waiting. So a line shows up
// quickly, without one message per tiny write.

import type { LogSink, LogStream } from '../runner.js';

export class OutputBatcher {
  private pending: Array<{ stream: LogStream; data: Uint8Array }> = [];
  private pendingBytes = 0;
  /** Set while a batching window is open: output written now waits for it to close. */
  private timer: NodeJS.Timeout | undefined;

  constructor(
    private readonly sink: LogSink,
    private readonly batchMs: number,
    private readonly batchBytes: number,
  ) {}

  add(stream: LogStream, data: Uint8Array): void {
    if (data.length === 0) return;
    if (!this.timer) {
      // Quiet until now: straight out, and gather what follows for a while.
      this.openWindow();
      this.sink.write(stream, data);
      return;
    }
    this.pending.push({ stream, data });
    this.pendingBytes += data.length;
    if (this.pendingBytes >= this.batchBytes) this.writePending();
  }

  /** Writes everything waiting and closes the window (the process has ended, or is stopping). */
  flush(): void {
    if (this.timer) clearTimeout(this.timer);
    this.timer = undefined;
    this.writePending();
  }

  private openWindow(): void {
    this.timer = setTimeout(() => {
      this.timer = undefined;
      // Output kept coming: keep gathering, so a steady trickle goes out once per window.
      if (this.pending.length > 0) {
        this.openWindow();
        this.writePending();
      }
    }, this.batchMs);
  }

  /** Writes everything waiting, consecutive chunks of one stream joined, in arrival order. */
  private writePending(): void {
    const batch = this.pending;
    this.pending = [];
    this.pendingBytes = 0;
    let i = 0;
    while (i < batch.length) {
      const stream = batch[i]!.stream;
      let j = i;
      while (j < batch.length && batch[j]!.stream === stream) j++;
      const parts = batch.slice(i, j).map((c) => c.data);
      this.sink.write(stream, parts.length === 1 ? parts[0]! : Buffer.concat(parts));
      i = j;
    }
  }
}
