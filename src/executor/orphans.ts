// Tasks that outlive their executor. The host runner starts each task in its own process group,
// so a `kill -9` of the executor leaves the task running. While a task runs, the worker keeps its
// process-group id in `<work_dir>/running/<execution>.<task>.pid`; on the next start, whatever
// group such a file names is killed — if it is still there and still ours (a member's working
// directory is inside work_dir: pids are reused) — and the file is removed. JetStream then
// redelivers the message and the task runs again.

import { mkdir, readdir, readFile, readlink, rm, unlink, writeFile } from 'node:fs/promises';
import { join, relative, resolve, sep, isAbsolute } from 'node:path';
import type { Logger } from '../util/log.js';

export const RUNNING_DIR = 'running';

export class PidFiles {
  readonly dir: string;
  private readonly workDir: string;

  constructor(workDir: string) {
    this.workDir = resolve(workDir);
    this.dir = join(this.workDir, RUNNING_DIR);
  }

  path(executionId: string, taskKey: string): string {
    return join(this.dir, `${safe(executionId)}.${safe(taskKey)}.pid`);
  }

  async write(executionId: string, taskKey: string, pid: number): Promise<string> {
    const file = this.path(executionId, taskKey);
    // The folder is made only when missing (the first task, or removed meanwhile): file-system
    // calls are not cheap and this runs for every task.
    try {
      await writeFile(file, `${pid}\n`, { mode: 0o600 });
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code !== 'ENOENT') throw err;
      await mkdir(this.dir, { recursive: true, mode: 0o700 });
      await writeFile(file, `${pid}\n`, { mode: 0o600 });
    }
    return file;
  }

  async remove(file: string): Promise<void> {
    await unlink(file).catch((err: NodeJS.ErrnoException) => {
      if (err.code !== 'ENOENT') throw err;
    });
  }

  /**
   * Kills the process groups of tasks a previous run of this executor left behind, removes
   * their working directories and the pid files. Returns how many groups were killed.
   */
  async reapOrphans(log: Logger): Promise<number> {
    let names: string[];
    try {
      names = await readdir(this.dir);
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code === 'ENOENT') return 0;
      throw err;
    }
    let killed = 0;
    for (const name of names) {
      if (!name.endsWith('.pid')) continue;
      const file = join(this.dir, name);
      const pgid = Number.parseInt(await readFile(file, 'utf8').catch(() => ''), 10);
      if (Number.isSafeInteger(pgid) && pgid > 1) {
        const dirs = await this.membersInside(pgid);
        if (dirs.length > 0) {
          try {
            process.kill(-pgid, 'SIGKILL');
            killed++;
            log.warn('killed a task left running by an earlier run of this executor', { task: name.slice(0, -'.pid'.length), pgid });
          } catch (err) {
            if ((err as NodeJS.ErrnoException).code !== 'ESRCH') {
              log.warn('could not kill a task left running by an earlier run of this executor', { pgid, error: (err as Error).message });
            }
          }
          for (const d of new Set(dirs)) await rm(d, { recursive: true, force: true, maxRetries: 3 }).catch(() => {});
        }
      }
      await this.remove(file).catch(() => {});
    }
    return killed;
  }

  /**
   * The task working directories (top-level folders of work_dir) of the live members of group
   * `pgid`; empty when no member is left or none works inside work_dir (a reused pid). Linux only.
   */
  private async membersInside(pgid: number): Promise<string[]> {
    if (process.platform !== 'linux') return [];
    const out: string[] = [];
    let entries: string[];
    try {
      entries = await readdir('/proc');
    } catch {
      return [];
    }
    for (const pid of entries) {
      if (!/^\d+$/.test(pid)) continue;
      let stat: string;
      let cwd: string;
      try {
        stat = await readFile(`/proc/${pid}/stat`, 'utf8');
        // "pid (comm) state ppid pgrp …" — comm may contain spaces and parentheses.
        const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
        if (Number(fields[2]) !== pgid || fields[0] === 'Z' || fields[0] === 'X') continue;
        cwd = await readlink(`/proc/${pid}/cwd`);
      } catch {
        continue; // gone meanwhile, or not ours to look at
      }
      cwd = cwd.replace(/ \(deleted\)$/, '');
      const rel = relative(this.workDir, cwd);
      if (rel === '' || rel === '..' || rel.startsWith(`..${sep}`) || isAbsolute(rel)) continue;
      const top = rel.split(sep)[0]!;
      if (top !== RUNNING_DIR) out.push(join(this.workDir, top));
    }
    return out;
  }
}

/** Ids are ULIDs and task keys are ids or `pool.<group>.<n>`, but a path is no place to trust that. */
function safe(s: string): string {
  return s.replace(/[^A-Za-z0-9_.-]/g, '_');
}
