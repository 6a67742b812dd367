// A scenario's row, from what it left behind: the runs in the side-effect file and every version
// of its records in etcd. Each number comes with a line saying which execution and task it
// counts, so that a failing row shows the records and runs behind it.

import { isTerminalExecution, type Execution, type Task } from '../../src/domain/execution.js';
import type { History } from './history.js';
import { maxOverlap, runsByTask, type Run } from './ledger.js';
import type { Row } from './table.js';

/** What a chaos job is: a pool task, a fan-out, a serialized pool task, or an at_most_once pool task. */
export type JobKind = 'pool' | 'fanout' | 'serial' | 'amo';

export interface Observed {
  scenario: string;
  submitted: number;
  /** Execution ids Execute answered with. */
  answered: string[];
  /** Job name → kind. */
  jobs: Map<string, JobKind>;
  runs: Run[];
  history: History;
  /** When the fault was lifted (epoch ms). */
  faultEndMs: number;
  /** Whether everything settled before the scenario gave up waiting. */
  settled: boolean;
  /** Names of executors killed for real (their tasks may be LOST by design). */
  killed: string[];
  /** Whether the scenario has an at_most_once job: yes, no, or refused by the definitions ('n/a'). */
  amo: 'yes' | 'no' | 'n/a';
}

/** Task states that are a result (LOST, SKIPPED and UNKNOWN are not: a result may replace them). */
const RESULTS = new Set(['SUCCEEDED', 'FAILED', 'TIMED_OUT', 'CANCELLED']);

