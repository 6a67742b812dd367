import { describe, it, expect } from 'vitest';
import { ValidationError } from '../../src/errors.js';
import { ExecutionState, TaskState, type Execution, type Task } from '../../src/gen/grid/v1/types.js';
import {
  executionJson,
  executionStateName,
  executionsTable,
  parseExecutionState,
  statusJson,
  statusText,
  taskStateName,
  taskSummary,
  workersMap,
} from '../../src/cli/executions-format.js';
import { parseCountOrPercent, parseDuration, parsePositiveInt, parseSeconds, parseSince, parseWholeNumber } from '../../src/cli/flags.js';
import { executionsShown, statusShown } from '../../src/cli/executions-format.js';
import { jobJson, jobShown, jobsShown } from '../../src/cli/job-format.js';
import { OUTPUTS, render, type Shown } from '../../src/cli/render.js';
import { jobInfoToPb } from '../../src/controller/doors/grpc/convert.js';
import { parseJobDefinition } from '../../src/domain/jobdef.js';
import type { StoredJob } from '../../src/domain/job.js';
import { parse as parseYaml } from 'yaml';

const T0 = Date.UTC(2026, 10, 22, 2, 37, 24);

function task(name: string, state: TaskState, extra: Partial<Task> = {}): Task {
  return { executorId: `id-${name}`, executorName: name, state, attempts: 1, startedAtMs: 0, finishedAtMs: 0, reason: '', wave: 0, key: `id-${name}`, lockToken: 0, lateResults: [], ...extra };
}

function execution(tasks: Task[], extra: Partial<Execution> = {}): Execution {
  return {
    id: '01JD3V0Q8W4Z5M2K7T9XG6B1RA', job: 'hello-world', jobVersion: 2, args: { NAME: 'ops' }, target: 'all', requester: 'dev-admin',
    state: ExecutionState.EXECUTION_STATE_FAILED, reason: '1 of 3 executors failed', createdAtMs: T0, updatedAtMs: T0 + 5_000,
    finishedAtMs: T0 + 5_000, timeoutSeconds: 30, batchSize: 0, maxFailures: 0, waitOfflineMs: 0, tasks, ...extra,
  };
}

function validationMessage(fn: () => unknown): string {
  try {
    fn();
  } catch (err) {
    expect(err).toBeInstanceOf(ValidationError);
    return (err as Error).message;
  }
  throw new Error('expected a ValidationError');
}

const threeTasks = [
  task('web-1', TaskState.TASK_STATE_SUCCEEDED, { exitCode: 0, startedAtMs: T0 + 1_000, finishedAtMs: T0 + 2_500 }),
  task('web-2', TaskState.TASK_STATE_FAILED, { exitCode: 3, attempts: 2, startedAtMs: T0 + 1_000, finishedAtMs: T0 + 4_000, reason: 'exit code 3' }),
  task('web-3', TaskState.TASK_STATE_SUCCEEDED, { exitCode: 0, startedAtMs: T0 + 1_200, finishedAtMs: T0 + 2_000 }),
];

