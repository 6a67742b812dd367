// grid-cli's global options against the commands' own, --version, the exit-code table and
// `config import`, through runCli with a fake client (no server).

import { mkdtempSync, readFileSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { Command, Option } from 'commander';
import { beforeEach, describe, expect, it, vi } from 'vitest';
import type { ExecuteRequest } from '../../src/gen/grid/v1/controller.js';
import { ExecutionState, type Execution } from '../../src/gen/grid/v1/types.js';
import { PermissionDeniedError, UnauthenticatedError, UnavailableError } from '../../src/errors.js';

interface Fake {
  execute: ReturnType<typeof vi.fn>;
  getExecution: ReturnType<typeof vi.fn>;
  watchExecution: ReturnType<typeof vi.fn>;
  listJobs: ReturnType<typeof vi.fn>;
  whoAmI: ReturnType<typeof vi.fn>;
  clientOptions: Array<{ address?: string; timeoutMs?: number }>;
}

const fake = vi.hoisted(() => ({}) as Fake);

vi.mock('../../src/client/client.js', () => ({
  GridClient: class {
    readonly ctl: Fake;
    constructor(opts: { address?: string; timeoutMs?: number }) {
      fake.clientOptions.push(opts);
      this.ctl = fake;
    }
    close() {}
  },
}));

const { runCli, buildProgram } = await import('../../src/cli/main.js');

const ID = '01JD3V0Q8W4Z5M2K7T9XG6B1RA';

function execution(state: ExecutionState): Execution {
  return {
    id: ID, job: 'hello-world', jobVersion: 1, args: {}, target: 'all', requester: 'dev-admin', state, reason: '',
    createdAtMs: 1, updatedAtMs: 1, finishedAtMs: 2, timeoutSeconds: 0, batchSize: 0, maxFailures: 0, waitOfflineMs: 0, tasks: [],
  };
}

let home: string;

async function cli(argv: string[], env: NodeJS.ProcessEnv = {}) {
  const out: string[] = [];
  const err: string[] = [];
  const code = await runCli(argv, {
    out: (s) => out.push(s),
    err: (s) => err.push(s),
    isTTY: false,
    env: { GRID_CONTROLLER: '127.0.0.1:1', GRID_TOKEN: 't', HOME: home, XDG_CONFIG_HOME: home, ...env },
    cwd: home,
  });
  return { code, stdout: out.join('\n'), stderr: err.join('\n') };
}

beforeEach(() => {
  home = mkdtempSync(join(tmpdir(), 'grid-cli-globals-'));
  Object.assign(fake, {
    execute: vi.fn(async (req: ExecuteRequest) => ({ executionId: ID, execution: execution(ExecutionState.EXECUTION_STATE_QUEUED), dryRun: [], reused: false, req })),
    getExecution: vi.fn(),
    watchExecution: vi.fn(),
    listJobs: vi.fn(async () => ({ jobs: [] })),
    whoAmI: vi.fn(async () => ({ name: 'dev-admin', role: 'admin', groups: [], controllerVersion: '0.1.0', apiVersion: 'grid.v1' })),
    clientOptions: [],
  });
});

describe('global options and the commands own', () => {
  it('no command defines a long option that a global option also has, so neither can swallow the other', () => {
    const program = buildProgram({ out: () => {}, err: () => {}, isTTY: false, env: {}, cwd: home });
    const globals = new Set(program.options.map((o: Option) => o.long));
    const clashes: string[] = [];
    const visit = (c: Command, path: string): void => {
      for (const o of c.options) if (globals.has(o.long)) clashes.push(`${path} ${o.long}`);
      for (const sub of c.commands) visit(sub, `${path} ${sub.name()}`.trim());
    };
    for (const sub of program.commands) visit(sub, sub.name());
    expect(clashes).toEqual([]);
  });

  it("config set --controller H --token T (the README's example) saves both", async () => {
    const file = join(home, 'client.json');
    const r = await cli(['config', 'set', '--controller', 'grid.example.com:7070', '--token', 'secret-1', '--file', file]);
    expect(r).toEqual({ code: 0, stdout: `saved controller, token in ${file}`, stderr: '' });
    expect(JSON.parse(readFileSync(file, 'utf8'))).toEqual({ controller: 'grid.example.com:7070', token: 'secret-1' });
    expect(statSync(file).mode & 0o777).toBe(0o600);

    // Written before the command, as a global, it is the same.
    const again = await cli(['--request-timeout', '45s', 'config', 'set', '--file', file]);
    expect(again.code).toBe(0);
    expect(JSON.parse(readFileSync(file, 'utf8'))).toMatchObject({ controller: 'grid.example.com:7070', timeout_ms: 45_000 });

    const nothing = await cli(['config', 'set', '--file', file]);
    expect(nothing).toEqual({ code: 2, stdout: '', stderr: 'error: config set: nothing to save; give --controller HOST:PORT, --token TOKEN and/or --request-timeout DURATION' });
    const bad = await cli(['config', 'set', '--controller', 'no-port', '--file', file]);
    expect(bad.code).toBe(2);
    expect(bad.stderr).toMatch(/^error: [^\n]*controller[^\n]*no-port/);
  });

  it('--request-timeout takes a duration, anywhere on the line; a bad one names the flag', async () => {
    expect((await cli(['--request-timeout', '10s', 'list'])).code).toBe(0);
    expect((await cli(['list', '--request-timeout', '2m'])).code).toBe(0);
    expect(fake.clientOptions.map((o) => o.timeoutMs)).toEqual([10_000, 120_000]);
    const bad = await cli(['list', '--request-timeout', 'soon']);
    expect(bad).toEqual({ code: 2, stdout: '', stderr: 'error: --request-timeout: "soon" is not a duration; write e.g. 90s, 10m, 2h, 1h30m or plain seconds such as 45' });
    const zero = await cli(['list', '--request-timeout', '0']);
    expect(zero.stderr).toBe('error: --request-timeout: "0" must be more than zero');
  });

  it('--timeout is only the execution timeout of execute: elsewhere it is an unknown option', async () => {
    const r = await cli(['--timeout', '10s', 'list']);
    expect(r.code).toBe(2);
    expect(r.stderr).toMatch(/^error: unknown option '--timeout'/);
    expect(fake.listJobs).not.toHaveBeenCalled();
  });

  it("--arg takes its value whole, commas and '=' included; --args splits", async () => {
    const r = await cli(['execute', 'hello-world', '--arg', 'MSG=a,b=c', '--args', 'X=1,Y=2']);
    expect(r.code).toBe(0);
    expect((fake.execute.mock.calls[0]![0] as ExecuteRequest).args).toEqual({ MSG: 'a,b=c', X: '1', Y: '2' });
  });
});

describe('--version', () => {
  it("prints grid-cli's version and API, and the controller's", async () => {
    const r = await cli(['--version']);
    expect(r).toEqual({ code: 0, stdout: 'grid-cli 0.1.0 (API grid.v1)\ncontroller 0.1.0 (API grid.v1) at 127.0.0.1:1', stderr: '' });
    expect(fake.clientOptions[0]!.timeoutMs).toBe(3_000);
  });

  it('still prints its own when the controller does not answer, and exits 0', async () => {
    fake.whoAmI.mockRejectedValue(new UnavailableError('cannot reach the controller at 127.0.0.1:1: connect ECONNREFUSED'));
    const r = await cli(['-V']);
    expect(r).toEqual({ code: 0, stdout: 'grid-cli 0.1.0 (API grid.v1)\ncontroller: cannot reach the controller at 127.0.0.1:1: connect ECONNREFUSED', stderr: '' });
  });

  it('without a command or --version: the help, as a usage error', async () => {
    const r = await cli([]);
    expect(r.code).toBe(2);
    expect(r.stderr).toMatch(/^Usage: grid-cli/);
  });
});

describe('exit codes', () => {
  async function waitFor(state: ExecutionState): Promise<number> {
    fake.getExecution.mockResolvedValue(execution(state));
    fake.watchExecution.mockImplementation(async function* () {
      yield execution(state);
    });
    return (await cli(['execute', 'hello-world', '--wait'])).code;
  }

  it('execute --wait: 0 succeeded, 1 failed, 4 timed out, 5 cancelled', async () => {
    expect(await waitFor(ExecutionState.EXECUTION_STATE_SUCCEEDED)).toBe(0);
    expect(await waitFor(ExecutionState.EXECUTION_STATE_FAILED)).toBe(1);
    expect(await waitFor(ExecutionState.EXECUTION_STATE_TIMED_OUT)).toBe(4);
    expect(await waitFor(ExecutionState.EXECUTION_STATE_CANCELLED)).toBe(5);
  });

  it('2 bad input, 3 unavailable, 77 refused (auth)', async () => {
    expect((await cli(['execute'])).code).toBe(2);
    fake.listJobs.mockRejectedValueOnce(new UnavailableError('cannot reach the controller at 127.0.0.1:1: down'));
    expect((await cli(['list'])).code).toBe(3);
    fake.listJobs.mockRejectedValueOnce(new UnauthenticatedError('the token is not accepted'));
    expect((await cli(['list'])).code).toBe(77);
    fake.listJobs.mockRejectedValueOnce(new PermissionDeniedError('role viewer may not list jobs'));
    expect((await cli(['list'])).code).toBe(77);
  });
});

describe('config import', () => {
  it("takes Octavius's octavius_client.yaml keys, in any case, and says what it left", async () => {
    const octavius = join(home, 'octavius_client.yaml');
    writeFileSync(octavius, 'cp_host: grid.example.com:5050\nemail_id: ops@example.com\nACCESS_TOKEN: tok-1\nconnection_timeout_secs: 20\n');
    const file = join(home, 'client.json');
    const r = await cli(['config', 'import', octavius, '--file', file]);
    expect(r).toEqual({
      code: 0,
      stdout: `imported controller, token, request timeout from ${octavius} into ${file}`,
      stderr: 'not imported: email_id (GRID knows a caller by its token)',
    });
    expect(JSON.parse(readFileSync(file, 'utf8'))).toEqual({ controller: 'grid.example.com:5050', token: 'tok-1', timeout_ms: 20_000 });
  });

  it('reads ~/.octavius/octavius_client.yaml by default; a bad file is one line naming it', async () => {
    const missing = await cli(['config', 'import']);
    expect(missing).toEqual({ code: 2, stdout: '', stderr: `error: config ${join(home, '.octavius', 'octavius_client.yaml')}: file not found; give the path of octavius_client.yaml` });
    const bad = join(home, 'bad.yaml');
    writeFileSync(bad, 'cp_host: [a\n');
    const r = await cli(['config', 'import', bad]);
    expect(r.code).toBe(2);
    expect(r.stderr).toMatch(/^error: .*bad\.yaml.*invalid YAML at line \d+, column \d+/);
    writeFileSync(bad, 'email_id: ops@example.com\n');
    expect((await cli(['config', 'import', bad])).stderr).toMatch(/CP_HOST: missing/);
  });
});
