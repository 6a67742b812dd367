// How grid-cli shows executions: state names without the enum prefix, the status view (overall
// fields and one row per task), the list table, and the JSON shapes (with the `workers` map).

import { ValidationError } from '../errors.js';
import { ExecutionState, TaskState, type Execution, type Task } from '../gen/grid/v1/types.js';
import { didYouMean } from '../util/suggest.js';
import { plain, type Paint } from './colour.js';
import { duration, table, time } from './output.js';
import type { Shown } from './render.js';
import { executionJson, executionStateName, statusJson, taskStateName } from '../api/json.js';

// The JSON shapes are shared with the HTTP door.
export { executionJson, executionStateName, statusJson, taskStateName, workersMap, type WorkerJson } from '../api/json.js';

/** The names --state takes, in the order of the enum. */
export const EXECUTION_STATE_NAMES = ['QUEUED', 'DISPATCHED', 'RUNNING', 'SUCCEEDED', 'FAILED', 'CANCELLED', 'TIMED_OUT'] as const;

const TERMINAL_EXECUTION = new Set<ExecutionState>([
  ExecutionState.EXECUTION_STATE_SUCCEEDED,
  ExecutionState.EXECUTION_STATE_FAILED,
  ExecutionState.EXECUTION_STATE_CANCELLED,
  ExecutionState.EXECUTION_STATE_TIMED_OUT,
]);

const TERMINAL_TASK = new Set<TaskState>([
  TaskState.TASK_STATE_SUCCEEDED,
  TaskState.TASK_STATE_FAILED,
  TaskState.TASK_STATE_TIMED_OUT,
  TaskState.TASK_STATE_CANCELLED,
  TaskState.TASK_STATE_LOST,
  TaskState.TASK_STATE_SKIPPED,
  TaskState.TASK_STATE_UNKNOWN,
]);

/** Task states that count as "failed" in summaries and progress. */
const FAILED_TASK = new Set<TaskState>([TaskState.TASK_STATE_FAILED, TaskState.TASK_STATE_TIMED_OUT, TaskState.TASK_STATE_LOST, TaskState.TASK_STATE_UNKNOWN]);

export function isTerminalExecution(s: ExecutionState): boolean {
  return TERMINAL_EXECUTION.has(s);
}

export function isTerminalTask(s: TaskState): boolean {
  return TERMINAL_TASK.has(s);
}

export function isFailedTask(s: TaskState): boolean {
  return FAILED_TASK.has(s);
}

/** "succeeded", "RUNNING", "timed-out", "EXECUTION_STATE_FAILED" → the enum; anything else → ValidationError. */
export function parseExecutionState(text: string, flag = '--state'): ExecutionState {
  const norm = text.trim().toUpperCase().replace(/-/g, '_').replace(/^EXECUTION_STATE_/, '');
  const i = (EXECUTION_STATE_NAMES as readonly string[]).indexOf(norm);
  if (i < 0) {
    const hint = didYouMean(norm, EXECUTION_STATE_NAMES);
    throw new ValidationError(`${flag}: ${JSON.stringify(text)} is not one of ${EXECUTION_STATE_NAMES.join(', ')}${hint}`);
  }
  return ExecutionState[`EXECUTION_STATE_${norm}` as keyof typeof ExecutionState] as ExecutionState;
}

/** The name a task is shown under: its executor, or its key while a pool task is not yet taken. */
export function taskName(t: Task): string {
  if (t.executorName) return t.executorName;
  if (t.executorId) return t.executorId;
  return t.key ? `(${t.key})` : '(unassigned)';
}

/** "3/3 ok", "2/3 ok, 1 failed", "0/4 ok, 1 running, 3 pending"; "-" without tasks. */
export function taskSummary(tasks: Task[]): string {
  if (tasks.length === 0) return '-';
  const n = (pred: (t: Task) => boolean) => tasks.filter(pred).length;
  const ok = n((t) => t.state === TaskState.TASK_STATE_SUCCEEDED);
  const parts = [`${ok}/${tasks.length} ok`];
  const more: Array<[string, number]> = [
    ['failed', n((t) => isFailedTask(t.state))],
    ['cancelled', n((t) => t.state === TaskState.TASK_STATE_CANCELLED)],
    ['skipped', n((t) => t.state === TaskState.TASK_STATE_SKIPPED)],
    ['running', n((t) => t.state === TaskState.TASK_STATE_RUNNING)],
    ['pending', n((t) => !isTerminalTask(t.state) && t.state !== TaskState.TASK_STATE_RUNNING)],
  ];
  for (const [word, count] of more) if (count > 0) parts.push(`${count} ${word}`);
  return parts.join(', ');
}

