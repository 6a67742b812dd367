// The noop runner, for tests and benchmarks: no process, one log line, an exit code and a delay
// chosen through the arguments GRID_NOOP_EXIT and GRID_NOOP_SLEEP_MS. Honours timeout and cancel.

import type { LogSink, Runner, RunningTask, TaskResult, TaskSpec } from '../runner.js';

export interface NoopRunnerOptions {
  /** Reported name; "noop" unless a test pretends to be another runner. */
  name?: string;
}

export class NoopRunner implements Runner {
  readonly name: string;

  constructor(opts: NoopRunnerOptions = {}) {
    this.name = opts.name ?? 'noop';
  }

  async start(spec: TaskSpec, logs: LogSink, signal: AbortSignal): Promise<RunningTask> {
    const setting = (key: string): number => {
      const raw = spec.args[key] ?? spec.env[key];
      const n = raw === undefined ? 0 : Number(raw);
      return Number.isFinite(n) ? Math.max(0, Math.trunc(n)) : 0;
    };
    const exitCode = setting('GRID_NOOP_EXIT');
    const sleepMs = setting('GRID_NOOP_SLEEP_MS');

    let settle!: (r: TaskResult) => void;
    const done = new Promise<TaskResult>((resolve) => (settle = resolve));
    let over = false;
    const end = (result: TaskResult): void => {
      if (over) return;
      over = true;
      clearTimeout(sleepTimer);
      clearTimeout(deadline);
      signal.removeEventListener('abort', onAbort);
      logs.finish?.();
      settle(result);
    };
    const stop = (reason: 'cancelled' | 'timed_out'): void =>
      end({ outcome: reason, reason: reason === 'cancelled' ? 'cancelled' : `timed out after ${spec.timeoutMs / 1000}s` });
    const onAbort = (): void => stop('cancelled');

    logs.write('stdout', Buffer.from(`noop: ${spec.definition.name} attempt ${spec.attempt} on ${spec.executorName}\n`, 'utf8'));
    const sleepTimer = setTimeout(
      () =>
        end(
          exitCode === 0
            ? { outcome: 'succeeded', exitCode: 0, reason: 'exit code 0' }
            : { outcome: 'failed', exitCode, reason: `exit code ${exitCode}` },
        ),
      sleepMs,
    );
    const deadline = spec.timeoutMs > 0 ? setTimeout(() => stop('timed_out'), spec.timeoutMs) : undefined;
    signal.addEventListener('abort', onAbort, { once: true });
    if (signal.aborted) onAbort();

    return {
      wait: () => done,
      stop: async (reason) => {
        stop(reason);
        await done;
      },
    };
  }
}
