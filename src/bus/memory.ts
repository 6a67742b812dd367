// The Bus in memory, for unit tests of the use-cases: what was sent is kept in lists a test
// reads (job messages, stops, dispatch requests), executors' queues in a map, and logs a test
// appends as executors would publish them. Job messages are deduplicated per task, as the
// stream does within its dedup window.

import type { Bus, JobAddress, LogMessage, LogReading, OpenLog } from './bus.js';
import type { ExecutorConsumers } from './consumers.js';
import { jobMsgId, type CancelMessage, type JobMessage } from './messages.js';
import { consumers } from './subjects.js';

interface StoredLog {
  executionId: string;
  message: Omit<LogMessage, 'pending'>;
}

export class MemoryBus implements Bus {
  /** Job messages queued, in order; a task's message sent again is not. */
  readonly jobs: Array<{ to: JobAddress; job: JobMessage }> = [];
  readonly stops: Array<{ executorId: string; stop: CancelMessage }> = [];
  readonly dispatchRequests: string[] = [];
  /** Executors' queues, by executor id. */
  readonly queues = new Map<string, ExecutorConsumers>();
  private readonly jobIds = new Set<string>();
  private readonly logs: StoredLog[] = [];
  private readonly appended = new Set<() => void>();

  async sendJob(to: JobAddress, job: JobMessage): Promise<void> {
    const id = jobMsgId(job.execution_id, job.task_key);
    if (this.jobIds.has(id)) return;
    this.jobIds.add(id);
    this.jobs.push({ to, job: { ...job } });
  }

  async requestDispatch(executionId: string): Promise<void> {
    this.dispatchRequests.push(executionId);
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

  async openLog(executionId: string, executorId?: string): Promise<OpenLog> {
    const mine = (l: StoredLog) => l.executionId === executionId && (!executorId || l.message.executorId === executorId);
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
