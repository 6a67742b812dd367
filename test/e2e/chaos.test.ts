// The chaos scenarios (test/chaos/scenarios.ts) at a small load: each brings up its own real
// nats-server, etcd, controller and executor processes, injects its fault while tasks run, and
// checks the invariants on what was recorded and what ran: nothing accepted is lost, no task runs
// twice (unless its executor died or was declared dead, for a pool task), no result is recorded
// twice, an at_most_once task never runs twice, a serialized job never has two runs at once.
// No timing is asserted; `make chaos` runs the same scenarios at a larger load and prints times.
//
// Needs the built programs: `npx tsc -p tsconfig.json`.

import { afterAll, describe, expect, it } from 'vitest';
import { FULL, QUICK, runScenario, SCENARIOS } from '../chaos/scenarios.js';
import { renderFailures, renderNotes, renderTable, violations, type Row } from '../chaos/table.js';

// `make chaos` sets GRID_CHAOS=full.
const scale = process.env.GRID_CHAOS === 'full' ? FULL : QUICK;
const rows: Row[] = [];

afterAll(() => {
  if (rows.length) console.log(`chaos (${scale.name}):\n${renderNotes(rows)}\n${renderFailures(rows)}\n${renderTable(rows)}`);
});

describe('faults under load', () => {
  for (const s of SCENARIOS) {
    it(`${s.name}: ${s.what}`, async () => {
      const row = await runScenario(s, scale);
      rows.push(row);
      expect(row.accepted, 'executions accepted').toBeGreaterThan(0);
      expect(violations(row), `${renderTable([row])}\n${row.notes.join('\n')}\n${row.details.join('\n')}`).toEqual([]);
    }, 240_000);
  }
});
