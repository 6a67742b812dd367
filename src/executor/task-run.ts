// One task taken from the job stream, from the moment it arrives until its message is acked or
// handed back, and the steps of one attempt of it: prepare (files, lock), run on the runner.

import type { JobMessage } from '../bus/messages.js';
import type { TaskToRun } from '../domain/task.js';
import type { LogSink, Runner, RunningTask, TaskResult, TaskSpec } from '../runners/runner.js';
import type { Logger } from '../util/log.js';
import { prepareFiles, TaskFileError } from './files.js';
import type { FleetLocks, HeldLock } from './lock.js';
import type { PidFiles } from './orphans.js';
import type { TaskSource } from './task-source.js';

export type StopReason = 'cancelled' | 'timed_out';

export class TaskRun {
  readonly abort = new AbortController();
  task: RunningTask | undefined;
  stopReason: StopReason | undefined;
  /** Why it was stopped, when it was the executor (shutdown) rather than the operator. */
  stopNote: string | undefined;
  /** The started event on its way: later events of the task wait for it (order is kept). */
  started: Promise<void> | undefined;

  constructor(
    readonly job: JobMessage,
    readonly attempt: number,
  ) {}

  stop(reason: StopReason, note?: string): void {
    if (this.stopReason) return;
    this.stopReason = reason;
    this.stopNote = note;
    if (this.task) void this.task.stop(reason).catch(() => {});
    else this.abort.abort();
  }
}

/**
 * Runs one attempt on the runner: follows a task an earlier run of this executor left running
 * (a Kubernetes Job) rather than start it twice, records its process group while it runs (so a
 * crash of the executor can be cleaned up), and waits for its result. A runner that cannot start
 * the task at all (the work folder cannot be written, …) makes it fail with the reason.
 */
export async function runAttempt(o: { run: TaskRun; runner: Runner; spec: TaskSpec; sink: LogSink; pidFiles: PidFiles; log: Logger }): Promise<TaskResult> {
  const { run, runner, spec, sink, log } = o;
  let pidFile: string | undefined;
  try {
    const recovered = await runner.recover?.(spec, sink, run.abort.signal).catch((err: Error) => {
      log.warn('could not look for the task left by an earlier run; starting it', { error: err.message });
      return undefined;
    });
    if (recovered) log.info('resumed a task left running by an earlier run of this executor', { runner: runner.name });
    const task = recovered ?? (await runner.start(spec, sink, run.abort.signal));
    run.task = task;
    if (run.stopReason) void task.stop(run.stopReason).catch(() => {});
    if (task.pid !== undefined) {
      pidFile = await o.pidFiles.write(run.job.execution_id, run.job.task_key, task.pid).catch((err: Error) => {
        log.warn('could not record the task\'s process group', { error: err.message });
        return undefined;
      });
    }
    return await task.wait();
  } catch (err) {
    log.error('the runner could not start the task', { error: (err as Error).message });
    return { outcome: 'failed', reason: `the executor could not start the task: ${(err as Error).message}` };
  } finally {
    if (pidFile) await o.pidFiles.remove(pidFile).catch(() => {});
  }
}

/** The task's own timeout bounded by the execution's deadline; `expired` if that has passed. */
export function attemptTimeout(timeoutMs: number, deadlineMs: number, now: number): { timeoutMs: number; expired: boolean } {
  let t = timeoutMs > 0 ? timeoutMs : 0;
  if (deadlineMs > 0) {
    const left = deadlineMs - now;
    if (left <= 0) return { timeoutMs: 0, expired: true };
    t = t > 0 ? Math.min(t, left) : left;
  }
  return { timeoutMs: t, expired: false };
}

/**
 * What an attempt needs before it runs, in order: its configuration files (fetched, verified and
 * rendered; a file that is missing, tampered with or does not render fails the task with the
 * reason), then for a serialized job the fleet-wide lock, waited for in line (its token fences).
 */
export async function prepareAttempt(o: {
  run: TaskRun;
  task: TaskToRun;
  source: TaskSource;
  locks: FleetLocks;
  log: Logger;
  onWaiting: (reason: string) => Promise<void>;
}): Promise<{ files?: TaskSpec['files']; lock?: HeldLock } | { failed: TaskResult }> {
  const { run, task } = o;
  const def = task.definition;
  const ref = { executionId: run.job.execution_id, taskKey: run.job.task_key };
  let files: TaskSpec['files'];
  if (task.files.length) {
    try {
      const secretNames = def.env_vars.secrets.map((x) => x.name);
      files = await prepareFiles(task.files, task.args, secretNames, (name) => o.source.fetchFile(ref, name, run.abort.signal));
    } catch (err) {
      const reason = err instanceof TaskFileError ? err.message : `could not prepare the task's files: ${(err as Error).message}`;
      return { failed: { outcome: 'failed', reason } };
    }
  }
  const lockName = def.serialize;
  if (!lockName) return files ? { files } : {};
  const lock = await o.locks.acquire({
    ...ref,
    signal: run.abort.signal,
    onWaiting: (ahead, holder) => o.onWaiting(`waiting for lock ${lockName}${holder ? ` (held by ${holder})` : ''}${ahead ? `, ${ahead} ahead` : ''}`),
  });
  if (!lock) return { failed: { outcome: run.stopReason ?? 'cancelled', reason: run.stopNote ?? 'stopped while waiting for its lock' } };
  o.log.info('holds the serialize lock', { lock: lockName, token: lock.token });
  return { ...(files ? { files } : {}), lock };
}
