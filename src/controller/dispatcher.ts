// The dispatcher: takes accepted executions from GRID_REQUESTS (a durable shared by every
// controller replica), resolves the target against the registry *now*, records the task set by
// compare-and-swap, publishes one job message per task, and only then acks. A crash anywhere in
// between redelivers the request and the step runs again idempotently (job messages carry a
// Msg-Id per task, so JetStream drops the repeats).

import type { ConsumerMessages, JetStreamClient, JsMsg } from '@nats-io/jetstream';
import { decode, encode, type JobMessage, type RequestMessage } from '../bus/messages.js';
import { consumers, STREAMS, subjects } from '../bus/subjects.js';
import { planTasks } from '../domain/dispatch-plan.js';
import type { Execution, Task } from '../domain/execution.js';
import { failExecution, settle } from '../domain/execution-rules.js';
import type { JobDefinition } from '../domain/job.js';
import { parseTarget } from '../domain/target.js';
import { NotFoundError } from '../errors.js';
import type { EtcdExecutionStore } from '../store/etcd-executions.js';
import type { EtcdExecutorStore } from '../store/etcd-executors.js';
import type { JobStore } from '../store/store.js';
import { Limiter } from '../util/limiter.js';
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
      const { executors } = await this.d.executors.list();
      const plan = planTasks({ target: parseTarget(x.target), executors, runner: def.runner, waitOfflineMs: x.wait_offline_ms, now: this.now() });
      const res = await this.d.store.update(id, (e) => {
        if (e.state !== 'QUEUED') return false;
        if (plan.failure) return failExecution(e, plan.failure, this.now());
        e.tasks = plan.tasks;
        e.state = 'DISPATCHED';
        if (plan.excluded.length) e.reason = plan.excluded.map((r) => `${r.name} ${r.reason}`).join('; ');
        settle(e, this.now());
        return true;
      });
      x = res.execution;
      if (plan.failure) this.d.log.info('execution failed at dispatch', { id, reason: plan.failure });
    }
    const toSend = x.tasks.filter((t) => t.state === 'PENDING' && t.attempts === 0);
    if (toSend.length === 0) return;
    def ??= (await this.d.jobs.getJob(x.job)).definition;
    await Promise.all(toSend.map((t) => this.publishJob(x, t, def!)));
  }

  private publishJob(x: Execution, t: Task, def: JobDefinition) {
    const msg: JobMessage = {
      execution_id: x.id,
      task_key: t.key,
      definition: def,
      job_version: x.job_version,
      args: x.args,
      has_secrets: x.secret_names.length > 0,
      deadline_ms: x.deadline_ms,
      timeout_ms: (def.timeout_seconds ?? 0) * 1000,
      max_attempts: def.retries?.max_attempts ?? 1,
      backoff_ms: (def.retries?.backoff_seconds ?? 0) * 1000,
    };
    const subject = t.pool ? subjects.poolJob(t.pool, def.runner) : subjects.nodeJob(t.executor_id);
    return this.d.js.publish(subject, encode(msg), { msgID: `${x.id}.${t.key}` });
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
