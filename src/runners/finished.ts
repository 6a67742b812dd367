// A task that ended before it started (cancelled early, a command that cannot be built): it
// still looks like a RunningTask, so the executor handles every outcome the same way.

import type { LogSink, RunningTask, TaskResult } from './runner.js';

/** Writes an optional system line, finishes the sink, and returns a task already over. */
export function finishedTask(result: TaskResult, logs: LogSink, note?: string): RunningTask {
  if (note) logs.write('system', Buffer.from(`[grid: ${note}]\n`, 'utf8'));
  logs.finish?.();
  const done = Promise.resolve(result);
  return {
    wait: () => done,
    stop: async () => {},
  };
}
