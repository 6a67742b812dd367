// How far a task's log has been delivered, kept on the executor's disk so that an executor that
// restarts resumes a Job's log without sending any line twice.
//
// The choice: the log is read with `timestamps=true`, so the kubelet prefixes every line with its
// RFC3339Nano time. The position is the time of the last line delivered plus how many lines with
// exactly that time were delivered (several lines can share one). To resume, the runner asks for
// `sinceTime` = that time cut to the second (the API takes whole seconds) and skips every line up
// to and including the position. Counting lines from the start instead would re-read the whole
// log on each resume and break when the kubelet rotates it; a time survives both.
//
// The file is written synchronously after each batch handed to the sink, so a kill -9 can at most
// repeat the batch being handed over at that instant. Without the file (a new pod of an in-cluster
// executor, whose work_dir is gone) the log is resent from the start, and the runner says so.

import { mkdirSync, readFileSync, renameSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';

export interface LogPosition {
  /** The pod the position belongs to. */
  pod: string;
  /** Time of the last line delivered, as the kubelet wrote it (RFC3339Nano). */
  time: string;
  /** Lines delivered that carry exactly `time`. */
  sameTime: number;
}

export interface TaskProgress {
  /** Pods whose log was delivered completely (a Job with backoffLimit > 0 may have several). */
  donePods: string[];
  position?: LogPosition;
}

/** One JSON file per Job under `dir` (the executor's `<work_dir>/kubernetes`). */
export class ProgressStore {
  constructor(readonly dir: string) {}

  private file(job: string): string {
    return join(this.dir, `${job}.json`);
  }

  read(job: string): TaskProgress | undefined {
    try {
      const p = JSON.parse(readFileSync(this.file(job), 'utf8')) as TaskProgress;
      return Array.isArray(p.donePods) ? p : undefined;
    } catch {
      return undefined;
    }
  }

  write(job: string, p: TaskProgress): void {
    mkdirSync(this.dir, { recursive: true, mode: 0o700 });
    const tmp = `${this.file(job)}.tmp`;
    writeFileSync(tmp, JSON.stringify(p), { mode: 0o600 });
    renameSync(tmp, this.file(job));
  }

  remove(job: string): void {
    rmSync(this.file(job), { force: true });
  }
}

/**
 * An RFC3339 time with up to nine fraction digits as nanoseconds since the epoch; undefined when
 * it is not one. (String comparison would be wrong: Go trims trailing zeros of the fraction.)
 */
export function parseNanos(ts: string): bigint | undefined {
  const m = /^(\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2})(?:\.(\d{1,9}))?(Z|[+-]\d{2}:\d{2})$/.exec(ts);
  if (!m) return undefined;
  const ms = Date.parse(`${m[1]}${m[3]}`);
  if (Number.isNaN(ms)) return undefined;
  return BigInt(ms) * 1_000_000n + BigInt((m[2] ?? '').padEnd(9, '0'));
}

/** `sinceTime` for a resume: the position's time cut to the whole second (RFC3339). */
export function sinceTimeOf(time: string): string | undefined {
  const n = parseNanos(time);
  if (n === undefined) return undefined;
  return new Date(Number(n / 1_000_000_000n) * 1000).toISOString().replace(/\.\d{3}Z$/, 'Z');
}
