// The runner contract: how an executor runs one task. Named in domain verbs (start / wait /
// stop / recover) like Nomad's task drivers; each runner lives in its own folder.

import type { JobDefinition } from '../domain/job.js';

export type LogStream = 'stdout' | 'stderr' | 'system';

export interface TaskSpec {
  executionId: string;
  executorId: string;
  executorName: string;
  attempt: number;
  definition: JobDefinition;
  /** Validated arguments, defaults applied, as strings. Secrets are not among them. */
  args: Record<string, string>;
  /** Secret values by name; the runner must not place them where they could be stored. */
  secrets: Record<string, string>;
  /** Extra environment for the task (GRID_LOCK_TOKEN and the like). */
  env: Record<string, string>;
  /** Hard limit for the task; 0 = none. The runner enforces it and reports `timed_out`. */
  timeoutMs: number;
  /** Files already fetched and rendered, to place relative to the working directory. */
  files?: Array<{ path: string; data: Uint8Array; mode?: number }>;
}

export type TaskOutcome = 'succeeded' | 'failed' | 'timed_out' | 'cancelled';

export interface TaskResult {
  outcome: TaskOutcome;
  exitCode?: number;
  /** Why, in words: "exit code 3", "OOMKilled", "timed out after 30s", … */
  reason: string;
}

export interface LogSink {
  /** Called with output as it is produced; the runner batches, the sink must not block long. */
  write(stream: LogStream, data: Uint8Array): void;
  /**
   * Called once by the runner after the task's last write, before wait() resolves. Filters that
   * hold output back (secret masking's carry-over, the log cap's tail) write it out here and then
   * call their inner sink's finish(). Nothing is written after it.
   */
  finish?(): void;
}

/** One task started by a runner. */
export interface RunningTask {
  /**
   * The process group the task runs in, when it runs as local processes (the host runner): the
   * executor records it so that a task orphaned by a crash of the executor can be killed later.
   */
  readonly pid?: number;
  /** Resolves once the task has ended and all of its output has been written to the sink. */
  wait(): Promise<TaskResult>;
  /** Stops the task (cancel); resolves when it has really stopped. Idempotent. */
  stop(reason: 'cancelled' | 'timed_out'): Promise<void>;
}

export interface Runner {
  readonly name: string;
  /** Starts a task. `signal` aborting is the same as stop('cancelled'). */
  start(spec: TaskSpec, logs: LogSink, signal: AbortSignal): Promise<RunningTask>;
  /** Finds a task this runner started before the executor restarted, if it is still there. */
  recover?(spec: TaskSpec, logs: LogSink, signal: AbortSignal): Promise<RunningTask | undefined>;
  close?(): Promise<void>;
}

/** A duration as runners word it in reasons: "30s", "1.5s", "0.2s". */
export function seconds(ms: number): string {
  return `${Number((ms / 1000).toFixed(3))}s`;
}
