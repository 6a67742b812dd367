// The end of a task's log sink: output becomes GRID_LOGS messages, tagged with headers (stream,
// task, executor name, attempt). Publishes are pipelined — up to `window` wait for their
// acknowledgement at once — and what is written while the window is full is gathered, per run of
// one stream, into messages of up to `chunkBytes`. So a quiet task's line goes out the moment it
// is written, while a chatty task sends few large messages: every message costs a socket write,
// a JetStream ack and, downstream, a consumer delivery and a gRPC frame, far more than its bytes
// do. JetStream publishes on one connection are stored in the order sent, so the log keeps its
// order. Memory is bounded by the log cap in front of this sink.

import type { JetStreamClient } from '@nats-io/jetstream';
import { headers } from '@nats-io/nats-core';
import { LOG_HEADERS } from '../bus/messages.js';
import type { LogSink, LogStream } from '../runners/runner.js';

/**
 * Largest message body. Half of NATS's default max_payload (1 MiB, which also counts the
 * headers), so a message always fits, and well under gRPC's default 4 MiB message limit for the
 * GetLogs chunk it becomes.
 */
export const LOG_CHUNK_BYTES = 512 * 1024;
/**
 * Publishes awaiting their ack at most. Small on purpose: output that arrives while this many are
 * out is what gets gathered into large messages; 4 × 512 KiB in flight keep the stream busy.
 */
export const LOG_PUBLISH_WINDOW = 4;

export interface LogPublisherOptions {
  js: JetStreamClient;
  subject: string;
  taskKey: string;
  executorName: string;
  attempt: number;
  /** Outstanding publishes at most; default 4. */
  window?: number;
  /** Largest message body; default 512 KiB. */
  chunkBytes?: number;
}

/** A message waiting for room in the window; output of its stream is appended while it waits. */
interface Pending {
  stream: LogStream;
  /** Our own copy (the caller may reuse its buffer once write() returns), `chunkBytes` long. */
  buf: Buffer;
  size: number;
}

export class LogPublisher implements LogSink {
  private readonly queue: Pending[] = [];
  private queueHead = 0;
  private inflight = 0;
  private idleWaiters: Array<() => void> = [];
  private readonly window: number;
  private readonly chunkBytes: number;
  /** Messages and bytes that reached the stream, and messages that could not be published. */
  published = 0;
  publishedBytes = 0;
  failed = 0;
  lastError: Error | undefined;

  constructor(private readonly o: LogPublisherOptions) {
    this.window = Math.max(1, o.window ?? LOG_PUBLISH_WINDOW);
    this.chunkBytes = Math.max(1, o.chunkBytes ?? LOG_CHUNK_BYTES);
  }

  write(stream: LogStream, data: Uint8Array): void {
    let off = 0;
    // Straight out, without a copy, while there is room and nothing waits ahead of it.
    while (off < data.length && this.inflight < this.window && this.queueHead === this.queue.length) {
      const end = Math.min(data.length, off + this.chunkBytes);
      this.send(stream, data.subarray(off, end));
      off = end;
    }
    while (off < data.length) off += this.gather(stream, data.subarray(off));
  }

  /** Resolves once everything written so far has been published (or has failed). */
  flush(): Promise<void> {
    if (this.inflight === 0 && this.queueHead === this.queue.length) return Promise.resolve();
    return new Promise((resolve) => this.idleWaiters.push(resolve));
  }

  /** Appends to the last waiting message if it is of this stream and has room; returns bytes taken. */
  private gather(stream: LogStream, data: Uint8Array): number {
    let last = this.queueHead < this.queue.length ? this.queue[this.queue.length - 1]! : undefined;
    if (!last || last.stream !== stream || last.size === this.chunkBytes) {
      last = { stream, buf: Buffer.allocUnsafe(this.chunkBytes), size: 0 };
      this.queue.push(last);
    }
    const n = Math.min(data.length, this.chunkBytes - last.size);
    last.buf.set(n === data.length ? data : data.subarray(0, n), last.size);
    last.size += n;
    return n;
  }

  private send(stream: LogStream, data: Uint8Array): void {
    const h = headers();
    h.set(LOG_HEADERS.stream, stream);
    h.set(LOG_HEADERS.task, this.o.taskKey);
    h.set(LOG_HEADERS.executorName, this.o.executorName);
    h.set(LOG_HEADERS.attempt, String(this.o.attempt));
    this.inflight++;
    // publish() hands the bytes to the connection synchronously, before its first await, so
    // messages go out in the order send() is called.
    let sent: Promise<unknown>;
    try {
      sent = this.o.js.publish(this.o.subject, data, { headers: h });
    } catch (err) {
      sent = Promise.reject(err);
    }
    const size = data.length;
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
      this.queue[this.queueHead++] = undefined as unknown as Pending;
      // What has gathered so far goes now; later output starts a new message.
      this.send(next.stream, next.buf.subarray(0, next.size));
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
