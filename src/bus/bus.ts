// What the controller's use-cases send and read over the bus, in domain verbs: job messages to
// executors' queues, stops, requests for the dispatcher, executors' queues themselves, and the
// logs executors wrote. The NATS implementation (nats-bus.ts) owns its connection; the
// in-memory one (memory.ts) serves unit tests. Use-cases depend only on these interfaces.

import type { ExecutorConsumers } from './consumers.js';
import type { CancelMessage, FanoutMessage, JobMessage, SubmitAnswer } from './messages.js';

/** Where a job message goes: one executor's own queue, or a pool's (a group's, for one runner). */
export type JobAddress = { executorId: string } | { pool: string; runner: string };

export interface JobQueue {
  /**
   * Queues a job message (a pointer to one task). The same task's message sent again within
   * the dedup window is dropped, so sending one twice (after a crash) is harmless.
   */
  sendJob(to: JobAddress, job: JobMessage): Promise<void>;
  /**
   * A fan-out's job pointer, once for every executor of `group` that is listening (core NATS:
   * best effort, not queued). The per-executor messages (sendJob) stay the durable way.
   */
  broadcastJob(group: string, job: FanoutMessage): void;
}

/** One message of an execution's log, as an executor published it. */
export interface LogMessage {
  executorId: string;
  /** The name the executor gave itself in the message (its id when the message has no headers). */
  executorName: string;
  /** `stdout` or `stderr`. */
  stream: string;
  data: Uint8Array;
  /** Position in the log stream: increasing across every execution's messages. */
  seq: number;
  /** When the bus stored it. */
  atMs: number;
  /** How many messages of this reading came after this one when it was delivered. */
  pending: number;
}

/** A reading of a log, in order. Leaving the iteration (or stop()) ends it. */
export interface LogReading extends AsyncIterable<LogMessage> {
  /** Messages read ahead and not taken yet: may count more than there are, never fewer. */
  readAhead(): number;
  stop(): void;
}

export interface OpenLog {
  /** How many messages there are now (after the position asked for). */
  pending: number;
  /** Reads them from the first (after the position asked for), holding at most `readAhead` messages ahead of the reader. */
  read(o: { readAhead: number }): Promise<LogReading>;
}

export interface LogSource {
  /**
   * An execution's log (one executor's part of it, if named), after position `afterSeq` (0 = all
   * of it); with `sinceMs`, only what was stored at or after that time.
   */
  openLog(executionId: string, executorId?: string, afterSeq?: number, sinceMs?: number): Promise<OpenLog>;
  /** The position of the last log message of these executors for the execution (0 = none). */
  lastLogSequence(executionId: string, executorIds: string[]): Promise<number>;
}

/** A message taken from a queue the controller replicas share; its handler settles it once. */
export interface Delivery {
  readonly subject: string;
  readonly data: Uint8Array;
  ack(): void;
  /** Offers it again (to any replica), after `delayMs`. */
  nak(delayMs?: number): void;
  /** Never offers it again: it can never be handled. */
  term(): void;
}

/** A request a NATS client published for the intake (GRID_REQUESTS), with its headers. */
export interface Submission extends Delivery {
  /** A header of the request; undefined when it has none of that name. */
  header(name: string): string | undefined;
  /** How many times it has been delivered, this time included (1 = the first). */
  readonly deliveries: number;
}

export type SubmissionHandler = (batch: Submission[]) => Promise<void>;

/** Messages that arrive while a batch is handled form the next one (group commit). */
export interface BatchOptions {
  batchSize: number;
  /** How many messages are taken ahead of the handler. */
  prefetch: number;
}

export type BatchHandler = (batch: Delivery[]) => Promise<void>;

export interface Consuming {
  /** Takes no more; resolves once the batch in hand is handled. */
  stop(): Promise<void>;
}

export interface Bus extends JobQueue, LogSource {
  /** Takes requests for the dispatcher, in batches, until stopped. */
  consumeDispatchRequests(handle: BatchHandler, o: BatchOptions): Promise<Consuming>;
  /** Takes NATS clients' execution requests for the intake, in batches, until stopped. */
  consumeSubmissions(handle: SubmissionHandler, o: BatchOptions): Promise<Consuming>;
  /**
   * Answers a NATS client's request on the reply subject it named. Best effort and not queued:
   * a requester that has gone away misses it (the answer is in the audit log, and the same
   * request sent again with its idempotency key is answered with the same execution).
   */
  sendAnswer(replyTo: string, answer: SubmitAnswer): void;
  /** Takes executors' task events, in batches, until stopped. */
  consumeTaskEvents(handle: BatchHandler, o: BatchOptions): Promise<Consuming>;
  /** Asks a dispatcher (any replica's) to dispatch a record an older version left QUEUED. */
  requestDispatch(executionId: string): Promise<void>;
  /**
   * Tells one executor to stop its tasks of an execution. Best effort and not queued: an
   * executor that misses it hears it in its next heartbeat's answer.
   */
  sendStop(executorId: string, stop: CancelMessage): void;
  /** Makes (or updates) the queues an executor pulls its work from: its own and its pools'. */
  ensureExecutorQueues(e: { id: string; groups: string[]; runners: string[]; concurrency: number }): Promise<ExecutorConsumers>;
  /** Deletes an executor's own queue (pool queues are shared and stay). */
  deleteExecutorQueue(executorId: string): Promise<void>;
}
