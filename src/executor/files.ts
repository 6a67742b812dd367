// A task's configuration files: fetched from the controller (GetTaskFile, which checks that this
// executor may read them for this task) before the task runs, checked against the SHA-256 digest
// recorded in etcd when the file was put (BeginTask hands it out with the task), rendered with
// the execution's arguments when the definition says `template`, and handed to the runner
// (TaskSpec.files) to place inside the task's working directory.
//
// Secrets are never rendered into files: a file on disk outlives the process and may be read by
// anyone who can read the working directory. A template that names a secret fails the task.

import { createHash } from 'node:crypto';
import type { TaskFileRef } from '../domain/task.js';
import { NotFoundError } from '../errors.js';
import type { TaskSpec } from '../runners/runner.js';

export type { TaskFileRef };

/** Fetches one file's content for the task being prepared. */
export type FetchFile = (name: string) => AsyncIterable<Uint8Array>;

/** Why a task's files could not be prepared; the message is the task's reason. */
export class TaskFileError extends Error {
  override readonly name = 'TaskFileError';
}

const PLACEHOLDER = /\{\{\s*([A-Za-z_][A-Za-z0-9_]*)\s*\}\}/g;

/**
 * Replaces every `{{NAME}}` with the argument's value. A placeholder that names a secret, or
 * nothing the execution has, is an error; text that is not a `{{NAME}}` placeholder is left as is.
 */
export function renderFile(file: string, text: string, args: Record<string, string>, secretNames: readonly string[] = []): string {
  return text.replace(PLACEHOLDER, (_m, name: string) => {
    if (secretNames.includes(name)) {
      throw new TaskFileError(
        `file "${file}": {{${name}}} is a secret; secrets are not rendered into files, the task reads it from the environment variable ${name}`,
      );
    }
    const v = Object.hasOwn(args, name) ? args[name] : undefined;
    if (v === undefined) {
      const known = Object.keys(args);
      throw new TaskFileError(
        `file "${file}": unknown placeholder {{${name}}}; ${known.length ? `the execution's arguments are ${known.sort().join(', ')}` : 'the execution has no arguments'}`,
      );
    }
    return v;
  });
}

/** "0640" → 0o640; undefined stays undefined (the runner's default applies). */
export function parseMode(mode: string | undefined): number | undefined {
  if (mode === undefined || mode === '') return undefined;
  if (!/^[0-7]{3,4}$/.test(mode)) throw new TaskFileError(`mode "${mode}" is not an octal mode such as "0644"`);
  return parseInt(mode, 8);
}

export function sha256Hex(data: Uint8Array): string {
  return `sha256:${createHash('sha256').update(data).digest('hex')}`;
}

/** Checks content against the digest recorded for it; returns the reason when they differ. */
export function digestProblem(file: string, stored: string | undefined, data: Uint8Array): string | undefined {
  if (!stored) return `file "${file}" has no digest recorded by GRID (it was not stored with grid-cli files put); refusing to use it`;
  const got = sha256Hex(data);
  if (got !== stored) {
    return `file "${file}" was tampered with: digest mismatch (stored ${stored}, content ${got}); put it again with grid-cli files put`;
  }
  return undefined;
}

/**
 * Every file of the task, fetched, verified and rendered; throws TaskFileError with the reason
 * for the first one that cannot be used. `args` are the execution's (non-secret) values.
 */
export async function prepareFiles(
  files: TaskFileRef[],
  args: Record<string, string>,
  secretNames: string[],
  fetch: FetchFile,
): Promise<NonNullable<TaskSpec['files']>> {
  const out: NonNullable<TaskSpec['files']> = [];
  for (const ref of files) out.push(await prepareOne(ref, args, secretNames, fetch));
  return out;
}

async function prepareOne(ref: TaskFileRef, args: Record<string, string>, secretNames: string[], fetch: FetchFile): Promise<{ path: string; data: Uint8Array; mode?: number }> {
  let data: Uint8Array;
  try {
    const parts: Uint8Array[] = [];
    for await (const chunk of fetch(ref.name)) parts.push(chunk);
    data = Buffer.concat(parts);
  } catch (err) {
    if (err instanceof NotFoundError) throw new TaskFileError(`file "${ref.name}" is not in the grid-files store (grid-cli files put ${ref.name} PATH adds it)`);
    const msg = (err as Error)?.message ?? String(err);
    // The store checks its own digest of the chunks as they arrive.
    if (/digests do not match|corrupt/i.test(msg)) {
      throw new TaskFileError(`file "${ref.name}" was tampered with: digest mismatch in the grid-files store (${msg.split('\n')[0]})`);
    }
    throw new TaskFileError(`could not fetch file "${ref.name}" from the controller: ${msg}`);
  }
  const problem = digestProblem(ref.name, ref.digest, data);
  if (problem) throw new TaskFileError(problem);
  if (ref.template) {
    let text: string;
    try {
      text = new TextDecoder('utf-8', { fatal: true }).decode(data);
    } catch {
      throw new TaskFileError(`file "${ref.name}" is a template but is not UTF-8 text`);
    }
    data = Buffer.from(renderFile(ref.name, text, args, secretNames), 'utf8');
  }
  const f: { path: string; data: Uint8Array; mode?: number } = { path: ref.path, data };
  const mode = parseMode(ref.mode);
  if (mode !== undefined) f.mode = mode;
  return f;
}
