// Execution records for tests that write them straight to etcd (the execution store, the
// controller's watches): the fields every record has, with values that mean nothing in
// particular, and what a test cares about laid over them.

import type { Execution } from '../../src/domain/execution.js';

export function executionRecord(id: string, over: Partial<Execution> = {}): Execution {
  return {
    id, job: 'j', job_version: 1, args: {}, secret_names: [], target: 'all', requester: 'me', state: 'RUNNING', reason: '',
    created_at_ms: 1, updated_at_ms: 1, finished_at_ms: 0, timeout_seconds: 0, deadline_ms: 0, wait_offline_ms: 0, batch_size: 0, max_failures: 0,
    tasks: [],
    ...over,
  };
}

/** A RUNNING execution of job "j" with no tasks, its `reason` as given. */
export function runningExecution(id: string, reason = 'step 0'): Execution {
  return executionRecord(id, { reason });
}
