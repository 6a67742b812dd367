// The messages that cross NATS between controller and executors. JSON, versioned by field
// presence; every message is small (no secrets, no logs in job messages).

import type { TaskEvent } from '../domain/execution.js';

/** GRID_REQUESTS: an accepted execution waiting for the dispatcher. Msg-Id = execution id. */
export interface RequestMessage {
  execution_id: string;
}

/**
 * GRID_JOBS: a pointer to one task. What runs comes from BeginTask(s), from the state of record;
 * anything else a message carries is ignored. Msg-Id = jobMsgId(): within the stream's dedup
 * window there is one message per task, so a re-dispatch after a crash is deduplicated, and an
 * executor takes only messages that carry it. The attempt number is the delivery count.
 */
export interface JobMessage {
  execution_id: string;
  task_key: string;
}

export function jobMsgId(executionId: string, taskKey: string): string {
  return `${executionId}.${taskKey}`;
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

/** Core NATS (not JetStream), to each executor that may be running a task of it: subjects.cancel(executorId). */
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
