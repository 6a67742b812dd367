// One child process started by the host runner, in its own process group: output batching,
// timeout and cancel (SIGTERM to the group, SIGKILL after a grace period), the exit result, and
// cleanup of the working directory once everything has stopped.

import { constants } from 'node:os';
import { setTimeout as delay } from 'node:timers/promises';
import { seconds, type LogSink, type RunningTask, type TaskResult } from '../runner.js';
import { OutputBatcher } from './batcher.js';
import { groupAlive, signalGroup } from './group.js';
import type { Exit, TaskProcess } from './process.js';
import { removeWorkDir } from './workdir.js';

type StopReason = 'cancelled' | 'timed_out';

export interface HostTaskOptions {
  program: string;
  workDir: string;
  logs: LogSink;
  signal: AbortSignal;
  timeoutMs: number;
  killGraceMs: number;
  batchMs: number;
  batchBytes: number;
}

/** How long to wait for stdout/stderr to close once the group is gone (a daemon that left the group may hold them). */
const DRAIN_MS = 2000;
const POLL_MS = 50;

export class HostTask implements RunningTask {
  private readonly batcher: OutputBatcher;
  private readonly exited: Promise<Exit>;
  private readonly done: Promise<TaskResult>;
  private hasExited = false;
  /** Once the group has been seen gone its id may be reused, so it is never signalled again. */
  private groupGone = false;
  private stopReason: StopReason | undefined;
  private stopping: Promise<void> | undefined;
  private terminating: Promise<void> | undefined;
  private timer: NodeJS.Timeout | undefined;
  private readonly onAbort = (): void => void this.stop('cancelled');

  constructor(
    private readonly child: TaskProcess,
    private readonly opts: HostTaskOptions,
  ) {
    this.batcher = new OutputBatcher(opts.logs, opts.batchMs, opts.batchBytes);
    child.stdout?.on('data', (b: Buffer) => this.batcher.add('stdout', b)).resume();
    child.stderr?.on('data', (b: Buffer) => this.batcher.add('stderr', b)).resume();
    this.exited = child.exit.then((exit) => {
      this.hasExited = true;
      return exit;
    });
    if (opts.timeoutMs > 0) this.timer = setTimeout(() => void this.stop('timed_out'), opts.timeoutMs);
    opts.signal.addEventListener('abort', this.onAbort, { once: true });
    this.done = this.run();
    if (opts.signal.aborted) this.onAbort();
  }

  /** The child's pid, which is also its process group id (it was spawned detached). */
  get pid(): number | undefined {
    return this.child.pid;
  }

  wait(): Promise<TaskResult> {
    return this.done;
  }

  /** Resolves once the process has exited and its group is gone (after SIGKILL if need be). */
  stop(reason: StopReason): Promise<void> {
    if (!this.stopping) {
      if (!this.hasExited) {
        this.stopReason = reason;
        this.note(`${this.describe(reason)}; sent SIGTERM to the process group`);
      }
      this.stopping = Promise.all([this.terminateGroup(), this.exited]).then(() => undefined);
    }
    return this.stopping;
  }

  private async run(): Promise<TaskResult> {
    const exit = await this.exited;
    clearTimeout(this.timer);
    this.opts.signal.removeEventListener('abort', this.onAbort);
    const pid = this.child.pid;
    if (!exit.error && pid !== undefined && (await this.alive(pid))) {
      // The command is over; whatever it left running in its group goes with it.
      if (exit.lost) this.note(`${exit.lost}; sent SIGTERM to its process group`);
      else if (!this.terminating) this.note('the command exited but left processes running; sent SIGTERM to its process group');
      await this.terminateGroup();
    }
    await this.stopping;
    this.groupGone = true;
    // Nothing of the group runs any more, so the directory can go while the last output drains.
    const [, removal] = await Promise.all([
      this.drain(exit.error ? 0 : DRAIN_MS),
      removeWorkDir(this.opts.workDir).then(
        () => undefined,
        (err: Error) => err,
      ),
    ]);
    // Noted after the drain, so that it follows the task's own output.
    if (removal) this.note(`could not remove the working directory ${this.opts.workDir}: ${removal.message}`);
    this.batcher.flush();
    this.opts.logs.finish?.();
    return this.result(exit);
  }

  private result(exit: Exit): TaskResult {
    if (exit.error) return { outcome: 'failed', reason: spawnFailure(this.opts.program, exit.error) };
    const exitCode = exit.code ?? (exit.signal ? 128 + (constants.signals[exit.signal] ?? 0) : undefined);
    if (this.stopReason) return { outcome: this.stopReason, exitCode, reason: this.describe(this.stopReason) };
    if (exit.lost) return { outcome: 'failed', reason: exit.lost };
    if (exit.code === 0) return { outcome: 'succeeded', exitCode: 0, reason: 'exit code 0' };
    if (exit.code !== null) return { outcome: 'failed', exitCode, reason: `exit code ${exit.code}` };
    return { outcome: 'failed', exitCode, reason: `killed by ${exit.signal ?? 'a signal'}` };
  }

  /** SIGTERM to the whole group, then SIGKILL if any member is still there after the grace period. */
  private terminateGroup(): Promise<void> {
    this.terminating ??= (async () => {
      const pid = this.child.pid;
      if (pid === undefined || this.groupGone || !signalGroup(pid, 'SIGTERM')) return;
      const deadline = Date.now() + this.opts.killGraceMs;
      while (Date.now() < deadline) {
        await delay(Math.min(POLL_MS, Math.max(1, deadline - Date.now())));
        if (!(await this.alive(pid))) return;
      }
      if (signalGroup(pid, 'SIGKILL')) {
        this.note(`process group still running ${seconds(this.opts.killGraceMs)} after SIGTERM; sent SIGKILL`);
        // SIGKILL is delivered asynchronously: wait (bounded) until the kernel has really ended them.
        const killDeadline = Date.now() + 5_000;
        while (Date.now() < killDeadline && (await this.alive(pid))) await delay(POLL_MS);
      }
    })();
    return this.terminating;
  }

  /** Waits (bounded) for stdout and stderr to close so no output is lost, then lets go of them. */
  private async drain(ms: number): Promise<void> {
    const streams = [this.child.stdout, this.child.stderr].filter((s) => s !== null);
    const open = streams.filter((s) => !s.closed);
    // Usually both have closed by the time the group is gone: then there is nothing to wait for,
    // and no timer is set.
    if (open.length > 0 && ms > 0) {
      let timer: NodeJS.Timeout | undefined;
      await Promise.race([
        Promise.all(open.map((s) => new Promise<void>((r) => s.once('close', () => r())))),
        new Promise<void>((r) => (timer = setTimeout(r, ms))),
      ]);
      clearTimeout(timer);
    }
    for (const s of streams) s.destroy();
  }

  private async alive(pid: number): Promise<boolean> {
    if (!this.groupGone && !(await groupAlive(pid))) this.groupGone = true;
    return !this.groupGone;
  }

  private describe(reason: StopReason): string {
    if (reason === 'cancelled') return 'cancelled';
    return this.opts.timeoutMs > 0 ? `timed out after ${seconds(this.opts.timeoutMs)}` : 'timed out';
  }

  private note(text: string): void {
    this.batcher.add('system', Buffer.from(`[grid: ${text}]\n`, 'utf8'));
  }
}

function spawnFailure(program: string, err: NodeJS.ErrnoException): string {
  if (err.code === 'ENOENT') return `command not found: ${program}`;
  if (err.code === 'EACCES') return `permission denied: ${program}`;
  return `cannot start ${program}: ${err.message}`;
}
