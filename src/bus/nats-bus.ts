// The Bus over NATS: job messages and requests on JetStream (Msg-Id per task, per execution),
// stops on core NATS, executors' queues as durable consumers, logs read by ordered consumers.

import { DeliverPolicy, jetstream, type JetStreamClient, type JetStreamManager, type JsMsg } from '@nats-io/jetstream';
import type { NatsConnection } from '@nats-io/nats-core';
import { BatchConsumer } from './batch-consumer.js';
import type { BatchHandler, BatchOptions, Bus, Consuming, JobAddress, LogMessage, LogReading, OpenLog, Submission, SubmissionHandler } from './bus.js';
import { deleteExecutorConsumer, ensureExecutorConsumers, type ExecutorConsumers } from './consumers.js';
import { encode, jobMsgId, LOG_HEADERS, type CancelMessage, type FanoutMessage, type JobMessage, type RequestMessage, type SubmitAnswer } from './messages.js';
import { consumers, STREAMS, subjects } from './subjects.js';

export class NatsBus implements Bus {
  private readonly js: JetStreamClient;
  private jsmPromise?: Promise<JetStreamManager>;

  constructor(private readonly nc: NatsConnection) {
    this.js = jetstream(nc);
  }

  consumeDispatchRequests(handle: BatchHandler, o: BatchOptions): Promise<Consuming> {
    return this.consume(STREAMS.requests, consumers.dispatcher, handle, o);
  }

  consumeSubmissions(handle: SubmissionHandler, o: BatchOptions): Promise<Consuming> {
    return this.consume(STREAMS.requests, consumers.intake, (batch) => handle(batch.map(submission)), o);
  }

  sendAnswer(replyTo: string, answer: SubmitAnswer): void {
    try {
      this.nc.publish(replyTo, encode(answer));
    } catch {
      // Best effort, as the interface says: a connection closing now loses only this answer.
    }
  }

  consumeTaskEvents(handle: BatchHandler, o: BatchOptions): Promise<Consuming> {
    return this.consume(STREAMS.events, consumers.recorder, handle, o);
  }

  /** The controllers' shared durable on `stream` (ensureControllerConsumers made it). */
  private async consume(stream: string, durable: string, handle: (batch: JsMsg[]) => Promise<void>, o: BatchOptions): Promise<Consuming> {
    const consumer = new BatchConsumer({ js: this.js, stream, durable, handle, ...o });
    await consumer.start();
    return consumer;
  }

  async sendJob(to: JobAddress, job: JobMessage): Promise<void> {
    const subject = 'pool' in to ? subjects.poolJob(to.pool, to.runner) : subjects.nodeJob(to.executorId);
    await this.js.publish(subject, encode(job), { msgID: jobMsgId(job.execution_id, job.task_key) });
    // Wakes one member parked on the pool (see Puller): the members that wait on its consumer are
    // capped, so the job may otherwise wait for one of them to be free.
    if ('pool' in to) this.nudge(consumers.pool(to.pool, to.runner));
  }

  private nudge(consumer: string): void {
    try {
      this.nc.publish(subjects.poolNudge(consumer));
    } catch {
      // Best effort: a member parked on the pool also asks again on its own (PARK_MS).
    }
  }

  broadcastJob(group: string, job: FanoutMessage): void {
    this.nc.publish(subjects.fanout(group), encode(job));
  }

  async requestDispatch(executionId: string): Promise<void> {
    const msg: RequestMessage = { execution_id: executionId };
    await this.js.publish(subjects.request(executionId), encode(msg), { msgID: executionId });
  }

  sendStop(executorId: string, stop: CancelMessage): void {
    this.nc.publish(subjects.cancel(executorId), encode(stop));
  }

  ensureExecutorQueues(e: { id: string; groups: string[]; runners: string[]; concurrency: number }): Promise<ExecutorConsumers> {
    return ensureExecutorConsumers(this.nc, e);
  }

  deleteExecutorQueue(executorId: string): Promise<void> {
    return deleteExecutorConsumer(this.nc, executorId);
  }

  async openLog(executionId: string, executorId?: string, afterSeq = 0, sinceMs = 0): Promise<OpenLog> {
    const subject = executorId ? subjects.log(executionId, executorId) : subjects.logsOf(executionId);
    // A log position is the message's GRID_LOGS stream sequence. A start time is a position too
    // (the server finds it); with both, the reader leaves out what is older.
    const from =
      afterSeq > 0
        ? { deliver_policy: DeliverPolicy.StartSequence, opt_start_seq: afterSeq + 1 }
        : sinceMs > 0
          ? { deliver_policy: DeliverPolicy.StartTime, opt_start_time: new Date(sinceMs).toISOString() }
          : { deliver_policy: DeliverPolicy.All };
    const consumer = await this.js.consumers.get(STREAMS.logs, { filter_subjects: subject, ...from });
    const pending = (await consumer.info()).num_pending;
    return {
      pending,
      read: async ({ readAhead }) => {
        const messages = await consumer.consume({ max_messages: readAhead });
        const it = messages[Symbol.asyncIterator]();
        // Mapped message by message, without a generator: a caller may ask for the next one
        // before it arrives and drop that request, which a generator would not allow.
        const mapped: AsyncIterator<LogMessage> = {
          next: () => it.next().then((r) => (r.done ? r : { done: false, value: logMessage(r.value) })),
          return: async () => {
            await it.return?.();
            return { done: true, value: undefined };
          },
        };
        const reading: LogReading = {
          [Symbol.asyncIterator]: () => mapped,
          readAhead: () => messages.getPending(),
          stop: () => messages.stop(),
        };
        return reading;
      },
    };
  }

  async lastLogSequence(executionId: string, executorIds: string[]): Promise<number> {
    const jsm = await this.jsm();
    let last = 0;
    for (const id of new Set(executorIds.filter(Boolean))) {
      const m = await jsm.streams.getMessage(STREAMS.logs, { last_by_subj: subjects.log(executionId, id) }).catch(() => null);
      if (m && m.seq > last) last = m.seq;
    }
    return last;
  }

  private jsm(): Promise<JetStreamManager> {
    this.jsmPromise ??= this.js.jetstreamManager();
    return this.jsmPromise;
  }
}

function submission(m: JsMsg): Submission {
  return {
    subject: m.subject,
    data: m.data,
    deliveries: m.info.deliveryCount,
    header: (name) => (m.headers?.has(name) ? m.headers.get(name) : undefined),
    ack: () => m.ack(),
    nak: (delayMs) => m.nak(delayMs),
    term: () => m.term(),
  };
}

function logMessage(m: JsMsg): LogMessage {
  const executorId = m.subject.slice(m.subject.lastIndexOf('.') + 1);
  return {
    executorId,
    executorName: m.headers?.get(LOG_HEADERS.executorName) ?? executorId,
    stream: m.headers?.get(LOG_HEADERS.stream) || 'stdout',
    data: m.data,
    seq: m.seq,
    atMs: Math.floor(Number(m.info.timestampNanos) / 1e6),
    pending: m.info.pending,
  };
}
