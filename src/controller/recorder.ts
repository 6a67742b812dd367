// The recorder: applies executor events from GRID_EVENTS to executions in etcd. Events are
// taken in micro-batches: all events for one execution in a batch become one compare-and-swap
// write, and are acked after it. applyEvent makes duplicates and stale events no-ops, so
// at-least-once delivery still records each result exactly once.

import type { ConsumerMessages, JetStreamClient, JsMsg } from '@nats-io/jetstream';
import { decode, type EventMessage } from '../bus/messages.js';
import { consumers, STREAMS } from '../bus/subjects.js';
import { applyEvent, sendable } from '../domain/execution-rules.js';
import { NotFoundError } from '../errors.js';
import type { EtcdExecutionStore } from '../store/etcd-executions.js';
import type { Logger } from '../util/log.js';
import type { JobPublisher } from './job-publisher.js';

const BATCH = 512;

export class Recorder {
  private messages?: ConsumerMessages;
  private buffer: JsMsg[] = [];
  private flushing?: Promise<void>;
  private loop?: Promise<void>;

  constructor(private readonly d: { js: JetStreamClient; store: EtcdExecutionStore; publisher: JobPublisher; log: Logger }) {}

  async start(): Promise<void> {
    const consumer = await this.d.js.consumers.get(STREAMS.events, consumers.recorder);
    this.messages = await consumer.consume({ max_messages: 1024 });
    this.loop = (async () => {
      for await (const m of this.messages!) {
        this.buffer.push(m);
        this.kick();
      }
    })();
  }

  /** Starts a flush unless one runs; a flush that ends with events left over starts another. */
  private kick(): void {
    if (this.flushing) return;
    this.flushing = this.flush().finally(() => {
      this.flushing = undefined;
      if (this.buffer.length) this.kick();
    });
  }

  private async flush(): Promise<void> {
    while (this.buffer.length) {
      const batch = this.buffer.splice(0, BATCH);
      const byExecution = new Map<string, Array<{ m: JsMsg; ev: EventMessage }>>();
      for (const m of batch) {
        let ev: EventMessage;
        try {
          ev = decode<EventMessage>(m.data);
        } catch {
          this.d.log.warn('dropping an undecodable event', { subject: m.subject });
          m.term();
          continue;
        }
        const list = byExecution.get(ev.execution_id) ?? [];
        list.push({ m, ev });
        byExecution.set(ev.execution_id, list);
      }
      await Promise.all([...byExecution].map(([id, items]) => this.apply(id, items)));
    }
  }

  private async apply(id: string, items: Array<{ m: JsMsg; ev: EventMessage }>): Promise<void> {
    try {
      let before = new Set<string>();
      const { execution, changed } = await this.d.store.update(id, (x) => {
        before = new Set(sendable(x).map((t) => t.key));
        let changed = false;
        for (const { ev } of items) changed = applyEvent(x, ev) || changed;
        return changed;
      });
      // A batched rollout's next wave was released by these events: send its job messages
      // (before acking, so a crash here redelivers the events; the sweeper also re-sends).
      const released = changed ? sendable(execution).filter((t) => !before.has(t.key)) : [];
      if (released.length) {
        await this.d.publisher.publish(execution, released, await this.d.publisher.definitionOf(execution));
        this.d.log.info('next wave released', { id, wave: released[0]!.wave, tasks: released.length });
      }
      for (const { m } of items) m.ack();
    } catch (err) {
      if (err instanceof NotFoundError) {
        for (const { m } of items) m.ack();
        return;
      }
      this.d.log.warn('could not record events; they will be redelivered', { id, error: (err as Error).message });
      for (const { m } of items) m.nak(1_000);
    }
  }

  async stop(): Promise<void> {
    this.messages?.stop();
    await this.loop?.catch(() => {});
    await this.flushing;
  }
}
