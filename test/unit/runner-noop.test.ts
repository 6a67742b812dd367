import { describe, expect, it } from 'vitest';
import type { JobDefinition } from '../../src/domain/job.js';
import { NoopRunner } from '../../src/runners/noop/index.js';
import { taskOutput } from '../../src/runners/output.js';
import type { LogSink, LogStream, TaskSpec } from '../../src/runners/runner.js';

class Collect implements LogSink {
  chunks: Array<{ stream: LogStream; text: string }> = [];
  finished = 0;
  write(stream: LogStream, data: Uint8Array): void {
    this.chunks.push({ stream, text: Buffer.from(data).toString('utf8') });
  }
  finish(): void {
    this.finished++;
  }
}

function spec(args: Record<string, string> = {}, timeoutMs = 0): TaskSpec {
  const definition: JobDefinition = {
    name: 'bench',
    description: '',
    authorized_groups: [],
    env_vars: { secrets: [], args: [] },
    runner: 'host',
    files: [],
  };
  return { executionId: 'E1', executorId: 'X1', executorName: 'node-1', attempt: 1, definition, args, secrets: {}, env: {}, timeoutMs };
}

describe('NoopRunner', () => {
  it('succeeds at once with one log line', async () => {
    const out = new Collect();
    const task = await new NoopRunner().start(spec(), out, new AbortController().signal);
    expect(await task.wait()).toEqual({ outcome: 'succeeded', exitCode: 0, reason: 'exit code 0' });
    expect(out.chunks).toEqual([{ stream: 'stdout', text: 'noop: bench attempt 1 on node-1\n' }]);
    expect(out.finished).toBe(1);
  });

  it('reports the exit code asked for', async () => {
    const task = await new NoopRunner().start(spec({ GRID_NOOP_EXIT: '3' }), new Collect(), new AbortController().signal);
    expect(await task.wait()).toMatchObject({ outcome: 'failed', exitCode: 3, reason: 'exit code 3' });
  });

  it('honours abort while sleeping', async () => {
    const ac = new AbortController();
    const task = await new NoopRunner().start(spec({ GRID_NOOP_SLEEP_MS: '60000' }), new Collect(), ac.signal);
    ac.abort();
    expect(await task.wait()).toMatchObject({ outcome: 'cancelled' });
  });

  it('honours stop and the timeout', async () => {
    const task = await new NoopRunner().start(spec({ GRID_NOOP_SLEEP_MS: '60000' }), new Collect(), new AbortController().signal);
    await task.stop('cancelled');
    expect(await task.wait()).toMatchObject({ outcome: 'cancelled' });
    const timed = await new NoopRunner().start(spec({ GRID_NOOP_SLEEP_MS: '60000' }, 20), new Collect(), new AbortController().signal);
    expect(await timed.wait()).toMatchObject({ outcome: 'timed_out' });
  });
});

describe('taskOutput', () => {
  it('masks before capping, and finish reaches the inner sink once', () => {
    const out = new Collect();
    const sink = taskOutput(out, { secrets: ['hunter2'], maxBytes: 8 });
    sink.write('stdout', Buffer.from('pw hunt'));
    sink.write('stdout', Buffer.from('er2 and a lot more output'));
    sink.finish?.();
    const text = out.chunks.map((c) => c.text).join('');
    expect(text).not.toContain('hunt');
    expect(text.startsWith('pw *')).toBe(true);
    expect(text).toContain('of output dropped');
    expect(out.finished).toBe(1);
  });
});
