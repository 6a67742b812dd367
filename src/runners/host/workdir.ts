// The per-task working directory: created fresh under the runner's work root, filled with the
// task's files, removed when the task ends whatever happened.
//
// Every file-system call costs a trip through libuv's thread pool, and directory changes are
// slow on some disks, so the usual path is one mkdtemp and one rmdir per task: the work root is
// created only when it is missing, and the recursive removal runs only when the task left
// something behind.

import { chmod, mkdir, mkdtemp, rm, rmdir, writeFile } from 'node:fs/promises';
import { dirname, isAbsolute, join, relative, resolve, sep } from 'node:path';
import type { TaskSpec } from '../runner.js';
import { CommandError } from './command.js';

/** Creates `<workRoot>/<executionId>-<attempt>-<random>` (mode 0700) and returns its path. */
export async function createWorkDir(workRoot: string, spec: TaskSpec): Promise<string> {
  // Ids are ULIDs, but a path is no place to trust that.
  const id = spec.executionId.replace(/[^A-Za-z0-9_.-]/g, '_');
  const prefix = join(workRoot, `${id}-${spec.attempt}-`);
  try {
    return await mkdtemp(prefix);
  } catch (err) {
    // The work root does not exist yet (first task), or someone removed it meanwhile.
    if ((err as NodeJS.ErrnoException).code !== 'ENOENT') throw err;
    await mkdir(workRoot, { recursive: true });
    return mkdtemp(prefix);
  }
}

/** Writes each file relative to `dir`, creating parent folders; paths may not leave `dir`. */
export async function placeFiles(dir: string, files: TaskSpec['files']): Promise<void> {
  for (const f of files ?? []) {
    const target = resolve(dir, f.path);
    const rel = relative(dir, target);
    if (isAbsolute(f.path) || rel === '' || rel === '..' || rel.startsWith(`..${sep}`) || isAbsolute(rel)) {
      throw new CommandError(`file path "${f.path}" must be relative and stay inside the working directory`);
    }
    await mkdir(dirname(target), { recursive: true });
    await writeFile(target, f.data);
    // writeFile's mode is filtered by the umask and ignored for existing files; chmod is exact.
    if (f.mode !== undefined) await chmod(target, f.mode);
  }
}

/** Removes `dir` and whatever the task left in it; a directory already gone is not an error. */
export async function removeWorkDir(dir: string): Promise<void> {
  try {
    // Most tasks leave their directory empty: one rmdir, where rm would lstat it twice first.
    await rmdir(dir);
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return;
    // Not empty (ENOTEMPTY, or EEXIST on some systems), busy, …: the full removal, with retries.
    await rm(dir, { recursive: true, force: true, maxRetries: 3 });
  }
}
