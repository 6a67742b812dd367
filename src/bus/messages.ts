// The messages that cross NATS between controller and executors. JSON, versioned by field
// presence; every message is small (no secrets, no logs in job messages).

import type { TaskEvent } from '../domain/execution.js';

/**
 * GRID_REQUESTS: a record an older version left QUEUED, re-published by the sweeper for the
 * dispatcher. Msg-Id = execution id. (Older versions also sent the definition along.)
 */
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

/**
 * Reads a job message: the pointer, and the names of any other fields it carried (which are
 * ignored). Throws when it is no pointer, or lacks the task's Msg-Id: the controller sends every
 * job message with it and the stream deduplicates on it, so one without it was not sent by one.
 */
export function readJobMessage(data: Uint8Array, msgId: string): { job: JobMessage; ignored: string[] } {
  const raw = decode<Record<string, unknown>>(data);
  if (typeof raw.execution_id !== 'string' || typeof raw.task_key !== 'string') throw new Error('execution_id or task_key missing');
  const job = { execution_id: raw.execution_id, task_key: raw.task_key };
  if (msgId !== jobMsgId(job.execution_id, job.task_key)) throw new Error(`its Msg-Id is ${JSON.stringify(msgId)}, not the task's`);
  return { job, ignored: Object.keys(raw).filter((k) => k !== 'execution_id' && k !== 'task_key') };
}

/**
 * Core NATS, on subjects.fanout(group): a fan-out's job pointer, sent once for every executor of
 * the group. Each executor that hears it asks BeginTasks for its own task of the execution (a
 * fan-out task's key is its executor's id); the record says whether there is one. Best effort: a
 * copy that is lost is made up by the per-executor message on GRID_JOBS, which follows for every
 * task not ended after a short delay, and a copy too many is refused or answered by the claim.
 */
export interface FanoutMessage {
  execution_id: string;
}

/** Reads a fan-out pointer; throws when it is none. Anything else it carries is ignored. */
export function readFanoutMessage(data: Uint8Array): FanoutMessage {
  const raw = decode<Record<string, unknown>>(data);
  if (typeof raw?.execution_id !== 'string' || raw.execution_id === '') throw new Error('execution_id missing');
  return { execution_id: raw.execution_id };
}

/**
 * GRID_REQUESTS, on subjects.submitExecute: an execution request of a NATS client, for the
 * intake. The body is the API's ExecuteRequest in its JSON form; these headers go with it, and
 * Nats-Msg-Id (the request's id: the stream drops a copy sent again within its dedup window).
 * The answer is not JetStream's own reply (that one acknowledges the publish): it is a
 * SubmitAnswer, sent on core NATS to the inbox in Grid-Reply-To.
 */
export const SUBMIT_HEADERS = {
  /** `Bearer <token>`, checked as every door checks it. */
  authorization: 'Authorization',
  /** Where the answer goes: an inbox (`_INBOX…`) of the requester's connection. */
  replyTo: 'Grid-Reply-To',
  msgId: 'Nats-Msg-Id',
} as const;

/**
 * The intake's answer to one request. `waiting`: it cannot be handled now (etcd does not
 * answer, say); it stays queued and is tried again, and a final answer follows.
 */
export type SubmitAnswer =
  | { request_id: string; answer: 'accepted'; response: unknown }
  | { request_id: string; answer: 'refused'; error: { kind: string; message: string } }
  | { request_id: string; answer: 'waiting'; reason: string; retry_in_ms: number };

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
