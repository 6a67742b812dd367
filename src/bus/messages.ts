// The messages that cross NATS between controller and executors. JSON, versioned by field
// presence; every message is small (no secrets, no logs in job messages).

import type { JobDefinition } from '../domain/job.js';
import type { TaskEvent } from '../domain/execution.js';

/** GRID_REQUESTS: an accepted execution waiting for the dispatcher. Msg-Id = execution id. */
export interface RequestMessage {
  execution_id: string;
}

/**
 * GRID_JOBS: one task to run. Msg-Id = `<execution>.<task key>` so a re-dispatch after a crash
 * is deduplicated. The attempt number is the message's delivery count.
 */
export interface JobMessage {
  execution_id: string;
  task_key: string;
  /** The definition as it was when executed (a later replace does not change a running execution). */
  definition: JobDefinition;
  job_version: number;
  args: Record<string, string>;
  /** True when the executor must fetch secret values with BeginTask before running. */
  has_secrets: boolean;
  /** Absolute deadline (execution timeout), 0 = none. */
  deadline_ms: number;
  /** Per-task timeout from the definition, in ms, 0 = none. */
  timeout_ms: number;
  max_attempts: number;
  backoff_ms: number;
}

/** GRID_EVENTS: see TaskEvent in domain/execution.ts. Msg-Id = eventId(event). */
export type EventMessage = TaskEvent;

/** GRID_LOGS headers on each log chunk; the body is the raw bytes. */
export const LOG_HEADERS = {
  stream: 'Grid-Stream',
  task: 'Grid-Task',
  executorName: 'Grid-Executor-Name',
  attempt: 'Grid-Attempt',
} as const;

/** Core NATS (not JetStream) broadcast on subjects.cancel(id). */
export interface CancelMessage {
  execution_id: string;
  reason: 'cancelled' | 'timed_out';
}

const enc = new TextEncoder();
const dec = new TextDecoder();

export function encode(value: unknown): Uint8Array {
  return enc.encode(JSON.stringify(value));
}

export function decode<T>(data: Uint8Array): T {
  return JSON.parse(dec.decode(data)) as T;
}