describe('flag values', () => {
  it('durations: 90s, 10m, 2h, 1h30m, plain seconds', () => {
    expect(parseDuration('90s', '--wait-offline')).toBe(90_000);
    expect(parseDuration('10m', '--wait-offline')).toBe(600_000);
    expect(parseDuration('2h', '--wait-offline')).toBe(7_200_000);
    expect(parseDuration('1h30m', '--wait-offline')).toBe(5_400_000);
    expect(parseDuration('1h0m15s', '--wait-offline')).toBe(3_615_000);
    expect(parseDuration('45', '--wait-offline')).toBe(45_000);
    expect(parseDuration(' 2H ', '--wait-offline')).toBe(7_200_000);
    expect(parseDuration('0', '--wait-offline')).toBe(0);
  });

  it('bad durations name the flag and the accepted forms', () => {
    for (const bad of ['', 'soon', '10 m', '1m1h', '-5', '1.5h', 'h', '10d']) {
      expect(validationMessage(() => parseDuration(bad, '--wait-offline'))).toMatch(/^--wait-offline: .* is not a duration; write e\.g\. 90s, 10m, 2h, 1h30m/);
    }
  });

  it('--timeout takes seconds or a duration, more than zero', () => {
    expect(parseSeconds('60', '--timeout')).toBe(60);
    expect(parseSeconds('2m', '--timeout')).toBe(120);
    expect(validationMessage(() => parseSeconds('0', '--timeout'))).toContain('more than zero');
  });

  it('N or N% for --batch-size and --max-failures', () => {
    expect(parseCountOrPercent('5', '--batch-size', 1)).toBe('5');
    expect(parseCountOrPercent(' 25% ', '--batch-size', 1)).toBe('25%');
    expect(parseCountOrPercent('0', '--max-failures', 0)).toBe('0');
    expect(validationMessage(() => parseCountOrPercent('0', '--batch-size', 1))).toBe('--batch-size: "0" must be at least 1');
    expect(validationMessage(() => parseCountOrPercent('150%', '--max-failures', 0))).toBe('--max-failures: 150% is more than 100%');
    expect(validationMessage(() => parseCountOrPercent('a lot', '--batch-size', 1))).toContain('is not a number of executors');
  });

  it('--limit is a whole number ≥ 1', () => {
    expect(parsePositiveInt('20', '--limit')).toBe(20);
    expect(validationMessage(() => parsePositiveInt('0', '--limit'))).toContain('--limit: "0" must be a whole number');
    expect(validationMessage(() => parsePositiveInt('x', '--limit'))).toContain('--limit');
  });

  it('--tail is a whole number ≥ 0', () => {
    expect(parseWholeNumber('0', '--tail')).toBe(0);
    expect(parseWholeNumber(' 25 ', '--tail')).toBe(25);
    for (const bad of ['x', '-1', '1.5', '', '99999999999']) {
      expect(validationMessage(() => parseWholeNumber(bad, '--tail'))).toBe(`--tail: ${JSON.stringify(bad)} must be a whole number ≥ 0`);
    }
  });

  it('--since: how long ago, or an RFC 3339 time', () => {
    const now = Date.UTC(2026, 10, 22, 3, 0, 0);
    expect(parseSince('10m', '--since', now)).toBe(now - 600_000);
    expect(parseSince('1h30m', '--since', now)).toBe(now - 5_400_000);
    expect(parseSince('45', '--since', now)).toBe(now - 45_000);
    expect(parseSince('2026-11-22T02:00:00Z', '--since', now)).toBe(Date.UTC(2026, 10, 22, 2, 0, 0));
    expect(parseSince('2026-11-22T04:00:00.250+02:00', '--since', now)).toBe(Date.UTC(2026, 10, 22, 2, 0, 0, 250));
    for (const bad of ['yesterday', '2026-11-22', '2026-11-22T02:00:00', '2026-13-40T00:00:00Z', '10d', '']) {
      expect(validationMessage(() => parseSince(bad, '--since', now))).toBe(
        `--since: ${JSON.stringify(bad)} is not a duration (10m, 2h, 1h30m or seconds) or an RFC 3339 time (2026-11-22T03:00:00Z)`,
      );
    }
  });
});

describe('state names', () => {
  it('prints states without the enum prefix', () => {
    expect(executionStateName(ExecutionState.EXECUTION_STATE_SUCCEEDED)).toBe('SUCCEEDED');
    expect(executionStateName(ExecutionState.EXECUTION_STATE_TIMED_OUT)).toBe('TIMED_OUT');
    expect(taskStateName(TaskState.TASK_STATE_LOST)).toBe('LOST');
  });

  it('parses --state names case-insensitively', () => {
    expect(parseExecutionState('failed')).toBe(ExecutionState.EXECUTION_STATE_FAILED);
    expect(parseExecutionState('Timed-Out')).toBe(ExecutionState.EXECUTION_STATE_TIMED_OUT);
    expect(parseExecutionState('timed_out')).toBe(ExecutionState.EXECUTION_STATE_TIMED_OUT);
    expect(parseExecutionState('EXECUTION_STATE_QUEUED')).toBe(ExecutionState.EXECUTION_STATE_QUEUED);
  });

  it('a wrong name is a ValidationError naming the valid ones', () => {
    expect(validationMessage(() => parseExecutionState('succeded'))).toBe(
      '--state: "succeded" is not one of QUEUED, DISPATCHED, RUNNING, SUCCEEDED, FAILED, CANCELLED, TIMED_OUT (did you mean "SUCCEEDED"?)',
    );
    expect(validationMessage(() => parseExecutionState('unspecified'))).toMatch(/^--state: "unspecified" is not one of QUEUED,/);
  });
});

