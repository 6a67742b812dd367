// The end of a task's log sink: each chunk of output becomes one GRID_LOGS message, tagged with
// headers (stream, task, executor name, attempt). Publishes are pipelined — up to `window` wait
// for their acknowledgement at once, the rest queue in order — so a chatty task is not slowed to
// one round trip per chunk. JetStream publishes on one connection are stored in the order sent,
// so the log keeps its order. Memory is bounded by the log cap in front of this sink.

import type { JetStreamClient } from '@nats-io/jetstream';
import { headers } from '@nats-io/nats-core';
import { LOG_HEADERS } from '../bus/messages.js';
import type { LogSink, LogStream } from '../runners/runner.js';

export const LOG_CHUNK_BYTES = 64 * 1024;
export const LOG_PUBLISH_WINDOW = 64;

export interface LogPublisherOptions {
  js: JetStreamClient;
  subject: string;
  taskKey: string;
  executorName: string;
  attempt: number;
  /** Outstanding publishes at most; default 64. */
  window?: number;
  /** Largest message body; default 64 KiB. */
  chunkBytes?: number;
}

interface Chunk {
  stream: LogStream;
  data: Uint8Array;
}

export class LogPublisher implements LogSink {
  private readonly queue: Chunk[] = [];
  private queueHead = 0;
  private inflight = 0;
  private idleWaiters: Array<() => void> = [];
  private readonly window: number;
  private readonly chunkBytes: number;
  /** Chunks and bytes that reached the stream, and chunks that could not be published. */
  published = 0;
  publishedBytes = 0;
  failed = 0;
  lastError: Error | undefined;

  constructor(private readonly o: LogPublisherOptions) {
    this.window = Math.max(1, o.window ?? LOG_PUBLISH_WINDOW);
    this.chunkBytes = Math.max(1, o.chunkBytes ?? LOG_CHUNK_BYTES);
  }

  write(stream: LogStream, data: Uint8Array): void {
    for (let off = 0; off < data.length; off += this.chunkBytes) {
      const part = data.subarray(off, Math.min(data.length, off + this.chunkBytes));
      if (this.inflight < this.window && this.queueHead === this.queue.length) this.send({ stream, data: part });
      // The caller may reuse its buffer once write() returns: keep a copy of what waits.
      else this.queue.push({ stream, data: Uint8Array.prototype.slice.call(part) });
    }
  }

  /** Resolves once everything written so far has been published (or has failed). */
  flush(): Promise<void> {
    if (this.inflight === 0 && this.queueHead === this.queue.length) return Promise.resolve();
    return new Promise((resolve) => this.idleWaiters.push(resolve));
  }

  private send(chunk: Chunk): void {
    const h = headers();
    h.set(LOG_HEADERS.stream, chunk.stream);
    h.set(LOG_HEADERS.task, this.o.taskKey);
    h.set(LOG_HEADERS.executorName, this.o.executorName);
    h.set(LOG_HEADERS.attempt, String(this.o.attempt));
    this.inflight++;
    // publish() hands the bytes to the connection synchronously, before its first await, so
    // chunks go out in the order send() is called.
    let sent: Promise<unknown>;
    try {
      sent = this.o.js.publish(this.o.subject, chunk.data, { headers: h });
    } catch (err) {
      sent = Promise.reject(err);
    }
    const size = chunk.data.length;
    sent.then(
      () => {
        this.published++;
        this.publishedBytes += size;
      },
      (err: unknown) => {
        this.failed++;
        this.lastError = err instanceof Error ? err : new Error(String(err));
      },
    ).finally(() => {
      this.inflight--;
      this.pump();
    });
  }

  private pump(): void {
    while (this.inflight < this.window && this.queueHead < this.queue.length) {
      const next = this.queue[this.queueHead]!;
      this.queue[this.queueHead++] = undefined as unknown as Chunk;
      this.send(next);
    }
    if (this.queueHead === this.queue.length && this.queueHead > 0) {
      this.queue.length = 0;
      this.queueHead = 0;
    } else if (this.queueHead > 1024 && this.queueHead * 2 > this.queue.length) {
      this.queue.splice(0, this.queueHead);
      this.queueHead = 0;
    }
    if (this.inflight === 0 && this.queueHead === this.queue.length) {
      for (const w of this.idleWaiters.splice(0)) w();
    }
  }
}
