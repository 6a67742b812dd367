// The Bus in memory, for unit tests of the use-cases: what was sent is kept in lists a test
// reads (job messages, stops, dispatch requests, the intake's answers), executors' queues in a
// map, and logs, task events and intake requests a test adds as executors and NATS clients would
// publish them. Job messages are deduplicated per task, as the stream does within its dedup window.

import type { TaskEvent } from '../domain/execution.js';
import type { BatchHandler, Bus, Consuming, JobAddress, LogMessage, LogReading, OpenLog, Submission, SubmissionHandler } from './bus.js';
import type { ExecutorConsumers } from './consumers.js';
import { encode, jobMsgId, type CancelMessage, type FanoutMessage, type JobMessage, type RequestMessage, type SubmitAnswer } from './messages.js';
import { consumers, subjects } from './subjects.js';

/** A delivery of the in-memory bus: how its handler settled it is kept (and a nak's delay). */
export interface MemoryDelivery extends Submission {
  settled?: 'ack' | 'nak' | 'term';
  nakDelayMs?: number;
}

/** A queue the controller replicas share: every message goes to the one handler, in batches. */
class SharedQueue {
  private handler?: SubmissionHandler;
  private readonly waiting: MemoryDelivery[] = [];
  private running?: Promise<void>;
  /** Every delivery offered, in order. */
  readonly offered: MemoryDelivery[] = [];

  offer(subject: string, data: Uint8Array, headers: Record<string, string> = {}, deliveries = 1): void {
    const d: MemoryDelivery = {
      subject,
      data,
      deliveries,
      header: (name) => headers[name],
      ack: () => void (d.settled = 'ack'),
      term: () => void (d.settled = 'term'),
      nak: (delayMs = 0) => {
        d.settled = 'nak';
        d.nakDelayMs = delayMs;
        setTimeout(() => this.offer(subject, data, headers, deliveries + 1), delayMs).unref();
      },
    };
    this.offered.push(d);
    this.waiting.push(d);
    this.kick();
  }

  consume(handler: SubmissionHandler): Consuming {
    this.handler = handler;
    this.kick();
    return {
      stop: async () => {
        this.handler = undefined;
        await this.running;
      },
    };
  }

  private kick(): void {
    if (this.running || !this.handler) return;
    this.running = (async () => {
      while (this.waiting.length && this.handler) await this.handler(this.waiting.splice(0));
    })().finally(() => {
      this.running = undefined;
      if (this.waiting.length) this.kick();
    });
  }

  /** Once every message offered so far is handled. */
  async idle(): Promise<void> {
    while (this.running) await this.running;
  }
}

interface StoredLog {
  executionId: string;
  message: Omit<LogMessage, 'pending'>;
}

export class MemoryBus implements Bus {
  /** Job messages queued, in order; a task's message sent again is not. */
  readonly jobs: Array<{ to: JobAddress; job: JobMessage }> = [];
  readonly stops: Array<{ executorId: string; stop: CancelMessage }> = [];
  /** Fan-out pointers broadcast, in order. */
  readonly broadcasts: Array<{ group: string; job: FanoutMessage }> = [];
  readonly dispatchRequests: string[] = [];
  /** What the intake answered, in order. */
  readonly answers: Array<{ replyTo: string; answer: SubmitAnswer }> = [];
  /** Executors' queues, by executor id. */
  readonly queues = new Map<string, ExecutorConsumers>();
  private readonly jobIds = new Set<string>();
  private readonly requests = new SharedQueue();
  private readonly events = new SharedQueue();
  private readonly submissions = new SharedQueue();
  private readonly logs: StoredLog[] = [];
  private readonly appended = new Set<() => void>();

  async sendJob(to: JobAddress, job: JobMessage): Promise<void> {
    const id = jobMsgId(job.execution_id, job.task_key);
    if (this.jobIds.has(id)) return;
    this.jobIds.add(id);
    this.jobs.push({ to, job: { ...job } });
  }

  broadcastJob(group: string, job: FanoutMessage): void {
    this.broadcasts.push({ group, job: { ...job } });
  }

  async requestDispatch(executionId: string): Promise<void> {
    this.dispatchRequests.push(executionId);
    this.requests.offer(subjects.request(executionId), encode({ execution_id: executionId } satisfies RequestMessage));
  }

  async consumeDispatchRequests(handle: BatchHandler): Promise<Consuming> {
    return this.requests.consume(handle);
  }