export function measure(o: Observed): Row {
  const details: string[] = [];
  const finals = new Map<string, Execution>();
  for (const [id, versions] of o.history.executions) finals.set(id, versions[versions.length - 1]!);
  const accepted = new Set([...o.answered, ...finals.keys()]);
  const tasks = runsByTask(o.runs);
  const kindOf = (x: Execution | undefined): JobKind | undefined => (x ? o.jobs.get(x.job) : undefined);
  const show = (x: Execution | undefined, taskKey?: string): string => brief(x, taskKey, tasks);

  // Executors declared dead (EXPIRED at some point) or killed: their pool tasks may run again.
  const dead = new Set(o.killed);
  for (const versions of o.history.executors.values()) {
    if (versions.some((e) => e.state === 'EXPIRED')) dead.add(versions[versions.length - 1]!.name);
  }

  // lost: never terminal, vanished, or given up although its executor was alive.
  let lost = 0;
  let terminal = 0;
  for (const id of accepted) {
    const x = finals.get(id);
    if (!x) {
      lost++;
      details.push(`lost: execution ${id} was answered but is not in the state of record`);
    } else if (!isTerminalExecution(x.state)) {
      lost++;
      details.push(`lost: never terminal: ${show(x)}`);
    } else terminal++;
  }
  for (const [id, versions] of o.history.executions) {
    const x = finals.get(id)!;
    const everKeys = new Set(versions.flatMap((v) => v.tasks.map((t) => t.key)));
    for (const key of everKeys) {
      if (!x.tasks.some((t) => t.key === key)) {
        lost++;
        details.push(`lost: task ${key} vanished from the record: ${show(x)}`);
      }
    }
    for (const t of x.tasks) {
      const diedForReal = o.killed.includes(t.executor_name);
      const designedUnknown = kindOf(x) === 'amo' && dead.has(t.executor_name);
      if (((t.state === 'LOST' || t.state === 'SKIPPED') && !diedForReal) || (t.state === 'UNKNOWN' && !designedUnknown && !diedForReal)) {
        lost++;
        details.push(`lost: task ${t.key} ended ${t.state} on ${t.executor_name || '(none)'}, which is alive: ${show(x, t.key)}`);
      }
    }
  }
  for (const task of tasks.keys()) {
    const [id, ...rest] = task.split('.');
    const key = rest.join('.');
    const x = finals.get(id!);
    if (!x || !x.tasks.some((t) => t.key === key)) {
      lost++;
      details.push(`lost: task ${task} ran but is not in the record: ${show(x)}`);
    }
  }

  // Tasks run by more than one run.
  let runTwice = 0;
  let runTwiceAfterDeath = 0;
  let amoRunTwice = 0;
  for (const [task, runs] of tasks) {
    if (runs.length < 2) continue;
    const x = finals.get(runs[0]!.execution);
    const key = task.slice(runs[0]!.execution.length + 1);
    const t = x?.tasks.find((v) => v.key === key);
    const line = `task ${task} ran ${runs.length} times: ${show(x, key)}`;
    if (kindOf(x) === 'amo') {
      amoRunTwice++;
      details.push(`at_most_once run twice: ${line}`);
    } else if (t?.pool && runs.slice(0, -1).some((r) => dead.has(r.executor))) {
      runTwiceAfterDeath++;
      details.push(`(allowed) run again after its executor died or was declared dead: ${line}`);
    } else {
      runTwice++;
      details.push(`run twice: ${line}`);
    }
  }

  // Recorded twice: a task's result replaced by another one.
  let recordedTwice = 0;
  for (const [id, versions] of o.history.executions) {
    const keys = new Set(versions.flatMap((v) => v.tasks.map((t) => t.key)));
    for (const key of keys) {
      const results: string[] = [];
      for (const v of versions) {
        const t = v.tasks.find((task) => task.key === key);
        if (!t || !RESULTS.has(t.state)) continue;
        const r = `${t.state} attempt ${t.attempts} exit ${t.exit_code ?? '-'} at ${t.finished_at_ms} on ${t.executor_name}`;
        if (results[results.length - 1] !== r) results.push(r);
      }
      if (results.length > 1) {
        recordedTwice++;
        details.push(`recorded twice: ${id}.${key}: ${results.join(' → ')}`);
      }
    }
  }

  // Serialized runs at once, in the order of the side-effect file.
  const serial = o.runs.filter((r) => kindOf(finals.get(r.execution)) === 'serial');
  const hasSerial = [...o.jobs.values()].includes('serial');
  const overlap = maxOverlap(serial);
  if (overlap.max > 1) {
    details.push(`lock held by ${overlap.max} runs at once (lines of the side-effect file):`);
    for (const r of overlap.at) {
      const key = r.task.slice(r.execution.length + 1);
      details.push(`  ${r.task}.${r.attempt}@${r.executor} lines ${r.startLine}-${r.endLine ?? '(no end line)'}: ${show(finals.get(r.execution), key)}`);
    }
  }

  // Time to settle: from the fault's end until the last execution accepted before it first
  // became terminal (those accepted later ran on a healthy GRID; they count in every other column).
  let settleMs: number | null = null;
  if (o.settled) {
    const firstTerminal = [...o.history.executions.values()]
      .filter((vs) => vs[0]!.created_at_ms <= o.faultEndMs)
      .map((vs) => vs.find((v) => isTerminalExecution(v.state))?.finished_at_ms ?? 0);
    settleMs = Math.max(0, Math.max(0, ...firstTerminal) - o.faultEndMs);
  }

  return {
    scenario: o.scenario,
    submitted: o.submitted,
    accepted: accepted.size,
    terminal,
    lost,
    runTwice,
    runTwiceAfterDeath,
    recordedTwice,
    amoRunTwice: o.amo === 'yes' ? amoRunTwice : o.amo === 'n/a' ? 'n/a' : null,
    maxLockHolders: hasSerial ? overlap.max : null,
    settleMs,
    details,
    notes: [],
  };
}

/** An execution as one line: its state and, for one task or all, state/attempt/executor/reason and runs. */
function brief(x: Execution | undefined, taskKey: string | undefined, runs: Map<string, Run[]>): string {
  if (!x) return '(no record)';
  const task = (t: Task): string => {
    const r = (runs.get(`${x.id}.${t.key}`) ?? []).map((v) => `#${v.attempt}@${v.executor}${v.endLine === undefined ? '(no end)' : ''}`);
    const losses = `${t.losses ? ` losses ${t.losses}` : ''}${t.lock_token ? ` token ${t.lock_token}` : ''}`;
    const late = t.late_results?.length ? ` late ${t.late_results.map((l) => `#${l.attempt}@${l.executor_name}:${l.outcome}`).join(',')}` : '';
    return `${t.key} ${t.state} #${t.attempts}@${t.executor_name || '-'}${losses}${late} "${t.reason}" runs [${r.join(' ')}]`;
  };
  const shown = x.tasks.filter((t) => taskKey === undefined || t.key === taskKey);
  return `${x.id} ${x.job} ${x.state}${x.reason ? ` "${x.reason}"` : ''}: ${shown.map(task).join('; ')}`;
}
