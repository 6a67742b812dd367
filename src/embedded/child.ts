// One supervised server process: output to a log file, an `exited` promise, an idempotent stop(),
// and a readiness wait with a deadline that reports the child's last log lines when it fails.

import { spawn } from 'node:child_process';
import { closeSync, fstatSync, openSync, readFileSync } from 'node:fs';
import { setTimeout as sleep } from 'node:timers/promises';
import { DeadlineExceededError, GridError, UnavailableError } from '../errors.js';

export interface ChildExit {
  code: number | null;
  signal: NodeJS.Signals | null;
}

export interface SupervisedChild {
  readonly pid: number;
  readonly logFile: string;
  /** Resolves (never rejects) when the process has exited, for whatever reason. */
  readonly exited: Promise<ChildExit>;
  hasExited(): boolean;
  /** SIGTERM, then SIGKILL after `graceMs`; a second call returns the first call's promise. */
  stop(): Promise<void>;
  /** SIGKILL at once (also cutting a stop() short); resolves when the process has exited. */
  kill(): Promise<void>;
  /** The last lines this process wrote to its log file (not earlier runs appended to the same file). */
  logTail(lines?: number): string;
}

export const STOP_GRACE_MS = 5_000;
export const DEFAULT_START_TIMEOUT_MS = 20_000;

export async function spawnSupervised(binary: string, args: string[], logFile: string, graceMs = STOP_GRACE_MS): Promise<SupervisedChild> {
  // The child writes straight into the file rather than into a pipe to us: a Go program whose
  // stdout/stderr pipe breaks dies of SIGPIPE, and these servers must outlive a kill -9'd parent
  // until the next start finds them by pid file and stops them cleanly.
  const fd = openSync(logFile, 'a');
  const startOffset = fstatSync(fd).size;
  let exit: ChildExit | undefined;
  let child;
  let exited: Promise<ChildExit>;
  try {
    // detached: own process group, so a terminal's Ctrl-C reaches only us and we stop them in order.
    child = spawn(binary, args, { stdio: ['ignore', fd, fd], detached: true });
    const proc = child;
    // Listen for 'exit' before anything is awaited, so an instant crash is never missed.
    exited = new Promise<ChildExit>((resolve) => {
      proc.once('exit', (code, signal) => resolve((exit = { code, signal })));
    });
    await new Promise<void>((resolve, reject) => {
      proc.once('spawn', resolve);
      proc.once('error', reject);
    });
  } catch (err) {
    throw new UnavailableError(`cannot start ${binary}: ${(err as Error).message}`, { cause: err });
  } finally {
    closeSync(fd);
  }
  const pid = child.pid!;

  let closing: Promise<void> | undefined;
  const stop = (): Promise<void> =>
    (closing ??= (async () => {
      if (exit) return;
      signal(pid, 'SIGTERM');
      const graceful = await Promise.race([exited.then(() => true), sleep(graceMs, false, { ref: false })]);
      if (!graceful) signal(pid, 'SIGKILL');
      await exited;
    })());

  const kill = async (): Promise<void> => {
    if (!exit) signal(pid, 'SIGKILL');
    await exited;
  };

  const logTail = (lines = 20): string => {
    try {
      const text = readFileSync(logFile).subarray(startOffset).toString('utf8');
      return text.trimEnd().split('\n').slice(-lines).join('\n');
    } catch {
      return '';
    }
  };

  return { pid, logFile, exited, hasExited: () => exit !== undefined, stop, kill, logTail };
}

// The child leads its own process group (detached), so signal the group: nothing it forked survives.
function signal(pid: number, sig: NodeJS.Signals): void {
  for (const target of [-pid, pid]) {
    try {
      process.kill(target, sig);
      return;
    } catch {
      // no such group (or already gone); try the pid itself
    }
  }
}

/** Why a start attempt failed; `portInUse` lets the caller retry with another port. */
export interface StartupFailure {
  error: GridError;
  portInUse: boolean;
}

export interface ReadyWait {
  what: string;
  deadlineMs: number;
  /** Resolves true once the server answers; must not throw and should bound its own time. */
  probe: () => Promise<boolean>;
  pollMs?: number;
}

// Parsing the child's own log is the only way to learn why it exited; the wording is Go's net error.
const PORT_IN_USE = /address already in use/i;

/** Polls `probe` until it answers, the child exits, or the deadline passes; null means ready. */
export async function awaitReady(child: SupervisedChild, wait: ReadyWait): Promise<StartupFailure | null> {
  const deadline = Date.now() + wait.deadlineMs;
  for (;;) {
    if (child.hasExited()) return exitedFailure(child, wait.what, await child.exited);
    if (await wait.probe()) return null;
    if (child.hasExited()) return exitedFailure(child, wait.what, await child.exited);
    if (Date.now() >= deadline) {
      const error = new DeadlineExceededError(
        `${wait.what} (pid ${child.pid}) was not ready within ${wait.deadlineMs} ms; last output in ${child.logFile}:\n${child.logTail()}`,
      );
      return { error, portInUse: false };
    }
    await sleep(wait.pollMs ?? 100);
  }
}

function exitedFailure(child: SupervisedChild, what: string, exit: ChildExit): StartupFailure {
  const tail = child.logTail();
  const how = exit.signal ? `signal ${exit.signal}` : `code ${exit.code}`;
  const error = new UnavailableError(`${what} exited during startup (${how}); last output in ${child.logFile}:\n${tail}`);
  return { error, portInUse: PORT_IN_USE.test(tail) };
}

export type Attempt<T> = { ok: true; value: T } | { ok: false; failure: StartupFailure };

/**
 * Runs `attempt` again (it picks new ports) while it fails only because a port chosen a moment
 * earlier was taken by someone else in between; any other failure is thrown at once.
 */
export async function retryOnPortClash<T>(retries: number, attempt: () => Promise<Attempt<T>>): Promise<T> {
  for (let n = 0; ; n++) {
    const result = await attempt();
    if (result.ok) return result.value;
    if (!result.failure.portInUse || n >= retries) throw result.failure.error;
  }
}