  async consumeTaskEvents(handle: BatchHandler): Promise<Consuming> {
    return this.events.consume(handle);
  }

  /** A task event, as the executor it names publishes one (on its own subject); its delivery, to see how it was settled. */
  publishEvent(ev: TaskEvent): MemoryDelivery {
    this.events.offer(subjects.event(ev.execution_id, ev.executor_id), encode(ev));
    return this.events.offered[this.events.offered.length - 1]!;
  }

  async consumeSubmissions(handle: SubmissionHandler): Promise<Consuming> {
    return this.submissions.consume(handle);
  }

  /** A request for the intake, as a NATS client publishes one; its delivery (the first), to see how it was settled. */
  submit(body: Uint8Array | string, headers: Record<string, string>, subject = subjects.submitExecute): MemoryDelivery {
    this.submissions.offer(subject, typeof body === 'string' ? new TextEncoder().encode(body) : body, headers);
    return this.submissions.offered[this.submissions.offered.length - 1]!;
  }

  /** Every delivery of intake requests so far (a nak'ed one is offered again as a new delivery). */
  get submissionDeliveries(): readonly MemoryDelivery[] {
    return this.submissions.offered;
  }

  sendAnswer(replyTo: string, answer: SubmitAnswer): void {
    this.answers.push({ replyTo, answer });
  }

  /** Once every dispatch request, task event and intake request offered so far is handled. */
  async idle(): Promise<void> {
    await Promise.all([this.requests.idle(), this.events.idle(), this.submissions.idle()]);
  }

  sendStop(executorId: string, stop: CancelMessage): void {
    this.stops.push({ executorId, stop: { ...stop } });
  }

  async ensureExecutorQueues(e: { id: string; groups: string[]; runners: string[] }): Promise<ExecutorConsumers> {
    const q = { node: consumers.node(e.id), pools: e.groups.flatMap((g) => e.runners.map((r) => consumers.pool(g, r))) };
    this.queues.set(e.id, q);
    return q;
  }

  async deleteExecutorQueue(executorId: string): Promise<void> {
    this.queues.delete(executorId);
  }

  /** A log message, as the executor `executorId` publishes one while it runs a task of the execution. */
  appendLog(executionId: string, m: { executorId: string; executorName?: string; stream?: string; data: string | Uint8Array; atMs?: number }): void {
    const data = typeof m.data === 'string' ? new TextEncoder().encode(m.data) : m.data;
    const seq = this.logs.length + 1;
    this.logs.push({
      executionId,
      message: { executorId: m.executorId, executorName: m.executorName ?? m.executorId, stream: m.stream ?? 'stdout', data, seq, atMs: m.atMs ?? seq },
    });
    for (const fn of this.appended) fn();
  }

  async openLog(executionId: string, executorId?: string, afterSeq = 0, sinceMs = 0): Promise<OpenLog> {
    const mine = (l: StoredLog) =>
      l.executionId === executionId && (!executorId || l.message.executorId === executorId) && l.message.seq > afterSeq && l.message.atMs >= sinceMs;
    return { pending: this.logs.filter(mine).length, read: async () => this.reading(mine) };
  }

  /** The messages `mine` takes, from the first, then each one appended later, until stopped. */
  private reading(mine: (l: StoredLog) => boolean): LogReading {
    let at = 0;
    let stopped = false;
    let wake: (() => void) | undefined;
    const onAppend = () => wake?.();
    this.appended.add(onAppend);
    const after = () => this.logs.slice(at).filter(mine).length;
    const stop = () => {
      stopped = true;
      this.appended.delete(onAppend);
      wake?.();
    };
    const it: AsyncIterator<LogMessage> = {
      next: async () => {
        while (!stopped) {
          while (at < this.logs.length) {
            const l = this.logs[at++]!;
            if (mine(l)) return { done: false, value: { ...l.message, pending: after() } };
          }
          await new Promise<void>((r) => (wake = r));
          wake = undefined;
        }
        return { done: true, value: undefined };
      },
      return: async () => {
        stop();
        return { done: true, value: undefined };
      },
    };
    return { [Symbol.asyncIterator]: () => it, readAhead: after, stop };
  }

  async lastLogSequence(executionId: string, executorIds: string[]): Promise<number> {
    let last = 0;
    for (const l of this.logs) if (l.executionId === executionId && executorIds.includes(l.message.executorId)) last = l.message.seq;
    return last;
  }
}
