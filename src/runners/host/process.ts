// A started task process as HostTask sees it, whoever spawned it: the executor itself
// (child_process.spawn) or the spawner process (spawner.ts).

import type { ChildProcess } from 'node:child_process';
import type { Readable } from 'node:stream';

export interface Exit {
  code: number | null;
  signal: NodeJS.Signals | null;
  /** It never ran: execve failed (ENOENT, EACCES…). */
  error?: NodeJS.ErrnoException;
  /** Its exit status cannot be known: why (the spawner died while it ran). */
  lost?: string;
}

export interface TaskProcess {
  /** Also its process group id: it was spawned detached. Undefined when it never started. */
  readonly pid: number | undefined;
  /** Possibly paused: the reader resumes them once it listens. */
  readonly stdout: Readable | null;
  readonly stderr: Readable | null;
  /** Resolves once, when the process has exited, could not start, or was lost. */
  readonly exit: Promise<Exit>;
}

/** A child of this process. */
export function childTaskProcess(child: ChildProcess): TaskProcess {
  return {
    pid: child.pid,
    stdout: child.stdout,
    stderr: child.stderr,
    exit: new Promise<Exit>((resolve) => {
      child.once('exit', (code, signal) => resolve({ code, signal }));
      // Only a failed spawn reaches here: we never use child.kill(), which is the other source.
      child.once('error', (error: NodeJS.ErrnoException) => resolve({ code: null, signal: null, error }));
    }),
  };
}
