// Batches a process's output before it reaches the sink: flushed every `batchMs` or as soon as
// `batchBytes` are waiting, so a line shows up quickly without one message per tiny write.

import type { LogSink, LogStream } from '../runner.js';

export class OutputBatcher {
  private pending: Array<{ stream: LogStream; data: Uint8Array }> = [];
  private pendingBytes = 0;
  private timer: NodeJS.Timeout | undefined;

  constructor(
    private readonly sink: LogSink,
    private readonly batchMs: number,
    private readonly batchBytes: number,
  ) {}

  add(stream: LogStream, data: Uint8Array): void {
    if (data.length === 0) return;
    this.pending.push({ stream, data });
    this.pendingBytes += data.length;
    if (this.pendingBytes >= this.batchBytes) this.flush();
    else this.timer ??= setTimeout(() => this.flush(), this.batchMs);
  }

  /** Writes everything waiting, consecutive chunks of one stream joined, in arrival order. */
  flush(): void {
    if (this.timer) clearTimeout(this.timer);
    this.timer = undefined;
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
