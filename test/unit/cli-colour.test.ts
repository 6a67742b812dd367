// Colour for states: only for a table on a terminal without NO_COLOR (or with FORCE_COLOR), and
// tables stay aligned however the cells are coloured.

import { stripVTControlCharacters } from 'node:util';
import { describe, expect, it } from 'vitest';
import { colourWanted, paintFor, plain } from '../../src/cli/colour.js';
import { executionsTable, statusText } from '../../src/cli/executions-format.js';
import { table } from '../../src/cli/output.js';
import { progressText } from '../../src/cli/progress.js';
import { ExecutionState, TaskState, type Execution, type Task } from '../../src/gen/grid/v1/types.js';

const T0 = Date.UTC(2026, 10, 22, 2, 37, 24);
const GREEN = '\x1b[32m';
const RED = '\x1b[31m';
const YELLOW = '\x1b[33m';
const CYAN = '\x1b[36m';
const ESC = '\x1b[';

const tty = (env: NodeJS.ProcessEnv = {}) => ({ isTTY: true, env });
const pipe = (env: NodeJS.ProcessEnv = {}) => ({ isTTY: false, env });
const onTTY = paintFor({ io: tty(), output: 'table' });

function task(name: string, state: TaskState): Task {
  return { executorId: `id-${name}`, executorName: name, state, attempts: 1, startedAtMs: T0, finishedAtMs: T0 + 1000, reason: '', wave: 0, key: `id-${name}`, lockToken: 0, lateResults: [] };
}

function execution(state: ExecutionState, tasks: Task[], id = '01JD3V0Q8W4Z5M2K7T9XG6B1RA'): Execution {
  return {
    id, job: 'hello-world', jobVersion: 1, args: {}, target: 'all', requester: 'dev-admin', state, reason: '',
    createdAtMs: T0, updatedAtMs: T0, finishedAtMs: T0 + 2000, timeoutSeconds: 0, batchSize: 0, maxFailures: 0, waitOfflineMs: 0, tasks,
  };
}

describe('when grid-cli colours', () => {
  it('on a terminal, for a table (wide too)', () => {
    expect(colourWanted(tty(), 'table')).toBe(true);
    expect(colourWanted(tty(), 'wide')).toBe(true);
  });

  it('not with NO_COLOR set to anything (an empty NO_COLOR counts as unset)', () => {
    expect(colourWanted(tty({ NO_COLOR: '1' }), 'table')).toBe(false);
    expect(colourWanted(tty({ NO_COLOR: 'yes please' }), 'table')).toBe(false);
    expect(colourWanted(tty({ NO_COLOR: '' }), 'table')).toBe(true);
  });

  it('not when the output is not a terminal, and never for JSON, YAML or names', () => {
    expect(colourWanted(pipe(), 'table')).toBe(false);
    for (const output of ['json', 'yaml', 'name'] as const) expect(colourWanted(tty(), output)).toBe(false);
    expect(colourWanted(pipe({ FORCE_COLOR: '1' }), 'json')).toBe(false);
  });

  it('FORCE_COLOR=1 forces it on (off the terminal, and over NO_COLOR); FORCE_COLOR=0 forces it off', () => {
    expect(colourWanted(pipe({ FORCE_COLOR: '1' }), 'table')).toBe(true);
    expect(colourWanted(pipe({ FORCE_COLOR: '1', NO_COLOR: '1' }), 'table')).toBe(true);
    expect(colourWanted(tty({ FORCE_COLOR: '0' }), 'table')).toBe(false);
    expect(colourWanted(tty({ FORCE_COLOR: 'false' }), 'table')).toBe(false);
  });
});

describe('the colour of each state', () => {
  it('green, red, yellow, cyan or none', () => {
    for (const s of ['SUCCEEDED', 'ACTIVE']) expect(onTTY(s)).toBe(`${GREEN}${s}\x1b[39m`);
    for (const s of ['FAILED', 'LOST', 'UNKNOWN', 'TIMED_OUT']) expect(onTTY(s).startsWith(RED)).toBe(true);
    for (const s of ['CANCELLED', 'DRAINING', 'EXPIRED', 'STOPPED']) expect(onTTY(s).startsWith(YELLOW)).toBe(true);
    expect(onTTY('RUNNING').startsWith(CYAN)).toBe(true);
    for (const s of ['PENDING', 'QUEUED', 'DISPATCHED', 'SKIPPED']) expect(onTTY(s)).toBe(s);
  });

  it('none at all when colour is off', () => {
    for (const io of [tty({ NO_COLOR: '1' }), pipe()]) {
      const paint = paintFor({ io, output: 'table' });
      expect(['SUCCEEDED', 'FAILED', 'CANCELLED', 'RUNNING'].map((s) => paint(s))).toEqual(['SUCCEEDED', 'FAILED', 'CANCELLED', 'RUNNING']);
    }
  });
});

describe('coloured tables', () => {
  it('table() pads by what shows: columns line up as without colour', () => {
    const rows = [
      ['web-1', 'SUCCEEDED', 'x'],
      ['web-22', 'FAILED', 'y'],
      ['w', 'PENDING', 'z'],
    ];
    const coloured = table(['NAME', 'STATE', 'NOTE'], rows.map(([n, s, x]) => [n, onTTY(s!), x]));
    expect(coloured).toContain(ESC);
    expect(stripVTControlCharacters(coloured)).toBe(table(['NAME', 'STATE', 'NOTE'], rows));
    expect(stripVTControlCharacters(coloured).split('\n')).toEqual(['NAME    STATE      NOTE', 'web-1   SUCCEEDED  x', 'web-22  FAILED     y', 'w       PENDING    z']);
  });

  it('status and executions list colour the states and keep their layout', () => {
    const failed = execution(ExecutionState.EXECUTION_STATE_FAILED, [task('web-1', TaskState.TASK_STATE_SUCCEEDED), task('web-2', TaskState.TASK_STATE_FAILED)]);
    const running = execution(ExecutionState.EXECUTION_STATE_RUNNING, [task('web-1', TaskState.TASK_STATE_RUNNING)], '01JD3V0Q8W4Z5M2K7T9XG6B1RB');
    const status = statusText(failed, T0 + 5000, onTTY);
    expect(status).toContain(`State:     ${RED}FAILED`);
    expect(status).toMatch(new RegExp(`web-1 +\\x1b\\[32mSUCCEEDED`));
    expect(stripVTControlCharacters(status)).toBe(statusText(failed, T0 + 5000));
    const list = executionsTable([failed, running], T0 + 5000, false, onTTY);
    expect(list).toContain(`${RED}FAILED`);
    expect(list).toContain(`${CYAN}RUNNING`);
    expect(stripVTControlCharacters(list)).toBe(executionsTable([failed, running], T0 + 5000));
    expect(statusText(failed, T0 + 5000, plain)).not.toContain(ESC);
  });

  it('execute --wait progress colours the failed and running counts when there are some', () => {
    expect(progressText({ total: 3, done: 1, failed: 1, running: 2, skipped: 0 }, onTTY)).toBe(`1/3 executors done, ${RED}1 failed\x1b[39m, ${CYAN}2 running\x1b[39m`);
    expect(progressText({ total: 3, done: 0, failed: 0, running: 0, skipped: 0 }, onTTY)).toBe('0/3 executors done, 0 failed, 0 running');
  });
});
