// One row per chaos scenario, the invariants a row must hold, and the one-screen table.

export interface Row {
  scenario: string;
  /** Execute calls made. */
  submitted: number;
  /** Executions the state of record holds (answered or not). */
  accepted: number;
  /** Accepted executions in a terminal state at the end. */
  terminal: number;
  /** Accepted executions never terminal, tasks that vanished, and work given up on a live executor. */
  lost: number;
  /** Tasks run by 2+ runs, with no executor death to explain it. */
  runTwice: number;
  /** Pool tasks run again because the executor of an earlier run died or was declared dead. */
  runTwiceAfterDeath: number;
  /** Tasks whose recorded result was replaced by a second one. */
  recordedTwice: number;
  /** at_most_once tasks run by 2+ runs; 'n/a': the definitions refuse on_lost; null: none in this scenario. */
  amoRunTwice: number | 'n/a' | null;
  /** Serialized runs between their start and end at once; null: no serialized job here. */
  maxLockHolders: number | null;
  /** From the fault's end until every execution accepted before it was terminal; null: never. */
  settleMs: number | null;
  /** Why each counted thing was counted, with the records and runs involved. */
  details: string[];
  /** What the fault did (runs it hit, executors declared dead, calls refused, redeliveries). */
  notes: string[];
}

/** The invariants a row breaks, one line each (empty: it holds them all). */
export function violations(r: Row): string[] {
  const out: string[] = [];
  if (r.lost > 0) out.push(`lost ${r.lost}`);
  // More executions than Execute calls: a retried call started a second one.
  if (r.accepted > r.submitted) out.push(`executions created twice ${r.accepted - r.submitted}`);
  if (r.runTwice > 0) out.push(`run twice ${r.runTwice}`);
  if (r.recordedTwice > 0) out.push(`recorded twice ${r.recordedTwice}`);
  if (typeof r.amoRunTwice === 'number' && r.amoRunTwice > 0) out.push(`at_most_once run twice ${r.amoRunTwice}`);
  if ((r.maxLockHolders ?? 0) > 1) out.push(`lock holders ${r.maxLockHolders}`);
  if (r.accepted === 0) out.push('nothing was accepted: the scenario measured nothing');
  return out;
}

const COLUMNS: Array<[string, (r: Row) => string]> = [
  ['scenario', (r) => r.scenario],
  ['submitted', (r) => String(r.submitted)],
  ['accepted', (r) => String(r.accepted)],
  ['terminal', (r) => String(r.terminal)],
  ['lost', (r) => String(r.lost)],
  ['run 2x', (r) => String(r.runTwice)],
  ['2x after death', (r) => String(r.runTwiceAfterDeath)],
  ['recorded 2x', (r) => String(r.recordedTwice)],
  ['amo run 2x', (r) => (r.amoRunTwice === null ? '-' : String(r.amoRunTwice))],
  ['lock holders', (r) => (r.maxLockHolders === null ? '-' : String(r.maxLockHolders))],
  ['settle', (r) => (r.settleMs === null ? 'never' : `${(r.settleMs / 1000).toFixed(1)}s`)],
  ['', (r) => (violations(r).length ? 'FAIL' : 'ok')],
];

/** The table: a header, one line per row; numbers right-aligned. */
export function renderTable(rows: Row[]): string {
  const cells = [COLUMNS.map(([h]) => h), ...rows.map((r) => COLUMNS.map(([, f]) => f(r)))];
  const widths = COLUMNS.map((_, i) => Math.max(...cells.map((c) => c[i]!.length)));
  return cells
    .map((c) => c.map((v, i) => (i === 0 || i === c.length - 1 ? v.padEnd(widths[i]!) : v.padStart(widths[i]!))).join('  ').trimEnd())
    .join('\n');
}

/** What each scenario's fault did, a line or two each. */
export function renderNotes(rows: Row[]): string {
  return rows.map((r) => `${r.scenario}: ${r.notes.join('; ')}`).join('\n');
}

/** The details of every row that breaks an invariant, at most `perRow` lines each. */
export function renderFailures(rows: Row[], perRow = 12): string {
  return rows
    .filter((r) => violations(r).length > 0)
    .map((r) => {
      const more = r.details.length > perRow ? [`  … ${r.details.length - perRow} more`] : [];
      return [`${r.scenario}: ${violations(r).join(', ')}`, ...r.details.slice(0, perRow).map((d) => `  ${d}`), ...more].join('\n');
    })
    .join('\n');
}
