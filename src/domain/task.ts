// A task as the state of record has it, handed to the executor that runs it (BeginTask(s)): the
// definition at the execution's version, its arguments, limits and its files with the digests
// recorded when the execution was accepted. The executor runs this and nothing else.

import type { FileRef, JobDefinition } from './job.js';

/** A file of a task, with the digest GRID recorded for it ("" = none was recorded). */
export type TaskFileRef = FileRef & { digest: string };

export interface TaskToRun {
  job: string;
  jobVersion: number;
  definition: JobDefinition;
  args: Record<string, string>;
  /** The execution's deadline, epoch ms (0 = none). */
  deadlineMs: number;
  /** The task's own timeout (0 = none). */
  timeoutMs: number;
  maxAttempts: number;
  backoffMs: number;
  files: TaskFileRef[];
}
