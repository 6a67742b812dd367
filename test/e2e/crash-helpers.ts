// Helpers shared by the pipeline crash tests (pipeline-crash*.test.ts): a host job whose every
// run leaves countable side effects, reading those side effects back, and polling executions.

import { existsSync, readFileSync } from 'node:fs';
import { setTimeout as delay } from 'node:timers/promises';
import { GridClient } from '../../src/client/client.js';
import { ExecutionState, TaskState, type Execution, type Task } from '../../src/gen/grid/v1/types.js';
import { groupAlive } from '../../src/runners/host/group.js';
import { TOKENS } from '../harness/processes.js';
import { testClientTls } from '../harness/grpc-tls.js';

/**
 * A host job that appends `<execution> <attempt> <executor> started <pgid>` to $OUT, sleeps $SECS
 * seconds, then appends `<execution> <attempt> <executor> done`. `$$` is the shell's pid, which
 * is the task's process-group id (the host runner starts each task as a group leader).
 */
export function sideEffectJob(name: string): Record<string, unknown> {
  return {
    name,
    description: 'crash test: counts its runs in a file',
    shell: [
      'echo "$GRID_EXECUTION_ID $GRID_ATTEMPT $GRID_EXECUTOR started $$" >> "$OUT"',
      'sleep "$SECS"',
      'echo "$GRID_EXECUTION_ID $GRID_ATTEMPT $GRID_EXECUTOR done" >> "$OUT"',
    ].join('\n'),
    timeout_seconds: 300,
    env_vars: {
      secrets: [],
      args: [
        { name: 'OUT', description: 'file to append to', required: true },
        { name: 'SECS', description: 'how long to sleep', required: false, default: '1' },
      ],
    },
  };
}

export async function createJob(client: GridClient, def: Record<string, unknown>): Promise<void> {
  await client.ctl.createJob({ definitionJson: JSON.stringify(def), replace: false, expectedVersion: 0 });
}

export interface Run {
  execution: string;
  attempt: number;
  executor: string;
  started: boolean;
  done: boolean;
  pgid?: number;
}

/** The side-effect lines of `file`, one Run per (execution, attempt, executor). */
export function readRuns(file: string): Run[] {
  if (!existsSync(file)) return [];
  const runs = new Map<string, Run>();
  for (const line of readFileSync(file, 'utf8').split('\n')) {
    const [execution, attempt, executor, what, pgid] = line.trim().split(' ');
    if (!execution || !attempt || !executor || !what) continue;
    const k = `${execution} ${attempt} ${executor}`;
    const r = runs.get(k) ?? { execution, attempt: Number(attempt), executor, started: false, done: false };
    if (what === 'started') Object.assign(r, { started: true, pgid: Number(pgid) });
    if (what === 'done') r.done = true;
    runs.set(k, r);
  }
  return [...runs.values()];
}

export function runsOf(file: string, execution: string): Run[] {
  return readRuns(file).filter((r) => r.execution === execution);
}

export const xstate = (x: Execution): string => (ExecutionState[x.state] ?? '?').replace('EXECUTION_STATE_', '');
export const tstate = (t: Task): string => (TaskState[t.state] ?? '?').replace('TASK_STATE_', '');
export const TERMINAL = new Set(['SUCCEEDED', 'FAILED', 'CANCELLED', 'TIMED_OUT']);

/** A compact view of an execution for failure messages. */
export function brief(x: Execution | undefined): string {
  if (!x) return '(none)';
  return JSON.stringify({
    id: x.id,
    state: xstate(x),
    reason: x.reason,
    tasks: x.tasks.map((t) => ({ key: t.key, executor: t.executorName, state: tstate(t), attempts: t.attempts, exit: t.exitCode, reason: t.reason })),
  });
}

export function operatorClient(address: string): GridClient {
  return new GridClient({ address, token: TOKENS.operator, timeoutMs: 5_000, tls: testClientTls() });
}

export function adminClient(address: string): GridClient {
  return new GridClient({ address, token: TOKENS.admin, timeoutMs: 5_000, tls: testClientTls() });
}

/**
 * Polls `probe` every `everyMs` until `pred` holds and returns that value; a probe that throws
 * (a controller restarting) counts as "not yet". Fails with the last value after `timeoutMs`.
 */
export async function waitFor<T>(
  what: string,
  probe: () => Promise<T>,
  pred: (v: T) => boolean,
  timeoutMs: number,
  everyMs = 200,
  show: (v: T) => string = (v) => JSON.stringify(v),
): Promise<T> {
  const until = Date.now() + timeoutMs;
  let last: string = '(no answer yet)';
  for (;;) {
    try {
      const v = await probe();
      if (pred(v)) return v;
      last = show(v);
    } catch (err) {
      last = `error: ${(err as Error).message}`;
    }
    if (Date.now() > until) throw new Error(`${what}: not within ${timeoutMs} ms; last: ${last}`);
    await delay(everyMs);
  }
}

/** Kills a task's process group left behind by a killed executor (test cleanup). */
export function killGroup(pgid: number | undefined): void {
  if (!pgid || pgid <= 1) return;
  try {
    process.kill(-pgid, 'SIGKILL');
  } catch {
    // gone already
  }
}

export { groupAlive };