describe('task summaries and the list', () => {
  it('TASKS column', () => {
    const S = TaskState.TASK_STATE_SUCCEEDED;
    expect(taskSummary([task('a', S), task('b', S), task('c', S)])).toBe('3/3 ok');
    expect(taskSummary(threeTasks)).toBe('2/3 ok, 1 failed');
    expect(taskSummary([task('a', S), task('b', TaskState.TASK_STATE_RUNNING), task('c', TaskState.TASK_STATE_PENDING), task('d', TaskState.TASK_STATE_SKIPPED)])).toBe(
      '1/4 ok, 1 skipped, 1 running, 1 pending',
    );
    expect(taskSummary([])).toBe('-');
  });

  it('executions table', () => {
    const running = execution([task('web-1', TaskState.TASK_STATE_RUNNING)], {
      id: '01JD3V0Q8W4Z5M2K7T9XG6B1RB', state: ExecutionState.EXECUTION_STATE_RUNNING, finishedAtMs: 0, job: 'resize',
    });
    expect(executionsTable([execution(threeTasks), running], T0 + 12_000)).toBe(
      [
        'ID                          JOB          STATE    TASKS              CREATED               DURATION',
        '01JD3V0Q8W4Z5M2K7T9XG6B1RA  hello-world  FAILED   2/3 ok, 1 failed   2026-11-22 02:37:24Z  5.0s',
        '01JD3V0Q8W4Z5M2K7T9XG6B1RB  resize       RUNNING  0/1 ok, 1 running  2026-11-22 02:37:24Z  12s so far',
      ].join('\n'),
    );
  });
});

describe('status', () => {
  it('shows the execution, then one row per task', () => {
    expect(statusText(execution(threeTasks), T0 + 60_000)).toBe(
      [
        'Execution: 01JD3V0Q8W4Z5M2K7T9XG6B1RA',
        'State:     FAILED',
        'Job:       hello-world (version 2)',
        'Target:    all',
        'Requester: dev-admin',
        'Created:   2026-11-22 02:37:24Z',
        'Duration:  5.0s',
        'Reason:    1 of 3 executors failed',
        'Args:      NAME=ops',
        'Timeout:   30s',
        '',
        'EXECUTOR  STATE      EXIT  ATTEMPTS  STARTED               DURATION  REASON',
        'web-1     SUCCEEDED  0     1         2026-11-22 02:37:25Z  1.5s      -',
        'web-2     FAILED     3     2         2026-11-22 02:37:25Z  3.0s      exit code 3',
        'web-3     SUCCEEDED  0     1         2026-11-22 02:37:25Z  800ms     -',
      ].join('\n'),
    );
  });

  it('adds a WAVE column for batched rollouts and shows unstarted and pool tasks', () => {
    const e = execution(
      [
        task('web-2', TaskState.TASK_STATE_PENDING, { wave: 2, attempts: 0 }),
        task('web-1', TaskState.TASK_STATE_RUNNING, { wave: 1, startedAtMs: T0 + 1_000 }),
        task('', TaskState.TASK_STATE_PENDING, { executorId: '', key: 'pool.web.0', attempts: 0 }),
      ],
      { state: ExecutionState.EXECUTION_STATE_RUNNING, finishedAtMs: 0, batchSize: 1, reason: '' },
    );
    const text = statusText(e, T0 + 31_000);
    expect(text).toContain('Duration:   31s so far');
    expect(text).toContain('Batch size: 1');
    expect(text.split('\n\n')[1]).toBe(
      [
        'EXECUTOR      WAVE  STATE    EXIT  ATTEMPTS  STARTED               DURATION    REASON',
        '(pool.web.0)  0     PENDING  -     0         -                     -           -',
        'web-1         1     RUNNING  -     1         2026-11-22 02:37:25Z  30s so far  -',
        'web-2         2     PENDING  -     0         -                     -           -',
      ].join('\n'),
    );
  });

  it('without tasks yet', () => {
    expect(statusText(execution([], { state: ExecutionState.EXECUTION_STATE_QUEUED, finishedAtMs: 0 }), T0 + 500)).toMatch(/Duration: {2}500ms so far[\s\S]*\n\nno tasks yet$/);
    const failed = execution([], { state: ExecutionState.EXECUTION_STATE_FAILED, reason: 'node:nope: no executor named "nope"' });
    expect(statusText(failed, T0 + 500)).toMatch(/\n\nno tasks: it never reached an executor$/);
  });

  it('json: the execution with state names plus the workers map', () => {
    const j = statusJson(execution(threeTasks));
    expect(j.state).toBe('FAILED');
    expect(j.tasks.map((t) => t.state)).toEqual(['SUCCEEDED', 'FAILED', 'SUCCEEDED']);
    expect(j.id).toBe('01JD3V0Q8W4Z5M2K7T9XG6B1RA');
    expect(j.workers).toEqual({
      'web-1': { state: 'SUCCEEDED', exit_code: 0, attempts: 1, started_at: '2026-11-22T02:37:25.000Z', finished_at: '2026-11-22T02:37:26.500Z', reason: '' },
      'web-2': { state: 'FAILED', exit_code: 3, attempts: 2, started_at: '2026-11-22T02:37:25.000Z', finished_at: '2026-11-22T02:37:28.000Z', reason: 'exit code 3' },
      'web-3': { state: 'SUCCEEDED', exit_code: 0, attempts: 1, started_at: '2026-11-22T02:37:25.200Z', finished_at: '2026-11-22T02:37:26.000Z', reason: '' },
    });
    // Survives a round trip through JSON text.
    expect(JSON.parse(JSON.stringify(j)).workers['web-2'].exit_code).toBe(3);
  });

  it('workers: unstarted tasks have nulls; pool tasks are keyed by task key; clashes stay apart', () => {
    const w = workersMap([
      task('web-1', TaskState.TASK_STATE_PENDING, { attempts: 0 }),
      task('', TaskState.TASK_STATE_PENDING, { executorId: '', key: 'pool.web.0' }),
      task('web-1', TaskState.TASK_STATE_SUCCEEDED, { key: 'pool.web.1', exitCode: 0 }),
    ]);
    expect(Object.keys(w)).toEqual(['web-1', 'pool.web.0', 'web-1 (pool.web.1)']);
    expect(w['web-1']).toEqual({ state: 'PENDING', exit_code: null, attempts: 0, started_at: null, finished_at: null, reason: '' });
  });

  it('executionJson leaves the other fields as they are', () => {
    const e = execution(threeTasks);
    const j = executionJson(e);
    expect({ ...j, state: e.state, tasks: e.tasks }).toEqual(e);
  });
});

