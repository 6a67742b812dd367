// Publishes a task's events (waiting / started / retrying / finished) on GRID_EVENTS under this
// executor's own subject, with the event id as Msg-Id so that a repeat is deduplicated. Retries
// while JetStream does not answer: a minute for the others, and for `finished` (a result that
// ran, which must not be run again to be known) until `until` aborts (the executor stops).

import { setTimeout as delay } from 'node:timers/promises';
import type { JetStreamClient } from '@nats-io/jetstream';
import type { NatsConnection } from '@nats-io/nats-core';
import { encode, type EventMessage, type JobMessage } from '../bus/messages.js';
import { subjects } from '../bus/subjects.js';
import { eventId, type StartedPart, type TaskEventKind } from '../domain/execution.js';
import type { TaskOutcome } from '../runners/runner.js';
import type { Logger } from '../util/log.js';

const GIVE_UP_MS = 60_000;

export interface EventDetails {
  outcome?: TaskOutcome;
  exit_code?: number;
  reason?: string;
  lock_token?: number;
  /** When it happened, if not now (a started event sent later than the task started). */
  at_ms?: number;
  /** finished: the task's started event, not sent on its own (see TaskEvent.started). */
  started?: StartedPart;
}

export class TaskEvents {
  constructor(private readonly o: { nc: NatsConnection; js: JetStreamClient; executorId: string; executorName: string; log: Logger }) {}

  async publish(job: JobMessage, attempt: number, kind: TaskEventKind, more: EventDetails, until?: AbortSignal): Promise<void> {
    const ev: EventMessage = {
      execution_id: job.execution_id,
      task_key: job.task_key,
      executor_id: this.o.executorId,
      executor_name: this.o.executorName,
      attempt,
      kind,
      at_ms: more.at_ms ?? Date.now(),
    };
    if (more.outcome !== undefined) ev.outcome = more.outcome;
    if (more.exit_code !== undefined) ev.exit_code = more.exit_code;
    if (more.reason !== undefined) ev.reason = more.reason;
    if (more.lock_token !== undefined) ev.lock_token = more.lock_token;
    if (more.started) ev.started = more.started;
    const subject = subjects.event(ev.execution_id, this.o.executorId);
    const data = encode(ev);
    const giveUpAt = until ? Infinity : Date.now() + GIVE_UP_MS;
    let wait = 250;
    let said = false;
    for (;;) {
      try {
        await this.o.js.publish(subject, data, { msgID: eventId(ev) });
        if (said) this.o.log.info('task event published after all', { kind, execution: ev.execution_id, task: ev.task_key });
        return;
      } catch (err) {
        if (this.o.nc.isClosed() || until?.aborted || Date.now() + wait > giveUpAt) {
          throw new Error(`could not publish the ${kind} event: ${(err as Error).message}`, { cause: err });
        }
        if (!said) this.o.log.warn('could not publish a task event; retrying', { kind, execution: ev.execution_id, task: ev.task_key, error: (err as Error).message });
        said = true;
        await delay(wait, undefined, until ? { signal: until } : {}).catch(() => {});
        wait = Math.min(wait * 2, 5000);
      }
    }
  }
}
