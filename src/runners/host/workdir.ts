// The per-task working directory: created fresh under the runner's work root, filled with the
// task's files, removed when the task ends whatever happened.

import { chmod, mkdir, mkdtemp, rm, writeFile } from 'node:fs/promises';
import { dirname, isAbsolute, join, relative, resolve, sep } from 'node:path';
import type { TaskSpec } from '../runner.js';
import { CommandError } from './command.js';

/** Creates `<workRoot>/<executionId>-<attempt>-<random>` (mode 0700) and returns its path. */
export async function createWorkDir(workRoot: string, spec: TaskSpec): Promise<string> {
  await mkdir(workRoot, { recursive: true });
  // Ids are ULIDs, but a path is no place to trust that.
  const id = spec.executionId.replace(/[^A-Za-z0-9_.-]/g, '_');
  return mkdtemp(join(workRoot, `${id}-${spec.attempt}-`));
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

export async function removeWorkDir(dir: string): Promise<void> {
  await rm(dir, { recursive: true, force: true, maxRetries: 3 });
}
