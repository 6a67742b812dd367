// The dispatcher: takes accepted executions from GRID_REQUESTS (a durable shared by every
// controller replica), resolves the target against the registry *now*, records the task set by
// compare-and-swap, publishes one job message per task, and only then acks. A crash anywhere in
// between redelivers the request and the step runs again idempotently (job messages carry a
// Msg-Id per task, so JetStream drops the repeats).

import type { ConsumerMessages, JetStreamClient, JsMsg } from '@nats-io/jetstream';
import { decode, type RequestMessage } from '../bus/messages.js';
import { consumers, STREAMS } from '../bus/subjects.js';
import { assignWaves, planTasks } from '../domain/dispatch-plan.js';
import { failExecution, resolveCount, sendable, settle } from '../domain/execution-rules.js';
import type { JobDefinition } from '../domain/job.js';
import { parseTarget } from '../domain/target.js';
import { NotFoundError } from '../errors.js';
import type { EtcdExecutionStore } from '../store/etcd-executions.js';
import type { EtcdExecutorStore } from '../store/etcd-executors.js';
import type { JobStore } from '../store/store.js';
import { Limiter } from '../util/limiter.js';
import type { JobPublisher } from './job-publisher.js';
import type { Logger } from '../util/log.js';

export class Dispatcher {
  private messages?: ConsumerMessages;
  private readonly limiter = new Limiter(64);
  private loop?: Promise<void>;

  constructor(
    private readonly d: {
      js: JetStreamClient;
      store: EtcdExecutionStore;
      jobs: JobStore;
      executors: EtcdExecutorStore;
      publisher: JobPublisher;
      log: Logger;
      now?: () => number;
    },
  ) {}

  async start(): Promise<void> {
    const consumer = await this.d.js.consumers.get(STREAMS.requests, consumers.dispatcher);
    this.messages = await consumer.consume({ max_messages: 256 });
    this.loop = (async () => {
      for await (const m of this.messages!) {
        await this.limiter.acquire();
        void this.handle(m).finally(() => this.limiter.release());
      }
    })();
  }

  private async handle(m: JsMsg): Promise<void> {
    try {
      const req = decode<RequestMessage & { definition?: JobDefinition }>(m.data);
      await this.dispatch(req.execution_id, req.definition);
      m.ack();
    } catch (err) {
      this.d.log.warn('dispatch failed; will retry', { error: (err as Error).message });
      m.nak(1_000);
    }
  }

  /** Plans (once) and publishes the job messages of one execution. Safe to run again. */
  async dispatch(id: string, snapshot?: JobDefinition): Promise<void> {
    const cur = await this.d.store.get(id);
    if (!cur) return; // deleted, or never written: nothing to do
    let x = cur.value;
    let def = snapshot;
    if (x.state === 'QUEUED') {
      if (!def) {
        try {
          def = (await this.d.jobs.getJob(x.job)).definition;
        } catch (err) {
          if (!(err instanceof NotFoundError)) throw err;
          await this.d.store.update(id, (e) => failExecution(e, `job ${x.job} was deleted before dispatch`, this.now()));
          return;
        }
      }
      const executors = await this.d.executors.all();
      const plan = planTasks({ target: parseTarget(x.target), executors, runner: def.runner, waitOfflineMs: x.wait_offline_ms, now: this.now() });
      const res = await this.d.store.update(id, (e) => {
        if (e.state !== 'QUEUED') return false;
        if (plan.failure) return failExecution(e, plan.failure, this.now());
        e.tasks = plan.tasks;
        e.state = 'DISPATCHED';
        const fanout = plan.tasks.filter((t) => !t.pool && t.state === 'PENDING').length;
        e.batch_size = resolveCount(e.batch_spec, fanout);
        e.max_failures = resolveCount(e.max_failures_spec, plan.tasks.length);
        if (e.batch_size > 0 && e.batch_size < fanout) {
          assignWaves(e.tasks, e.batch_size);
          e.definition = def; // later waves are sent from this snapshot
        }
        if (plan.excluded.length) e.reason = plan.excluded.map((r) => `${r.name} ${r.reason}`).join('; ');
        settle(e, this.now());
        return true;
      });
      x = res.execution;
      if (plan.failure) this.d.log.info('execution failed at dispatch', { id, reason: plan.failure });
    }
    const toSend = sendable(x);
    if (toSend.length === 0) return;
    await this.d.publisher.publish(x, toSend, await this.d.publisher.definitionOf(x, def));
  }

  private now(): number {
    return this.d.now?.() ?? Date.now();
  }

  async stop(): Promise<void> {
    this.messages?.stop();
    await this.loop?.catch(() => {});
    await this.limiter.idle();
  }
}
