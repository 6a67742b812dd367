// Executions and their tasks: the records, and the pure rules that move them between states.
// Every change an event or an operator makes goes through here, so that a duplicated or late
// event can never move a state backwards or yield a second result.

import type { JobDefinition } from './job.js';

export type ExecutionState = 'QUEUED' | 'DISPATCHED' | 'RUNNING' | 'SUCCEEDED' | 'FAILED' | 'CANCELLED' | 'TIMED_OUT';
export type TaskState = 'PENDING' | 'RUNNING' | 'SUCCEEDED' | 'FAILED' | 'TIMED_OUT' | 'CANCELLED' | 'LOST' | 'SKIPPED' | 'UNKNOWN';

/** Every execution state, in the order an execution moves through them. */
export const EXECUTION_STATES: readonly ExecutionState[] = ['QUEUED', 'DISPATCHED', 'RUNNING', 'SUCCEEDED', 'FAILED', 'CANCELLED', 'TIMED_OUT'];
export const TERMINAL_EXECUTION: ReadonlySet<ExecutionState> = new Set(['SUCCEEDED', 'FAILED', 'CANCELLED', 'TIMED_OUT']);
export const TERMINAL_TASK: ReadonlySet<TaskState> = new Set(['SUCCEEDED', 'FAILED', 'TIMED_OUT', 'CANCELLED', 'LOST', 'SKIPPED', 'UNKNOWN']);

export interface Task {
  /** Stable within the execution: the executor id for fan-out, `pool.<group>.<n>` for a pool task. */
  key: string;
  /** Fan-out: the executor it is for. Pool: whoever took it last ("" until then). */
  executor_id: string;
  executor_name: string;
  /** Pool tasks: the group whose pool runs it. */
  pool?: string;
  state: TaskState;
  /**
   * Claims made on the task: BeginTask's compare-and-swap PENDING → RUNNING is attempt n + 1.
   * It is also the claim's epoch: events of an older attempt never move the task.
   */
  attempts: number;
  /** The executor process (session) holding the current claim; a restarted executor is another. */
  claim_session?: string;
  /** Claims that ended because their executor was lost (bounded, see MAX_LOSSES). */
  losses?: number;
  /** Results of earlier attempts that arrived after the task had moved on (newest last, bounded). */
  late_results?: LateResult[];
  exit_code?: number;
  started_at_ms: number;
  finished_at_ms: number;
  reason: string;
  /** Batched rollouts: the wave the task belongs to (0 = all at once). */
  wave: number;
  /** Batched rollouts: true while its wave has not started (its job message is not sent yet). */
  held?: boolean;
  /** When its wave started (batched rollouts), for re-sending a job message lost in a crash. */
  released_at_ms?: number;
  /** --wait-offline: an offline executor's task may wait until this time, then it is SKIPPED. */
  wait_until_ms?: number;
  lock_token?: number;
}

export interface LateResult {
  attempt: number;
  executor_name: string;
  outcome: string;
  exit_code?: number;
  reason: string;
  at_ms: number;
}

export interface Execution {
  id: string;
  job: string;
  job_version: number;
  /** Non-secret arguments, defaults applied. */
  args: Record<string, string>;
  /** Names of the secret arguments given (values are kept encrypted, see secret_box). */
  secret_names: string[];
  /** The secret values, encrypted with the controller's secrets key; never plain text. */
  secret_box?: string;
  target: string;
  requester: string;
  state: ExecutionState;
  reason: string;
  created_at_ms: number;
  updated_at_ms: number;
  finished_at_ms: number;
  timeout_seconds: number;
  /** created_at + timeout: past it, whatever has not finished is TIMED_OUT. 0 = none. */
  deadline_ms: number;
  wait_offline_ms: number;
  /** Batched rollouts as asked (`"5"` or `"20%"`, "" = all at once); resolved at dispatch. */
  batch_spec?: string;
  max_failures_spec?: string;
  /** Resolved at dispatch from the specs and the number of fan-out tasks (0 = none). */
  batch_size: number;
  max_failures: number;
  /**
   * The controller process that last released tasks of it (and sends their job messages). If it
   * is gone while released tasks have not started, another replica sends them again.
   */
  dispatcher?: string;
  /**
   * The job pointer of its fan-out went out once, on core NATS, to every executor of this group
   * (FanoutMessage); the per-executor job messages follow as the fallback, for every task that
   * has not ended by then (fallbackTasks). Absent: per-executor messages only.
   */
  broadcast_group?: string;
  /** The definition as executed, kept only for batched rollouts (later waves are sent later). */
  definition?: JobDefinition;
  /** `sha256:<hex>` of each of the definition's files, from etcd when the execution was accepted. */
  file_digests?: Record<string, string>;
  tasks: Task[];
}

/** What executors report, over GRID_EVENTS. Identified by (execution, task, attempt, kind). */
export type TaskEventKind = 'waiting' | 'started' | 'retrying' | 'finished';

export interface TaskEvent {
  execution_id: string;
  task_key: string;
  executor_id: string;
  executor_name: string;
  attempt: number;
  kind: TaskEventKind;
  at_ms: number;
  /** For finished / retrying. */
  outcome?: 'succeeded' | 'failed' | 'timed_out' | 'cancelled';
  exit_code?: number;
  reason?: string;
  /** started: the fencing token of the serialize lock it holds. */
  lock_token?: number;
  /**
   * finished: the task's started event, when the task ended before that was sent on its own.
   * Applied as that event first, then the finished one: the same as the two arriving apart.
   */
  started?: StartedPart;
}

/** What a started event says beyond the task and attempt it shares with its finished event. */
export interface StartedPart {
  at_ms: number;
  lock_token?: number;
  reason?: string;
}

export function eventId(e: Pick<TaskEvent, 'execution_id' | 'task_key' | 'attempt' | 'kind'>): string {
  return `${e.execution_id}.${e.task_key}.${e.attempt}.${e.kind}`;
}

export function isTerminalExecution(s: ExecutionState): boolean {
  return TERMINAL_EXECUTION.has(s);
}

export function isTerminalTask(s: TaskState): boolean {
  return TERMINAL_TASK.has(s);
}