/** A job as the controller sends it, from a metadata.json object. */
function jobInfo(def: Record<string, unknown>, version = 4) {
  const stored: StoredJob = {
    definition: parseJobDefinition(JSON.stringify(def)),
    version,
    created_by: 'admin',
    created_at_ms: T0,
    updated_by: 'ops',
    updated_at_ms: T0 + 60_000,
  };
  return jobInfoToPb(stored);
}

const hello = {
  name: 'hello-world',
  description: 'says hello',
  command: ['echo', 'hello {{NAME}}'],
  timeout_seconds: 30,
  on_lost: 'fail',
  env_vars: { secrets: [], args: [{ name: 'NAME', description: 'who to greet', required: false, default: 'world' }] },
};

const podJob = {
  name: 'report',
  description: 'a pod',
  image_name: 'registry.example.com/report:1.0',
  resources: { requests: { cpu: '500m' }, limits: { memory: '1Gi' } },
  node_selector: { 'kubernetes.io/arch': 'amd64' },
  tolerations: [{ key: 'gpu', operator: 'Exists', effect: 'NoSchedule' }],
  security_context: { run_as_user: 1000 },
};

describe('output formats', () => {
  const shown: Shown = { data: [{ name: 'a', n: 1 }], names: ['a', 'b'], text: () => 'TABLE', wide: () => 'WIDE TABLE' };

  it('table, wide, json, yaml and name, and nothing else', () => {
    expect(OUTPUTS).toEqual(['table', 'wide', 'json', 'yaml', 'name']);
    expect(render('table', shown, 'list')).toBe('TABLE');
    expect(render('wide', shown, 'list')).toBe('WIDE TABLE');
    expect(render('wide', { ...shown, wide: undefined }, 'list')).toBe('TABLE');
    expect(render('json', shown, 'list')).toBe('[\n  {\n    "name": "a",\n    "n": 1\n  }\n]');
    expect(render('yaml', shown, 'list')).toBe('- name: a\n  n: 1');
    expect(render('name', shown, 'list')).toBe('a\nb');
    expect(render('name', { ...shown, names: [] }, 'list')).toBeUndefined();
  });

  it('name of a command that prints nothing with a name is a usage error naming the valid formats', () => {
    const msg = validationMessage(() => render('name', { data: {}, text: () => '' }, 'health'));
    expect(msg).toBe('--output: grid-cli health prints nothing with a name; use one of table, wide, json, yaml');
  });

  it('yaml is the json object: undefined fields dropped, strings that look like numbers quoted', () => {
    const data = { a: undefined, mode: '0644', yes: 'yes', n: 3, list: [] };
    expect(parseYaml(render('yaml', { data, text: () => '' }, 'x')!)).toEqual(JSON.parse(render('json', { data, text: () => '' }, 'x')!));
  });
});

