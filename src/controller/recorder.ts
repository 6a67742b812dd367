// The recorder: applies executor events from GRID_EVENTS to executions in etcd. Events are
// taken in micro-batches and every execution they touch is written in one group commit (one
// transaction for many executions, each guarded by its own compare), then acked. applyEvent makes duplicates and stale events no-ops, so
// at-least-once delivery still records each result exactly once.

import type { Bus, Consuming, Delivery } from '../bus/bus.js';
import { decode, type EventMessage } from '../bus/messages.js';
import { applyEvent, readEvent, sendable, senderProblem } from '../domain/execution-rules.js';
import { groupsOf } from '../domain/executor.js';
import type { ExecutionStore, ExecutorStore } from '../store/store.js';
import type { Logger } from '../util/log.js';
import type { JobPublisher } from './job-publisher.js';

const BATCH = 512;

export class Recorder {
  private consumer?: Consuming;

  /** Events refused: unreadable, or sent by an executor that is not the task's (see rejected()). */
  private rejectedCount = 0;

  constructor(
    private readonly d: {
      bus: Pick<Bus, 'consumeTaskEvents'>;
      store: Pick<ExecutionStore, 'updateMany'>;
      publisher: JobPublisher;
      log: Logger;
      instance?: string;
      /** Who is in which group: a pool task's events count only from a member of its pool. */
      executors: Pick<ExecutorStore, 'getFast'>;
    },
  ) {}

  /** How many events this recorder has refused since it started. */
  rejected(): number {
    return this.rejectedCount;
  }

  private reject(m: Delivery, why: string, fields: Record<string, unknown> = {}): void {
    this.rejectedCount++;
    this.d.log.warn('event refused', { subject: m.subject, why, refused_so_far: this.rejectedCount, ...fields });
    m.term();
  }

  async start(): Promise<void> {
    this.consumer = await this.d.bus.consumeTaskEvents((batch) => this.handleBatch(batch), { batchSize: BATCH, prefetch: 1024 });
  }

  private async handleBatch(batch: Delivery[]): Promise<void> {
    const byExecution = new Map<string, Array<{ m: Delivery; ev: EventMessage }>>();
    for (const m of batch) {
      // grid.evt.<execution>.<executor>: the server lets an executor publish only under its own id.
      const [, , executionId, executorId, ...rest] = m.subject.split('.');
      if (!executionId || !executorId || rest.length) {
        this.reject(m, 'not an event subject');
        continue;
      }
      let raw: unknown;
      try {
        raw = decode<unknown>(m.data);
      } catch {
        this.reject(m, 'not JSON');
        continue;
      }
      const read = readEvent(raw, { executionId, executorId });
      if ('problem' in read) {
        this.reject(m, read.problem);
        continue;
      }
      const ev: EventMessage = read.event;
      const list = byExecution.get(ev.execution_id) ?? [];
      list.push({ m, ev });
      byExecution.set(ev.execution_id, list);
    }
    await this.apply(byExecution);
  }

  /** One group commit for every execution in the batch, then the acks. */
  private async apply(byExecution: Map<string, Array<{ m: Delivery; ev: EventMessage }>>): Promise<void> {
    const all = [...byExecution.values()].flat();
    /** The batched rollouts among them: only their events release tasks (a next wave). */
    const rollouts = new Set<string>();
    try {
      const groups = new Map<string, string[]>();
      for (const id of new Set(all.map((a) => a.ev.executor_id))) {
        const e = await this.d.executors.getFast(id);
        groups.set(id, e ? groupsOf(e) : []);
      }
      const inGroup = (id: string, g: string) => groups.get(id)?.includes(g) ?? false;
      const refused = new Set<Delivery>();
      const before = new Map<string, Set<string>>();
      const results = await this.d.store.updateMany([...byExecution.keys()], (x) => {
        const was = new Set(sendable(x).map((t) => t.key));
        before.set(x.id, was);
        if (x.batch_size > 0) rollouts.add(x.id);
        let changed = false;
        for (const { m, ev } of byExecution.get(x.id) ?? []) {
          const problem = senderProblem(x, ev, inGroup);
          if (problem) {
            refused.add(m);
            continue;
          }
          changed = applyEvent(x, ev) || changed;
        }
        // This process sends the wave it releases (see Execution.dispatcher).
        if (changed && this.d.instance && sendable(x).some((t) => !was.has(t.key))) x.dispatcher = this.d.instance;
        return changed;
      });
      await Promise.all(
        [...byExecution].map(async ([id, items]) => {
          const r = results.get(id);
          // Its events would have made the record too large to store: the execution failed
          // instead (or had ended), alone, and the events are done with.
          if (r?.refused) this.d.log.warn('events not recorded: the record would be too large to store', { id, state: r.execution.state, reason: r.refused, events: items.length });
          // A batched rollout's next wave was released by these events: send its job messages
          // before acking, so a crash here redelivers the events (the sweeper also re-sends).
          if (r?.changed && !r.refused) {
            const released = sendable(r.execution).filter((t) => !before.get(id)?.has(t.key));
            if (released.length) {
              await this.d.publisher.publish(r.execution, released, await this.d.publisher.definitionOf(r.execution));
              this.d.log.info('next wave released', { id, wave: released[0]!.wave, tasks: released.length });
            }
          }
          for (const { m, ev } of items) {
            if (!refused.has(m)) m.ack(); // an unknown execution's events are dropped too
            else this.reject(m, 'sent by an executor that is not the task\'s', { execution: id, task: ev.task_key, executor: ev.executor_id, kind: ev.kind });
          }
        }),
      );
    } catch (err) {
      // The write may have released a wave though its answer was lost, or the wave's send failed:
      // the redelivered events then change nothing, so nothing would send it. The sweep does.
      for (const id of rollouts) this.d.publisher.owe(id, { pendingOnly: true });
      this.d.log.warn('could not record events; they will be redelivered', { executions: byExecution.size, error: (err as Error).message });
      for (const { m } of all) m.nak(1_000);
    }
  }

  async stop(): Promise<void> {
    await this.consumer?.stop();
  }
}