/** How long the execution has taken (so far, when it is not finished). */
export function executionDuration(e: Execution, now: number): string {
  if (!e.createdAtMs) return '-';
  if (e.finishedAtMs) return duration(Math.max(0, e.finishedAtMs - e.createdAtMs));
  return `${duration(Math.max(0, now - e.createdAtMs))} so far`;
}

function taskDuration(t: Task, now: number): string {
  if (!t.startedAtMs) return '-';
  if (t.finishedAtMs) return duration(Math.max(0, t.finishedAtMs - t.startedAtMs));
  return isTerminalTask(t.state) ? '-' : `${duration(Math.max(0, now - t.startedAtMs))} so far`;
}

/** `grid-cli status` in table mode: the execution's fields, then one row per task; `paint` colours the states. */
export function statusText(e: Execution, now: number = Date.now(), paint: Paint = plain): string {
  const fields: Array<[string, string]> = [
    ['Execution', e.id],
    ['State', paint(executionStateName(e.state))],
    ['Job', e.jobVersion ? `${e.job} (version ${e.jobVersion})` : e.job],
    ['Target', e.target || '-'],
    ['Requester', e.requester || '-'],
    ['Created', time(e.createdAtMs)],
    ['Duration', executionDuration(e, now)],
    ['Reason', e.reason || '-'],
  ];
  const args = Object.entries(e.args ?? {});
  if (args.length) fields.push(['Args', args.map(([k, v]) => `${k}=${v}`).join(', ')]);
  if (e.batchSize) fields.push(['Batch size', String(e.batchSize)]);
  if (e.maxFailures) fields.push(['Max failures', String(e.maxFailures)]);
  if (e.timeoutSeconds) fields.push(['Timeout', `${e.timeoutSeconds}s`]);
  const width = Math.max(...fields.map(([k]) => k.length)) + 1;
  let out = fields.map(([k, v]) => `${(k + ':').padEnd(width)} ${v}`).join('\n');
  out += '\n\n';
  out += e.tasks.length ? tasksTable(e, now, paint) : isTerminalExecution(e.state) ? 'no tasks: it never reached an executor' : 'no tasks yet';
  return out;
}

/** One row per task: EXECUTOR, [WAVE,] STATE, EXIT, ATTEMPTS, STARTED, DURATION, REASON. */
export function tasksTable(e: Execution, now: number = Date.now(), paint: Paint = plain): string {
  const waves = e.batchSize > 0;
  const headers = ['EXECUTOR', ...(waves ? ['WAVE'] : []), 'STATE', 'EXIT', 'ATTEMPTS', 'STARTED', 'DURATION', 'REASON'];
  const tasks = waves ? [...e.tasks].sort((a, b) => a.wave - b.wave) : e.tasks;
  return table(
    headers,
    tasks.map((t) => [
      taskName(t),
      ...(waves ? [t.wave] : []),
      paint(taskStateName(t.state)),
      t.exitCode ?? '-',
      t.attempts,
      t.startedAtMs ? time(t.startedAtMs) : '-',
      taskDuration(t, now),
      t.reason,
    ]),
  );
}

/** `grid-cli executions list` in table mode; `wide` adds the job's version, target, requester and reason; `paint` colours the states. */
export function executionsTable(list: Execution[], now: number = Date.now(), wide = false, paint: Paint = plain): string {
  const base = (e: Execution) => [e.id, e.job, paint(executionStateName(e.state)), taskSummary(e.tasks), time(e.createdAtMs), executionDuration(e, now)];
  if (!wide) return table(['ID', 'JOB', 'STATE', 'TASKS', 'CREATED', 'DURATION'], list.map(base));
  return table(
    ['ID', 'JOB', 'STATE', 'TASKS', 'CREATED', 'DURATION', 'VERSION', 'TARGET', 'REQUESTER', 'REASON'],
    list.map((e) => [...base(e), e.jobVersion || undefined, e.target, e.requester, e.reason]),
  );
}

/** `grid-cli executions list` in every format; `empty` is what the table says of an empty page. */
export function executionsShown(list: Execution[], empty: string, paint: Paint = plain): Shown {
  return {
    data: list.map(executionJson),
    names: list.map((e) => e.id),
    text: () => (list.length ? executionsTable(list, Date.now(), false, paint) : empty),
    wide: () => (list.length ? executionsTable(list, Date.now(), true, paint) : empty),
  };
}

/** `grid-cli status` (and execute --wait's last word) in every format. */
export function statusShown(e: Execution, paint: Paint = plain): Shown {
  return { data: statusJson(e), names: [e.id], text: () => statusText(e, Date.now(), paint) };
}
