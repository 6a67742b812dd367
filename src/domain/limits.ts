// GRID's limits on what one request may make the controller hold, store or send, and the rules
// that apply them (pure). Each refusal is one line naming the value and the limit with its
// config key, e.g. `args.DATABASE: is 2.1 MiB; the limit is 64 KiB (limits.arg_bytes)`.

import { LimitExceededError, ValidationError, type Problem } from '../errors.js';
import { sizeAndLimit } from '../util/bytes.js';

const KiB = 1024;
const MiB = 1024 * KiB;

/** The controller config's `limits` section. */
export interface Limits {
  /** Bytes of one argument's value (secrets too). */
  arg_bytes: number;
  /** Bytes of all the arguments of one execution, names and values, secrets included. */
  execution_args_bytes: number;
  /** Bytes of a job definition as sent (its metadata.json). */
  definition_bytes: number;
  /** Tasks in one execution: a fan-out makes one per executor it reaches. */
  tasks_per_execution: number;
  /** GetLogs and WatchExecution streams one token may have open at once (per controller process). */
  streams_per_token: number;
  /** Groups one executor may join (each is a pool consumer per runner on GRID_JOBS). */
  groups_per_executor: number;
  /** Bytes of one execution's write to etcd: its record and its index entry. */
  record_bytes: number;
  /** GRID_JOBS: the largest message (job messages are pointers of about 100 bytes). */
  job_message_bytes: number;
  /** GRID_JOBS: bytes and messages waiting in all; beyond them a send is refused (and retried), never a waiting one dropped. */
  jobs_stream_bytes: number;
  jobs_stream_messages: number;
}

export type LimitKey = keyof Limits;

export const LIMIT_DEFAULTS: Readonly<Limits> = {
  arg_bytes: 64 * KiB,
  execution_args_bytes: 256 * KiB,
  definition_bytes: 256 * KiB,
  tasks_per_execution: 10_000,
  streams_per_token: 64,
  groups_per_executor: 64,
  // etcd's own default request limit (--max-request-bytes).
  record_bytes: 1.5 * MiB,
  job_message_bytes: 16 * KiB,
  jobs_stream_bytes: 1024 * MiB,
  jobs_stream_messages: 1_000_000,
};

/** `is 2.1 MiB; the limit is 64 KiB (limits.arg_bytes)`. */
export function overBytes(size: number, key: LimitKey, limit: number): string {
  const s = sizeAndLimit(size, limit);
  return `is ${s.size}; the limit is ${s.limit} (limits.${key})`;
}

/** `the limit is 10,000 (limits.tasks_per_execution)`. */
function countLimit(key: LimitKey, limit: number): string {
  return `the limit is ${limit.toLocaleString('en-US')} (limits.${key})`;
}

const bytes = (s: string): number => Buffer.byteLength(s, 'utf8');

/**
 * Execute's arguments (secrets included) against arg_bytes and execution_args_bytes. Checked
 * before anything else looks at the values: a pattern is never run over megabytes. Names and
 * sizes only, never a value: it may be a secret.
 */
export function argSizeProblems(given: Record<string, string>, l: Pick<Limits, 'arg_bytes' | 'execution_args_bytes'>): Problem[] {
  const problems: Problem[] = [];
  let total = 0;
  for (const [name, value] of Object.entries(given)) {
    const size = typeof value === 'string' ? bytes(value) : 0;
    total += bytes(name) + size;
    if (size > l.arg_bytes) problems.push({ path: `args.${name}`, message: overBytes(size, 'arg_bytes', l.arg_bytes) });
  }
  // The sum is news only when no argument is over its own limit already.
  if (problems.length === 0 && total > l.execution_args_bytes) {
    problems.push({ path: 'args', message: `all together (names and values) ${overBytes(total, 'execution_args_bytes', l.execution_args_bytes)}` });
  }
  return problems;
}

/** A definition's JSON against definition_bytes, before it is parsed. */
export function checkDefinitionSize(definitionJson: string, l: Pick<Limits, 'definition_bytes'>): void {
  const size = bytes(definitionJson ?? '');
  if (size > l.definition_bytes) throw new ValidationError([{ path: 'definition', message: overBytes(size, 'definition_bytes', l.definition_bytes) }]);
}

/** The tasks a target resolved to against tasks_per_execution; refused before anything is written. */
export function checkTaskCount(target: string, count: number, l: Pick<Limits, 'tasks_per_execution'>): void {
  if (count <= l.tasks_per_execution) return;
  throw new LimitExceededError(
    'tasks_per_execution',
    `target ${target} makes ${count.toLocaleString('en-US')} tasks; ${countLimit('tasks_per_execution', l.tasks_per_execution)}: narrow the target (group:G, node:NAME) or raise the limit`,
  );
}

/** An executor's groups against groups_per_executor. */
export function groupCountProblem(groups: string[], l: Pick<Limits, 'groups_per_executor'>): Problem | undefined {
  if (groups.length <= l.groups_per_executor) return undefined;
  return { path: 'groups', message: `${groups.length} groups; ${countLimit('groups_per_executor', l.groups_per_executor)}` };
}

/** A token that has streams_per_token streams open already. */
export function tooManyStreams(principal: string, open: number, l: Pick<Limits, 'streams_per_token'>): LimitExceededError {
  return new LimitExceededError(
    'streams_per_token',
    `${JSON.stringify(principal)} has ${open} GetLogs and WatchExecution streams open; ${countLimit('streams_per_token', l.streams_per_token)}; end one (a grid-cli getlogs, execute --wait or --follow still running) or raise the limit`,
    { retryable: true },
  );
}

/** Why an execution record was not written: larger than record_bytes. */
export function recordOverLimit(size: number, limit: number): string {
  return `execution record ${overBytes(size, 'record_bytes', limit)}`;
}

/** Why an execution record was not written: etcd refused it as too large, though within record_bytes. */
export function recordRefusedByEtcd(size: number, limit: number): string {
  const s = sizeAndLimit(size, limit);
  return `execution record is ${s.size}, more than etcd takes in one request (its --max-request-bytes); limits.record_bytes (${s.limit}) should be below that`;
}
