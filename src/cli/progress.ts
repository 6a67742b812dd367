// Live progress of an execution for `execute --wait`: on a terminal one line redrawn in place
// with a bar, otherwise a plain line each time the counts change (so logs and CI output stay
// short).

import { TaskState, type Execution } from '../gen/grid/v1/types.js';
import { plain, type Paint } from './colour.js';
import { isFailedTask, isTerminalExecution, isTerminalTask } from './executions-format.js';

export interface ProgressCounts {
  total: number;
  /** Tasks that reached a final state (succeeded, failed, cancelled, skipped…). */
  done: number;
  failed: number;
  running: number;
  skipped: number;
}

export function countTasks(e: Execution): ProgressCounts {
  const c: ProgressCounts = { total: e.tasks.length, done: 0, failed: 0, running: 0, skipped: 0 };
  for (const t of e.tasks) {
    if (isTerminalTask(t.state)) c.done++;
    if (isFailedTask(t.state)) c.failed++;
    if (t.state === TaskState.TASK_STATE_RUNNING) c.running++;
    if (t.state === TaskState.TASK_STATE_SKIPPED) c.skipped++;
  }
  return c;
}

/**
 * "7/10 executors done, 1 failed, 2 running" (", 1 skipped" when some were); `paint` colours the
 * failed and running counts when there are some.
 */
export function progressText(c: ProgressCounts, paint: Paint = plain): string {
  const some = (n: number, state: string, word: string) => (n > 0 ? paint(state, `${n} ${word}`) : `${n} ${word}`);
  let s = `${c.done}/${c.total} ${c.total === 1 ? 'executor' : 'executors'} done, ${some(c.failed, 'FAILED', 'failed')}, ${some(c.running, 'RUNNING', 'running')}`;
  if (c.skipped) s += `, ${c.skipped} skipped`;
  return s;
}

/** "[#######---]": full only when every task is done. */
export function progressBar(c: ProgressCounts, width = 10): string {
  let filled = c.total ? Math.round((c.done / c.total) * width) : 0;
  if (c.done < c.total) filled = Math.min(filled, width - 1);
  return `[${'#'.repeat(filled)}${'-'.repeat(width - filled)}]`;
}

/** Moves the cursor up one line and clears it, so the next line replaces the previous one. */
export const REDRAW = '\x1b[1A\x1b[2K';

export interface ProgressIO {
  out: (line: string) => void;
  isTTY: boolean;
}

/**
 * Shows each snapshot the watch delivers. Prints only when the shown text changes. On a TTY the
 * line is redrawn in place (cursor up + clear: the io writes whole lines); elsewhere each change
 * is a new plain line without the bar.
 */
export class Progress {
  private last: string | undefined;

  constructor(
    private readonly io: ProgressIO,
    private readonly paint: Paint = plain,
  ) {}

  update(e: Execution): void {
    // No tasks yet (queued), or none at all (failed at dispatch): "0/0 executors done" says
    // nothing; the "queued" line before and the final status after say it instead.
    if (e.tasks.length === 0) return;
    const c = countTasks(e);
    const text = this.io.isTTY ? `${progressBar(c)} ${progressText(c, this.paint)}` : progressText(c, this.paint);
    if (text === this.last) return;
    this.io.out(this.io.isTTY && this.last !== undefined ? REDRAW + text : text);
    this.last = text;
  }
}

/**
 * Consumes a WatchExecution stream, showing each snapshot, and returns the last snapshot (the
 * terminal one unless the stream ended early), or undefined when it delivered nothing.
 */
export async function watchWithProgress(stream: AsyncIterable<Execution>, progress?: Progress): Promise<Execution | undefined> {
  let last: Execution | undefined;
  for await (const e of stream) {
    last = e;
    progress?.update(e);
    if (isTerminalExecution(e.state)) break;
  }
  return last;
}
