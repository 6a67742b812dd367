// Views ↔ proto conversions. Pure functions; the proto types are ts-proto's. What a caller may
// see (secrets shown as such) is decided by the use-cases' views (views.ts), not here.

import type { ExecutorState, ExecutorView } from '../../../domain/executor.js';
import type { ExecutionState as ExecutionStateName } from '../../../domain/execution.js';
import type { JobDefinition, StoredJob } from '../../../domain/job.js';
import type { ExecutionView, TaskView } from '../../views.js';
import {
  ExecutionState as PbExecutionState,
  ExecutorState as PbExecutorState,
  TaskState as PbTaskState,
  type Execution as PbExecution,
  type Task as PbTask,
  type Executor as PbExecutor,
  type JobDefinition as PbJobDefinition,
  type JobInfo as PbJobInfo,
} from '../../../gen/grid/v1/types.js';

export function jobDefinitionToPb(d: JobDefinition): PbJobDefinition {
  return {
    name: d.name,
    description: d.description,
    imageName: d.image_name ?? '',
    author: d.author ?? '',
    contributors: d.contributors ?? [],
    organization: d.organization ?? '',
    authorizedGroups: d.authorized_groups,
    envVars: {
      secrets: d.env_vars.secrets.map((s) => ({ name: s.name, description: s.description, required: !!s.required })),
      args: d.env_vars.args.map((a) => ({
        name: a.name,
        description: a.description,
        required: a.required,
        type: a.type,
        values: a.values ?? [],
        default: a.default,
        pattern: a.pattern ?? '',
      })),
    },
    runner: d.runner,
    command: d.command ?? [],
    shell: d.shell ?? '',
    timeoutSeconds: d.timeout_seconds ?? 0,
    retries: d.retries ? { maxAttempts: d.retries.max_attempts, backoffSeconds: d.retries.backoff_seconds } : undefined,
    target: d.target ?? '',
    serialize: d.serialize ?? '',
    files: d.files.map((f) => ({ name: f.name, path: f.path, template: f.template, mode: f.mode ?? '' })),
    allowEnv: d.allow_env ?? [],
  };
}

export function jobInfoToPb(j: StoredJob): PbJobInfo {
  return {
    definition: jobDefinitionToPb(j.definition),
    version: j.version,
    createdBy: j.created_by,
    createdAtMs: j.created_at_ms,
    updatedBy: j.updated_by,
    updatedAtMs: j.updated_at_ms,
    definitionJson: JSON.stringify(j.definition),
  };
}

export function executorStateToPb(s: ExecutorState): PbExecutorState {
  return PbExecutorState[`EXECUTOR_STATE_${s}`];
}

export function executorToPb(e: ExecutorView): PbExecutor {
  return {
    id: e.id,
    name: e.name,
    groups: e.groups,
    labels: e.labels,
    runners: e.runners,
    concurrency: e.concurrency,
    version: e.version,
    state: executorStateToPb(e.state),
    registeredAtMs: e.registered_at_ms,
    lastSeenAtMs: e.last_seen_at_ms,
    runningTasks: e.running_tasks,
    load: e.load,
    pingIntervalSeconds: e.ping_interval_seconds,
  };
}

const EXECUTION_STATES: ExecutionStateName[] = ['QUEUED', 'DISPATCHED', 'RUNNING', 'SUCCEEDED', 'FAILED', 'CANCELLED', 'TIMED_OUT'];

export function executionStateToPb(s: ExecutionStateName): PbExecutionState {
  return PbExecutionState[`EXECUTION_STATE_${s}`];
}

/** UNSPECIFIED → undefined (no filter). */
export function executionStateFromPb(s: PbExecutionState): ExecutionStateName | undefined {
  return EXECUTION_STATES.find((n) => PbExecutionState[`EXECUTION_STATE_${n}`] === s);
}

export function executionToPb(x: ExecutionView): PbExecution {
  return {
    id: x.id,
    job: x.job,
    jobVersion: x.job_version,
    args: x.args,
    target: x.target,
    requester: x.requester,
    state: executionStateToPb(x.state),
    reason: x.reason,
    createdAtMs: x.created_at_ms,
    updatedAtMs: x.updated_at_ms,
    finishedAtMs: x.finished_at_ms,
    timeoutSeconds: x.timeout_seconds,
    tasks: x.tasks.map(taskToPb),
    batchSize: x.batch_size,
    maxFailures: x.max_failures,
    waitOfflineMs: x.wait_offline_ms,
  };
}

function taskToPb(t: TaskView): PbTask {
  return {
    executorId: t.executor_id,
    executorName: t.executor_name,
    state: PbTaskState[`TASK_STATE_${t.state}`],
    exitCode: t.exit_code,
    attempts: t.attempts,
    startedAtMs: t.started_at_ms,
    finishedAtMs: t.finished_at_ms,
    reason: t.reason,
    wave: t.wave,
    key: t.key,
    lockToken: t.lock_token,
    lateResults: t.late_results.map((r) => ({ attempt: r.attempt, executorName: r.executor_name, outcome: r.outcome, exitCode: r.exit_code, reason: r.reason, atMs: r.at_ms })),
  };
}
