// The host runner: runs a task as a child process on the executor's machine, in a fresh working
// directory, in its own process group so that timeout and cancel reach everything it started.
// Tasks are forked by the spawner, a small process of their own (spawner.ts), or by the
// executor itself while there is none.

import { spawn } from 'node:child_process';
import { chown, readdir } from 'node:fs/promises';
import { join } from 'node:path';
import type { Logger } from '../../util/log.js';
import { finishedTask } from '../finished.js';
import type { LogSink, Runner, RunningTask, TaskSpec } from '../runner.js';
import { buildArgv, buildEnv, CommandError } from './command.js';
import { childTaskProcess, type TaskProcess } from './process.js';
import { Spawner } from './spawner.js';
import { HostTask } from './task.js';
import { createWorkDir, placeFiles, removeWorkDir } from './workdir.js';

export interface HostRunnerOptions {
  /** Folder under which each task gets its own working directory. */
  workRoot: string;
  /** Time between SIGTERM and SIGKILL when a task is stopped. Default 5000. */
  killGraceMs?: number;
  /** Output is written to the sink at least this often while it is produced. Default 50. */
  batchMs?: number;
  /** … or as soon as this many bytes are waiting. Default 32 KiB. */
  batchBytes?: number;
  /**
   * Run tasks as this uid/gid (the executor runs as root): they cannot read the executor's
   * state file or other tasks' directories. Their working directory is given to them.
   */
  runAs?: { uid: number; gid: number };
  /**
   * Fork tasks from the spawner, a small long-lived process, rather than from the executor,
   * whose size makes each fork() costly. Default true; false forks from this process.
   */
  spawner?: boolean;
  /** Where the spawner's troubles are told (it could not start, it died). */
  log?: Logger;
}

export class HostRunner implements Runner {
  readonly name = 'host';
  private readonly workRoot: string;
  private readonly killGraceMs: number;
  private readonly batchMs: number;
  private readonly batchBytes: number;
  private readonly runAs: HostRunnerOptions['runAs'];
  /** Undefined when tasks are forked from this process. */
  readonly spawner: Spawner | undefined;

  constructor(opts: HostRunnerOptions) {
    this.runAs = opts.runAs;
    this.workRoot = opts.workRoot;
    this.killGraceMs = opts.killGraceMs ?? 5000;
    this.batchMs = opts.batchMs ?? 50;
    this.batchBytes = opts.batchBytes ?? 32 * 1024;
    this.spawner = opts.spawner === false ? undefined : new Spawner(opts.log);
  }

  /**
   * Starts the task. A task that cannot run (bad command, file outside its directory, program
   * not found) comes back as a task that has failed, not as a rejection; start() rejects only
   * when the executor itself is in trouble (the work root cannot be written).
   */
  async start(spec: TaskSpec, logs: LogSink, signal: AbortSignal): Promise<RunningTask> {
    if (signal.aborted) return finishedTask({ outcome: 'cancelled', reason: 'cancelled' }, logs);
    let argv: string[];
    let env: Record<string, string>;
    try {
      argv = buildArgv(spec);
      env = buildEnv(spec);
    } catch (err) {
      return failedEarly(err, logs);
    }

    const workDir = await createWorkDir(this.workRoot, spec);
    if (spec.files?.length) {
      try {
        await placeFiles(workDir, spec.files);
      } catch (err) {
        await removeWorkDir(workDir);
        return failedEarly(err, logs);
      }
    }
    if (signal.aborted) {
      await removeWorkDir(workDir);
      return finishedTask({ outcome: 'cancelled', reason: 'cancelled' }, logs);
    }
    if (this.runAs) await giveTo(workDir, this.runAs);

    const [program, ...rest] = argv as [string, ...string[]];
    let child: TaskProcess;
    try {
      child =
        (await this.spawner?.spawn({ file: program, args: rest, cwd: workDir, env, ...this.runAs })) ??
        childTaskProcess(
          spawn(program, rest, {
            cwd: workDir,
            env,
            // Own process group (setsid): the whole tree can be signalled as -pid.
            detached: true,
            stdio: ['ignore', 'pipe', 'pipe'],
            windowsHide: true,
            ...(this.runAs ? { uid: this.runAs.uid, gid: this.runAs.gid } : {}),
          }),
        );
    } catch (err) {
      // Synchronous failures: an argument with a NUL byte and the like.
      await removeWorkDir(workDir);
      return finishedTask({ outcome: 'failed', reason: `cannot start ${program}: ${(err as Error).message}` }, logs);
    }
    return new HostTask(child, {
      program,
      workDir,
      logs,
      signal,
      timeoutMs: spec.timeoutMs,
      killGraceMs: this.killGraceMs,
      batchMs: this.batchMs,
      batchBytes: this.batchBytes,
    });
  }

  /** Starts the spawner in the background, so that the first task does not wait for it. */
  warm(): void {
    this.spawner?.warm();
  }

  /** Stops the spawner; tasks still running are left to their process groups. */
  async close(): Promise<void> {
    await this.spawner?.close();
  }
}

/** Hands the working directory and everything placed in it to the task's user. */
async function giveTo(dir: string, who: { uid: number; gid: number }): Promise<void> {
  await chown(dir, who.uid, who.gid);
  for (const entry of await readdir(dir, { recursive: true })) await chown(join(dir, entry), who.uid, who.gid);
}

function failedEarly(err: unknown, logs: LogSink): RunningTask {
  if (!(err instanceof CommandError)) throw err;
  return finishedTask({ outcome: 'failed', reason: err.message }, logs, err.message);
}
