// Records that tests write straight to etcd when they need one in a given state without running
// anything: the controller's use-cases read them like any other.

import type { Execution } from '../../src/domain/execution.js';

/** A RUNNING execution of job "j" with no tasks, its `reason` as given. */
export function runningExecution(id: string, reason = 'step 0'): Execution {
  return {
    id, job: 'j', job_version: 1, args: {}, secret_names: [], target: 'all', requester: 'me', state: 'RUNNING', reason,
    created_at_ms: 1, updated_at_ms: 1, finished_at_ms: 0, timeout_seconds: 0, deadline_ms: 0, wait_offline_ms: 0, batch_size: 0, max_failures: 0,
    tasks: [],
  };
}
