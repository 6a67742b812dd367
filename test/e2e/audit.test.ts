// The audit log end to end: every mutating call the test makes through grid-cli and the executor
// program — accepted and refused — leaves exactly one line in the controller's audit file, in
// order, with the right who / action / target / result / execution id; read-only calls and
// heartbeats leave none; no secret argument, token, executor secret or file content appears.
//
// Needs the built programs: `npx tsc -p tsconfig.json`.

import { randomUUID } from 'node:crypto';
import { readFileSync, statSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { GridClient } from '../../src/client/client.js';
import type { AuditLine } from '../../src/controller/audit.js';
import { readExecutorState, registerExecutor, startExecutor, stopExecutors, writeExecutorConfig } from '../harness/executor-process.js';
import { testClientTls } from '../harness/grpc-tls.js';
import { expectOk } from '../harness/pipeline-fleet.js';
import { cleanupProcesses, REGISTRATION_TOKEN, runCli, startController, tempDir, TOKENS, type RunningController, type RunResult } from '../harness/processes.js';
import { startServers, uniqueName, type TestServers } from '../harness/servers.js';

const WEB_TOKEN = 'e2e-audit-web-scoped-token-5555555';
const WRONG_TOKEN = 'e2e-audit-not-a-token-66666666';
const WRONG_REGISTRATION = 'e2e-audit-not-a-registration-token-777';
const SECRET = `secret-marker-${randomUUID()}`;
const FILE_MARKER = `file-content-marker-${randomUUID()}`;

let servers: TestServers;
let controller: RunningController;
let auditPath: string;
let dir: string;

beforeAll(async () => {
  servers = await startServers();
  controller = await startController({
    natsUrl: servers.natsUrl,
    etcdEndpoint: servers.etcdEndpoint,
    config: {
      tokens: [
        ...Object.entries(TOKENS).map(([role, token]) => ({ name: role, token, role })),
        { name: 'web-ops', token: WEB_TOKEN, role: 'operator', groups: ['web'] },
      ],
      registration_tokens: [{ name: 'e2e-rack', token: REGISTRATION_TOKEN }],
    },
  });
  // No audit_log in the config: the default place, under data_dir.
  const dataDir = (JSON.parse(readFileSync(controller.configFile, 'utf8')) as { data_dir: string }).data_dir;
  auditPath = join(dataDir, 'audit.log');
  dir = tempDir('grid-e2e-audit-');
});

afterAll(async () => {
  await stopExecutors();
  await cleanupProcesses();
  await servers?.stop();
});

type Expected = Omit<AuditLine, 'time' | 'error'> & { error?: RegExp };
const expected: Expected[] = [];
const operator = (name: keyof typeof TOKENS | 'web-ops', role = name === 'web-ops' ? 'operator' : name) => ({ kind: 'operator', name, role }) as AuditLine['who'];
const anonymous = { kind: 'anonymous' } as const;

/** Runs grid-cli with `token`; a mutating call's expected audit line is noted in the order made. */
async function cli(args: string[], token: string | undefined, line?: Omit<Expected, 'via'>): Promise<RunResult> {
  const r = await runCli(args, { address: controller.address, token });
  if (line) expected.push({ via: 'grpc', ...line });
  return r;
}

function expectRefused(r: RunResult): void {
  expect(r.code, `expected a refusal; stdout: ${r.stdout} stderr: ${r.stderr}`).not.toBe(0);
}

describe('the audit log', () => {
  it('holds one line per mutating call, in order, and no secret', async () => {
    const job = uniqueName('audited');
    const def = {
      name: job,
      shell: 'sleep 30',
      timeout_seconds: 60,
      target: 'group:web',
      env_vars: { secrets: [{ name: 'DB_PASSWORD' }], args: [{ name: 'COUNT', type: 'int', default: '1' }] },
    };
    const defPath = join(dir, 'job.json');
    writeFileSync(defPath, JSON.stringify(def));
    const badPath = join(dir, 'bad.json');
    writeFileSync(badPath, JSON.stringify({ name: job, timeout_seconds: 5 }));

    // Jobs: create, replace, and three refusals (role, bad input, bad token).
    expectOk(await cli(['create', defPath], TOKENS.admin, { who: operator('admin'), action: 'job.create', target: job, result: 'ok' }));
    expectOk(await cli(['create', defPath, '--replace'], TOKENS.admin, { who: operator('admin'), action: 'job.replace', target: job, result: 'ok' }));
    expectRefused(await cli(['create', defPath, '--replace'], TOKENS.operator, {
      who: operator('operator'), action: 'job.replace', target: job, result: 'permission_denied', error: /operator \(role operator\) may not change jobs/,
    }));
    // grid-cli checks a file before it sends it: the bad one goes straight over gRPC, as any client could send it.
    const badCreate = await cli(['create', badPath, '--replace'], TOKENS.admin);
    expect(badCreate.code).toBe(2);
    const admin = new GridClient({ address: controller.address, token: TOKENS.admin, timeoutMs: 10_000, tls: testClientTls() });
    await expect(admin.ctl.createJob({ definitionJson: readFileSync(badPath, 'utf8'), replace: true, expectedVersion: 0 })).rejects.toThrow(/command/);
    admin.close();
    expected.push({ via: 'grpc', who: operator('admin'), action: 'job.replace', target: job, result: 'validation', error: /command/ });
    expectRefused(await cli(['create', defPath], WRONG_TOKEN, { who: anonymous, action: 'job.create', target: job, result: 'unauthenticated', error: /token was not accepted/ }));
    // Read-only calls: no line.
    expectOk(await cli(['list'], TOKENS.viewer));
    expectOk(await cli(['describe', job], TOKENS.viewer));

    // Executors: a registration, and one with a token the controller does not know.
    const name = uniqueName('audit-web');
    const ex = await startExecutor({ controller: controller.address, name, groups: ['web'], config: { runners: ['host'] } });
    expected.push({ via: 'grpc', who: { kind: 'registration', token: 'e2e-rack' }, action: 'executor.register', target: name, result: 'ok', executor_id: ex.id });
    const executorSecret = readExecutorState(ex.stateFile).executor_secret;
    const intruder = writeExecutorConfig({ controller: controller.address, name: 'audit-intruder', registrationToken: WRONG_REGISTRATION });
    expectRefused(await registerExecutor(intruder.configFile));
    expected.push({ via: 'grpc', who: anonymous, action: 'executor.register', target: 'audit-intruder', result: 'unauthenticated', error: /registration token was not accepted/ });

    // Executions: one with a secret argument, a dry run, a scope refusal, bad input.
    const run = await cli(['execute', job, '--arg', `DB_PASSWORD=${SECRET}`, '--output', 'json'], TOKENS.operator);
    expectOk(run);
    const id = (JSON.parse(run.stdout) as { executionId: string }).executionId;
    expect(id).toMatch(/^[0-9A-Z]{26}$/);
    expected.push({ via: 'grpc', who: operator('operator'), action: 'execution.create', target: job, result: 'ok', execution_id: id, on: 'group:web' });
    expectOk(await cli(['execute', job, '--dry-run', '--target', 'all', '--arg', `DB_PASSWORD=${SECRET}`], TOKENS.operator, {
      who: operator('operator'), action: 'execution.create', target: job, result: 'ok', on: 'all', dry_run: true,
    }));
    expectRefused(await cli(['execute', job, '--target', 'all'], WEB_TOKEN, {
      who: operator('web-ops'), action: 'execution.create', target: job, result: 'permission_denied', on: 'all', error: /scoped to groups web/,
    }));
    // The controller quotes a bad value back to its caller; the audit line must not.
    const bad = await cli(['execute', job, '--arg', `COUNT=${SECRET}`], TOKENS.operator, {
      who: operator('operator'), action: 'execution.create', target: job, result: 'validation', error: /args\.COUNT: "<redacted>" is not an int/,
    });
    expectRefused(bad);
    expect(bad.stderr).toContain(SECRET);
    expectOk(await cli(['status', id], TOKENS.viewer));
    expectOk(await cli(['executions', 'list'], TOKENS.viewer));
    expectOk(await cli(['executors', 'list'], TOKENS.viewer));

    // Cancel it, then again (it has ended: refused).
    expectOk(await cli(['cancel', id], TOKENS.operator, { who: operator('operator'), action: 'execution.cancel', target: id, result: 'ok', execution_id: id }));
    expectRefused(await cli(['cancel', id], TOKENS.operator, {
      who: operator('operator'), action: 'execution.cancel', target: id, result: 'failed_precondition', execution_id: id, error: /already ended/,
    }));

    // Files: put, a refused put, get and list (read-only), delete.
    const fileName = `${uniqueName('conf')}.txt`;
    const src = join(dir, 'conf.src');
    writeFileSync(src, `${FILE_MARKER}\n`);
    expectOk(await cli(['files', 'put', fileName, src], TOKENS.admin, { who: operator('admin'), action: 'file.put', target: fileName, result: 'ok' }));
    expectRefused(await cli(['files', 'put', fileName, src], TOKENS.operator, {
      who: operator('operator'), action: 'file.put', target: fileName, result: 'permission_denied', error: /may not change files/,
    }));
    expect(expectOk(await cli(['files', 'get', fileName], TOKENS.operator))).toContain(FILE_MARKER);
    expectOk(await cli(['files', 'list'], TOKENS.operator));
    expectOk(await cli(['files', 'rm', fileName], TOKENS.admin, { who: operator('admin'), action: 'file.delete', target: fileName, result: 'ok' }));

    // The executor stops (Deregister), then an admin removes it; a viewer may not.
    expect(await ex.stop()).toBe(0);
    expected.push({ via: 'grpc', who: { kind: 'executor', id: ex.id, name }, action: 'executor.deregister', target: name, result: 'ok', executor_id: ex.id });
    expectRefused(await cli(['executors', 'remove', name], TOKENS.viewer, {
      who: operator('viewer'), action: 'executor.remove', target: name, result: 'permission_denied', error: /may not change executors/,
    }));
    expectOk(await cli(['executors', 'remove', name], TOKENS.admin, { who: operator('admin'), action: 'executor.remove', target: name, result: 'ok', executor_id: ex.id }));
    expectOk(await cli(['delete', job], TOKENS.admin, { who: operator('admin'), action: 'job.delete', target: job, result: 'ok' }));
    expectRefused(await cli(['delete', job], TOKENS.admin, { who: operator('admin'), action: 'job.delete', target: job, result: 'not_found', error: /not found/ }));

    // The file: created 0600, one line per call above, in order.
    expect(statSync(auditPath).mode & 0o777).toBe(0o600);
    const text = readFileSync(auditPath, 'utf8');
    expect(text.endsWith('\n')).toBe(true);
    const lines = text.slice(0, -1).split('\n').map((l) => JSON.parse(l) as AuditLine);
    expect(lines.map((l) => `${l.action} ${l.result}`)).toEqual(expected.map((e) => `${e.action} ${e.result}`));
    lines.forEach((line, i) => {
      const { time, error, ...rest } = line;
      const want = expected[i]!;
      const { error: wantError, ...wantRest } = want;
      expect(rest, `line ${i + 1}`).toEqual(wantRest);
      expect(Number.isNaN(Date.parse(time)), `line ${i + 1} time`).toBe(false);
      if (wantError) expect(error, `line ${i + 1} error`).toMatch(wantError);
      else expect(error, `line ${i + 1} error`).toBeUndefined();
    });
    const times = lines.map((l) => Date.parse(l.time));
    expect([...times].sort((a, b) => a - b)).toEqual(times);

    // No secret: the argument, any token, the executor's secret, the file's content.
    const secrets = { SECRET, FILE_MARKER, WEB_TOKEN, WRONG_TOKEN, WRONG_REGISTRATION, REGISTRATION_TOKEN, executorSecret, ...TOKENS };
    for (const [what, value] of Object.entries(secrets)) expect(text.includes(value), `${what} in the audit log`).toBe(false);
    // About thirty grid-cli runs one after the other, each a fresh node process: slow on a busy machine.
  }, 300_000);
});
