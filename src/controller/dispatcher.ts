// The dispatcher: recovers executions that older versions left QUEUED. The sweeper re-publishes
// such a record on GRID_REQUESTS (a durable shared by every controller replica); the dispatcher
// resolves the target against the registry *now*, records the task set by compare-and-swap,
// publishes one job message per task, and only then acks. A crash anywhere in between
// redelivers the request and the step runs again idempotently (job messages carry a Msg-Id per
// task, so JetStream drops the repeats). New executions never pass here: the controller that
// accepts one dispatches it itself (ExecutionService.execute).

import type { Bus, Consuming, Delivery } from '../bus/bus.js';
import { decode, type RequestMessage } from '../bus/messages.js';
import { dispatchExecution } from '../domain/dispatch-plan.js';
import { failExecution, sendable } from '../domain/execution-rules.js';
import type { JobDefinition } from '../domain/job.js';
import type { TargetExecutor } from '../domain/target.js';
import type { Execution } from '../domain/execution.js';
import { NotFoundError } from '../errors.js';
import type { ExecutionStore, ExecutorStore, JobStore } from '../store/store.js';
import type { JobPublisher } from './job-publisher.js';
import type { Logger } from '../util/log.js';

const BATCH = 256;

export class Dispatcher {
  private consumer?: Consuming;

  constructor(
    private readonly d: {
      bus: Pick<Bus, 'consumeDispatchRequests'>;
      store: Pick<ExecutionStore, 'get' | 'update'>;
      jobs: Pick<JobStore, 'getJob'>;
      executors: Pick<ExecutorStore, 'all'>;
      publisher: JobPublisher;
      log: Logger;
      /** This controller process: recorded on what it dispatches (see Sweeper). */
      instance?: string;
      now?: () => number;
    },
  ) {}

  async start(): Promise<void> {
    this.consumer = await this.d.bus.consumeDispatchRequests((batch) => this.handleBatch(batch), { batchSize: BATCH, prefetch: 512 });
  }

  /**
   * Every controller now records an execution with its task set and sends its job messages
   * itself; requests arrive here only for records that older versions left QUEUED (re-published
   * by the sweeper), so each is dispatched on its own. A request an older version published
   * carries the definition it accepted the execution with: that one is planned with.
   */
  private async handleBatch(batch: Delivery[]): Promise<void> {
    await Promise.all(
      batch.map((m) => {
        let req: RequestMessage & { definition?: JobDefinition };
        try {
          req = decode<RequestMessage & { definition?: JobDefinition }>(m.data);
        } catch {
          this.d.log.warn('dropping an undecodable request', { subject: m.subject });
          m.term();
          return;
        }
        return this.dispatch(req.execution_id, req.definition).then(() => m.ack(), (err) => this.retry(m, err));
      }),
    );
  }

  private retry(m: Delivery, err: unknown): void {
    this.d.log.warn('dispatch failed; will retry', { error: (err as Error).message });
    m.nak(1_000);
  }

  /** Resolves the target now and records the task set on a QUEUED execution (pure on `e`). */
  private plan(e: Execution, def: JobDefinition, executors: TargetExecutor[]): boolean {
    const { changed, failure } = dispatchExecution(e, def, executors, this.now());
    if (failure) this.d.log.info('execution failed at dispatch', { id: e.id, reason: failure });
    if (changed && this.d.instance) e.dispatcher = this.d.instance;
    return changed;
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
      const d = def;
      x = (await this.d.store.update(id, (e) => this.plan(e, d, executors))).execution;
    }
    const toSend = sendable(x);
    if (toSend.length === 0) return;
    await this.d.publisher.publish(x, toSend, await this.d.publisher.definitionOf(x, def));
  }

  private now(): number {
    return this.d.now?.() ?? Date.now();
  }

  async stop(): Promise<void> {
    await this.consumer?.stop();
  }
}
