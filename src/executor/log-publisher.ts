// The end of a task's log sink: output becomes GRID_LOGS messages, tagged with headers (stream,
// task, executor name, attempt). Output written while nothing is being published goes out at
// once, so a quiet task's line is not held back; output written while a publish awaits its
// acknowledgement is gathered, per run of one stream, into a message of up to `chunkBytes`, which
// goes once it is full (up to `window` full ones in flight) or once nothing else is in flight. So
// a chatty task sends few large messages: every message costs a socket write, a JetStream ack
// and, downstream, a consumer delivery and a gRPC frame, far more than its bytes do — and the
// busier the path, the longer an ack takes and the larger the messages get. JetStream publishes
// on one connection are stored in the order sent, so the log keeps its order. Memory is bounded
// by the log cap in front of this sink.

import type { JetStreamClient } from '@nats-io/jetstream';
import { headers, type MsgHdrs } from '@nats-io/nats-core';
import { LOG_HEADERS } from '../bus/messages.js';
import type { LogSink, LogStream } from '../runners/runner.js';

/**
 * Largest message body. Half of NATS's default max_payload (1 MiB, which also counts the
 * headers), so a message always fits, and well under gRPC's default 4 MiB message limit for the
 * GetLogs chunk it becomes.
 */
export const LOG_CHUNK_BYTES = 512 * 1024;
/** Publishes awaiting their ack at most; with full messages, 2 MiB in flight keep the path busy. */
export const LOG_PUBLISH_WINDOW = 4;

/** Acknowledged message buffers kept for reuse, so a chatty task does not allocate one per message. */
const SPARE_BUFFERS = 2;
/** The smallest buffer a message starts gathering in. */
const MIN_GATHER_BYTES = 16 * 1024;

export interface LogPublisherOptions {
  js: JetStreamClient;
  subject: string;
  taskKey: string;
  executorName: string;
  attempt: number;
  /** Publishes awaiting their ack at most; default 4. A message still gathering goes only when none is. */
  window?: number;
  /** Largest message body; default 512 KiB. */
  chunkBytes?: number;
}

/** A message waiting for room in the window; output of its stream is appended while it waits. */
interface Pending {
  stream: LogStream;
  /**
   * Our own copy, up to `chunkBytes` long, of which `size` bytes are used: the message may go long
   * after write() returned, when the caller's buffer may hold other data.
   */
  buf: Buffer;
  size: number;
}

export class LogPublisher implements LogSink {
  private readonly queue: Pending[] = [];
  /** Message buffers whose publish has been acknowledged, for the next messages to gather in. */
  private readonly spare: Buffer[] = [];
  private queueHead = 0;
  private inflight = 0;
  private idleWaiters: Array<() => void> = [];
  /**
   * The headers of each stream's messages, built once: they differ only by stream, and the
   * publish (with no options beyond headers) reads them without changing them.
   */
  private readonly headersOf = new Map<LogStream, MsgHdrs>();
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
    // Straight out, without a copy, while nothing waits ahead of it: a part of any size when the
    // pipeline is idle, a full one while the window has room.
    while (off < data.length && this.queueHead === this.queue.length) {
      const end = Math.min(data.length, off + this.chunkBytes);
      if (!(this.inflight === 0 || (end - off === this.chunkBytes && this.inflight < this.window))) break;
      this.send(stream, data.subarray(off, end));
      off = end;
    }
    while (off < data.length) off += this.gather(stream, data.subarray(off));
    // A full message may have formed behind the window.
    if (this.inflight < this.window && this.queueHead < this.queue.length) this.pump();
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
      // Sized to what is there so far: a few lines gathered behind an ack need no full chunk.
      last = { stream, buf: this.spare.pop() ?? Buffer.allocUnsafe(Math.min(this.chunkBytes, Math.max(MIN_GATHER_BYTES, data.length))), size: 0 };
      this.queue.push(last);
    }
    const n = Math.min(data.length, this.chunkBytes - last.size);
    if (last.size + n > last.buf.length) {
      // Doubling keeps the copies to about one per byte, and the buffer becomes a full-size
      // spare for the messages after it.
      const grown = Buffer.allocUnsafe(Math.min(this.chunkBytes, Math.max(2 * last.buf.length, last.size + n)));
      last.buf.copy(grown, 0, 0, last.size);
      last.buf = grown;
    }
    last.buf.set(n === data.length ? data : data.subarray(0, n), last.size);
    last.size += n;
    return n;
  }

  /** `own`: the buffer of a gathered message, reused once the message is acknowledged. */
  private send(stream: LogStream, data: Uint8Array, own?: Buffer): void {
    let h = this.headersOf.get(stream);
    if (!h) {
      h = headers();
      h.set(LOG_HEADERS.stream, stream);
      h.set(LOG_HEADERS.task, this.o.taskKey);
      h.set(LOG_HEADERS.executorName, this.o.executorName);
      h.set(LOG_HEADERS.attempt, String(this.o.attempt));
      this.headersOf.set(stream, h);
    }
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
        // Acknowledged, so the connection no longer holds the bytes (after a failure it might,
        // waiting to reconnect). A few spares are enough: one is taken for each message sent.
        if (own && this.spare.length < SPARE_BUFFERS) this.spare.push(own);
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
      // A message that can still grow (the last, not full) waits while anything is in flight:
      // the ack it waits for is what lets it grow large.
      const open = this.queueHead === this.queue.length - 1 && next.size < this.chunkBytes;
      if (open && this.inflight > 0) break;
      this.queue[this.queueHead++] = undefined as unknown as Pending;
      this.send(next.stream, next.buf.subarray(0, next.size), next.buf);
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
