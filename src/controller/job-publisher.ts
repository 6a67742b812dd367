// Sends tasks' job messages (pointers: execution id and task key) to executors' queues, and a
// fan-out's one broadcast pointer (core NATS) ahead of them. Used by
// Execute and the dispatcher (first wave, or all tasks), the recorder (later waves of a batched
// rollout) and the sweeper (re-sending after a crash). The queue keeps one message per task
// within its dedup window, so sending one twice is harmless.

import type { JobQueue } from '../bus/bus.js';
import type { JobMessage } from '../bus/messages.js';
import type { Execution, Task } from '../domain/execution.js';
import { fallbackTasks, sendable } from '../domain/execution-rules.js';
import type { JobDefinition } from '../domain/job.js';
import type { JobStore } from '../store/store.js';

export class JobPublisher {
  constructor(private readonly d: { queue: JobQueue; jobs: Pick<JobStore, 'getVersion'> }) {}

  /**
   * The definition the execution runs: the one given, its rollout snapshot, else the version it
   * was accepted with (a later replace does not change what an accepted execution runs).
   */
  async definitionOf(x: Execution, snapshot?: JobDefinition): Promise<JobDefinition> {
    return snapshot ?? x.definition ?? (await this.d.jobs.getVersion(x.job, x.job_version)).definition;
  }

  /**
   * Sends again the job messages of the tasks released and not started yet (after a crash or a
   * failed send) and, for a broadcast fan-out, of its running tasks too unless `pendingOnly`
   * (see fallbackTasks); returns how many. Msg-Ids make a message that did go out harmless.
   */
  async resend(x: Execution, o: { pendingOnly?: boolean } = {}): Promise<number> {
    const tasks = (x.broadcast_group && !o.pendingOnly ? fallbackTasks(x) : sendable(x)).filter((t) => t.released_at_ms);
    if (tasks.length) await this.publish(x, tasks, await this.definitionOf(x));
    return tasks.length;
  }

  /** The fan-out's one pointer to every executor of its group (see Execution.broadcast_group). */
  broadcast(x: Execution & { broadcast_group: string }): void {
    this.d.queue.broadcastJob(x.broadcast_group, { execution_id: x.id });
  }

  async publish(x: Execution, tasks: Task[], def: JobDefinition): Promise<void> {
    await Promise.all(tasks.map((t) => this.publishOne(x, t, def)));
  }

  private async publishOne(x: Execution, t: Task, def: JobDefinition): Promise<void> {
    // Only a pointer: the executor asks BeginTask(s) what the task is.
    const msg: JobMessage = { execution_id: x.id, task_key: t.key };
    await this.d.queue.sendJob(t.pool ? { pool: t.pool, runner: def.runner } : { executorId: t.executor_id }, msg);
  }
}