describe('jobs in every format', () => {
  it("json and yaml: metadata.json's field names, name and version first, every stored field", () => {
    const info = jobInfo({ ...hello, ...podJob, name: 'report', command: undefined, on_lost: 'retry', runner: 'kubernetes' });
    const j = jobJson(info);
    expect(Object.keys(j).slice(0, 2)).toEqual(['name', 'version']);
    expect(j).toMatchObject({
      name: 'report',
      version: 4,
      image_name: 'registry.example.com/report:1.0',
      timeout_seconds: 30,
      on_lost: 'retry',
      resources: podJob.resources,
      node_selector: podJob.node_selector,
      tolerations: podJob.tolerations,
      security_context: podJob.security_context,
    });
    expect(JSON.stringify(j)).not.toMatch(/imageName|timeoutSeconds|envVars/);
    const yaml = render('yaml', jobShown(info), 'describe')!;
    expect(yaml).toMatch(/^name: report\nversion: 4\n/);
    expect(yaml).toMatch(/^node_selector:\n {2}kubernetes\.io\/arch: amd64$/m);
    // What describe prints is a definition again, once version is taken off.
    const { version, ...def } = parseYaml(yaml) as Record<string, unknown>;
    expect(version).toBe(4);
    expect(parseJobDefinition(JSON.stringify(def))).toEqual(parseJobDefinition(info.definitionJson));
  });

  it('a controller without definition_json: the message rebuilt in the same names', () => {
    const info = { ...jobInfo(hello), definitionJson: '' };
    expect(jobJson(info)).toEqual({ ...parseJobDefinition(JSON.stringify(hello)), on_lost: undefined, version: 4 });
  });

  it('list: table, wide with more columns, names, and json/yaml as a list of jobs', () => {
    const jobs = [jobInfo(hello, 2), jobInfo(podJob, 1)];
    const s = jobsShown(jobs);
    expect(render('table', s, 'list')).toBe(
      [
        'NAME         RUNNER      VERSION  UPDATED               DESCRIPTION',
        'hello-world  host        2        2026-11-22 02:38:24Z  says hello',
        'report       kubernetes  1        2026-11-22 02:38:24Z  a pod',
      ].join('\n'),
    );
    expect(render('wide', s, 'list')).toBe(
      [
        'NAME         RUNNER      VERSION  UPDATED               UPDATED BY  TARGET  TIMEOUT  ARGS  RUNS                             DESCRIPTION',
        "hello-world  host        2        2026-11-22 02:38:24Z  ops         -       30s      NAME  echo 'hello {{NAME}}'            says hello",
        'report       kubernetes  1        2026-11-22 02:38:24Z  ops         -       -        -     registry.example.com/report:1.0  a pod',
      ].join('\n'),
    );
    expect(render('name', s, 'list')).toBe('hello-world\nreport');
    expect((JSON.parse(render('json', s, 'list')!) as Array<{ name: string; version: number }>).map((j) => [j.name, j.version])).toEqual([
      ['hello-world', 2],
      ['report', 1],
    ]);
    expect(render('table', jobsShown([]), 'list')).toBe('no jobs yet: grid-cli create FILE adds one');
    expect(render('name', jobsShown([]), 'list')).toBeUndefined();
    expect(render('json', jobsShown([]), 'list')).toBe('[]');
  });

  it('describe shows the fields the JobDefinition message lacks', () => {
    const text = render('table', jobShown(jobInfo(podJob)), 'describe')!;
    expect(text).toMatch(/^Resources:\s+requests cpu=500m; limits memory=1Gi$/m);
    expect(text).toMatch(/^Node selector:\s+kubernetes\.io\/arch=amd64$/m);
    expect(text).toMatch(/^Tolerations:\s+gpu exists:NoSchedule$/m);
    expect(render('table', jobShown(jobInfo(hello)), 'describe')).toMatch(/^On lost:\s+fail$/m);
  });
});

describe('executions in every format', () => {
  it('list: wide adds version, target, requester and reason; name gives the ids', () => {
    const list = [execution(threeTasks)];
    const s = executionsShown(list, 'no executions yet');
    expect(render('wide', s, 'executions list')!.split('\n')[0]).toMatch(/^ID\s+JOB\s+STATE\s+TASKS\s+CREATED\s+DURATION\s+VERSION\s+TARGET\s+REQUESTER\s+REASON$/);
    expect(render('wide', s, 'executions list')!.split('\n')[1]).toMatch(/\s2\s+all\s+dev-admin\s+1 of 3 executors failed$/);
    expect(render('name', s, 'executions list')).toBe('01JD3V0Q8W4Z5M2K7T9XG6B1RA');
    expect(render('table', executionsShown([], 'no executions yet'), 'executions list')).toBe('no executions yet');
    expect(parseYaml(render('yaml', statusShown(list[0]!), 'status')!)).toEqual(JSON.parse(render('json', statusShown(list[0]!), 'status')!));
  });
});
