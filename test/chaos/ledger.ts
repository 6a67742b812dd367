// The side-effect file of the chaos suite. Every run of a chaos job appends, from its own shell,
//   `<execution>.<task>.<attempt> <executor> <pid>`       when it starts, and
//   `<execution>.<task>.<attempt> <executor> <pid> end`   when it ends (also when it is stopped).
// Every executor runs on this host and appends with O_APPEND, one short write per line, so the
// order of the lines is one clock for every run: overlaps of serialized runs are read from it.

import { existsSync, readFileSync } from 'node:fs';

export interface Run {
  /** `<execution>.<task>`: what must run once. */
  task: string;
  execution: string;
  attempt: number;
  executor: string;
  pid: number;
  /** Line number of its start, and of its end (undefined: no end line). */
  startLine: number;
  endLine?: number;
}

/**
 * A host job for the chaos suite: appends its start line to $OUT, sleeps $SECS, appends its end
 * line (from an EXIT trap, so a stopped run still says when it stopped).
 */
export function ledgerJob(name: string, extra: Record<string, unknown> = {}): Record<string, unknown> {
  return {
    name,
    description: 'chaos suite: appends its runs to a file',
    shell: [
      'run="$GRID_EXECUTION_ID.$GRID_TASK_KEY.$GRID_ATTEMPT $GRID_EXECUTOR $$"',
      'trap \'echo "$run end" >> "$OUT"\' EXIT',
      "trap 'exit 143' TERM INT",
      'echo "$run" >> "$OUT"',
      'sleep "$SECS"',
    ].join('\n'),
    timeout_seconds: 300,
    env_vars: {
      secrets: [],
      args: [
        { name: 'OUT', description: 'file to append to', required: true },
        { name: 'SECS', description: 'how long to sleep', required: false, default: '1' },
      ],
    },
    ...extra,
  };
}

/** Every run in the file, in the order they started. */
export function readLedger(file: string): Run[] {
  if (!existsSync(file)) return [];
  const runs = new Map<string, Run>();
  readFileSync(file, 'utf8')
    .split('\n')
    .forEach((line, i) => {
      const [id, executor, pid, end] = line.trim().split(' ');
      const m = /^([^.]+)\.(.+)\.(\d+)$/.exec(id ?? '');
      if (!m || !executor || !pid) return;
      const k = `${id} ${executor} ${pid}`;
      const run = runs.get(k) ?? { task: `${m[1]}.${m[2]}`, execution: m[1]!, attempt: Number(m[3]), executor, pid: Number(pid), startLine: i };
      if (end === 'end') run.endLine = i;
      else run.startLine = i;
      runs.set(k, run);
    });
  return [...runs.values()].sort((a, b) => a.startLine - b.startLine);
}

/** Runs grouped by task. */
export function runsByTask(runs: Run[]): Map<string, Run[]> {
  const m = new Map<string, Run[]>();
  for (const r of runs) m.set(r.task, [...(m.get(r.task) ?? []), r]);
  return m;
}

/**
 * The most runs that were between their start and end lines at once. A run without an end line
 * counts as holding until the end of the file (nobody can say when it stopped).
 */
export function maxOverlap(runs: Run[]): { max: number; at: Run[] } {
  const marks = runs.flatMap((r) => [
    { line: r.startLine, delta: 1, run: r },
    { line: r.endLine ?? Number.MAX_SAFE_INTEGER, delta: -1, run: r },
  ]);
  marks.sort((a, b) => a.line - b.line);
  let now = 0;
  let max = 0;
  const holding = new Set<Run>();
  let at: Run[] = [];
  for (const m of marks) {
    now += m.delta;
    if (m.delta > 0) holding.add(m.run);
    else holding.delete(m.run);
    if (now > max) {
      max = now;
      at = [...holding];
    }
  }
  return { max, at };
}
