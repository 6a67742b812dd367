// Sends tasks' job messages (pointers: execution id and task key) to executors' queues, and a
// fan-out's one broadcast pointer (core NATS) ahead of them. Used by
// Execute and the dispatcher (first wave, or all tasks), the recorder (later waves of a batched
// rollout) and the sweeper (re-sending after a crash, and what this process owes: see owe()).
// The queue keeps one message per task within its dedup window, so sending one twice is harmless.

import type { JobQueue } from '../bus/bus.js';
import type { JobMessage } from '../bus/messages.js';
import type { Execution, Task } from '../domain/execution.js';
import { fallbackTasks, sendable } from '../domain/execution-rules.js';
import type { JobDefinition } from '../domain/job.js';
import type { JobStore } from '../store/store.js';

/**
 * How long a record whose write failed with an unknown outcome is looked for: etcd commits or
 * drops a proposal it holds within its election timeouts, seconds.
 */
export const UNKNOWN_WRITE_MS = 60_000;

/** Job messages this process owes for one execution (see JobPublisher.owe). */
interface Owed {
  /** Only its tasks not started, not a broadcast fan-out's running ones too (see resend). */
  pendingOnly: boolean;
  /** When its write failed with an unknown outcome; 0 when the record is known to exist. */
  unknownSince: number;
}

export class JobPublisher {
  /**
   * Executions whose job messages this process released and has not sent. No other replica
   * sends them while this process lives (the sweeper sends only those of a dispatcher that is
   * gone), so this process must: see sendOwed.
   */
  private readonly owed = new Map<string, Owed>();

  constructor(private readonly d: { queue: JobQueue; jobs: Pick<JobStore, 'getVersion'> }) {}

  /**
   * Notes that the job messages of execution `id` may not all have gone out: a send failed, or
   * a write that released tasks failed with an unknown outcome (etcd may have committed it
   * though its answer was lost; `unknownSince` is then when).
   */
  owe(id: string, o: { pendingOnly?: boolean; unknownSince?: number } = {}): void {
    const was = this.owed.get(id);
    this.owed.set(id, {
      pendingOnly: (was?.pendingOnly ?? true) && (o.pendingOnly ?? false),
      unknownSince: Math.max(was?.unknownSince ?? 0, o.unknownSince ?? 0),
    });
  }

  /**
   * Sends what owe() noted, reading each record with `get`: a record not found is dropped, or
   * looked for again until UNKNOWN_WRITE_MS after its unknown write. Throws on the first send
   * that fails (the rest stay owed).
   */
  async sendOwed(get: (id: string) => Promise<Execution | undefined>, now: number): Promise<Array<{ id: string; tasks: number }>> {
    const sent: Array<{ id: string; tasks: number }> = [];
    for (const [id, o] of [...this.owed]) {
      const x = await get(id);
      if (!x && o.unknownSince && now - o.unknownSince < UNKNOWN_WRITE_MS) continue;
      const tasks = x ? await this.resend(x, { pendingOnly: o.pendingOnly }) : 0;
      // A later owe() while this one was sending is kept.
      if (this.owed.get(id) === o) this.owed.delete(id);
      if (tasks) sent.push({ id, tasks });
    }
    return sent;
  }

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
