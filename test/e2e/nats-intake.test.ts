// The NATS request intake end to end, with real nats-server, etcd, controller and executor:
// `grid-cli nats-credentials` then `grid-cli execute --via nats` runs a job to SUCCEEDED; a request
// without a valid token is refused with a clear line; NATS lets only a submitter publish on the
// intake subject (an executor's user is refused, where an unrestricted user gets through); and a
// request made while etcd is stopped waits in the stream and completes once etcd is back.
//
// Needs the built programs: `npx tsc -p tsconfig.json`.

import { readFileSync, statSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { setTimeout as delay } from 'node:timers/promises';
import { jetstream } from '@nats-io/jetstream';
import { headers, type NatsConnection } from '@nats-io/nats-core';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { keyFromSeed } from '../../src/bus/authority.js';
import { connectBus } from '../../src/bus/connect.js';
import { submitterInboxPrefix } from '../../src/bus/permissions.js';
import { SUBMIT_HEADERS } from '../../src/bus/messages.js';
import { subjects } from '../../src/bus/subjects.js';
import type { AuditLine } from '../../src/controller/audit.js';
import { readExecutorState, startExecutor, stopExecutors, type RunningExecutor } from '../harness/executor-process.js';
import { startFaultableServers, type FaultableServers } from '../harness/faultable-servers.js';
import { cleanupProcesses, expectOneLineError, runCli, startController, tempDir, TOKENS, type RunningController, type RunResult } from '../harness/processes.js';
import { uniqueName } from '../harness/servers.js';

let servers: FaultableServers;
let controller: RunningController;
let executor: RunningExecutor;
const job = uniqueName('hello');

beforeAll(async () => {
  servers = await startFaultableServers();
  controller = await startController({ natsUrl: servers.natsUrl, etcdEndpoint: servers.etcdEndpoint });
  executor = await startExecutor({ controller: controller.address, name: uniqueName('node') });
  const file = join(tempDir(), 'job.json');
  writeFileSync(file, JSON.stringify({ name: job, command: ['echo', 'hello over nats'] }));
  expect((await cli(['create', file], TOKENS.admin)).code).toBe(0);
}, 90_000);

afterAll(async () => {
  await stopExecutors();
  await cleanupProcesses();
  await servers?.stop();
});

/** grid-cli with the operator's token, another one, or none (null). */
function cli(args: string[], token: string | null = TOKENS.operator, timeoutMs = 60_000): Promise<RunResult> {
  return runCli(args, { address: controller.address, token: token ?? undefined, timeoutMs });
}

function auditLines(): AuditLine[] {
  const cfg = JSON.parse(readFileSync(controller.configFile, 'utf8')) as { data_dir: string };
  return readFileSync(join(cfg.data_dir, 'audit.log'), 'utf8').trim().split('\n').map((l) => JSON.parse(l) as AuditLine);
}

/** A connection as a NATS user, and the errors the server sent it (permission violations). */
async function connectAs(user: { jwt: string; seed: string }, inboxPrefix?: string): Promise<{ nc: NatsConnection; errors: string[] }> {
  const nc = await connectBus({ servers: [servers.natsUrl], name: 'intake-test', user, ...(inboxPrefix ? { inboxPrefix } : {}) });
  const seen: string[] = [];
  void (async () => {
    for await (const s of nc.status()) if (s.type === 'error') seen.push(s.error.message);
  })();
  return { nc, errors: seen };
}

/**
 * `grid-cli nats-credentials` for the operator, once: the file it wrote and what it printed. It
 * saves nats_servers and nats_creds in the client config every later grid-cli here reads.
 */
let gotCreds: Promise<{ file: string; run: RunResult }> | undefined;
function creds(): Promise<{ file: string; run: RunResult }> {
  gotCreds ??= cli(['nats-credentials']).then((run) => {
    expect(run.code, run.stderr).toBe(0);
    return { run, file: /wrote NATS credentials to (\S+?);/.exec(run.stdout)![1]! };
  });
  return gotCreds;
}

describe('grid-cli execute --via nats', () => {
  it('gets NATS credentials for an operator token, then runs a job to SUCCEEDED through the intake, audited with via nats', async () => {
    const { file, run: got } = await creds();
    expect(statSync(file).mode & 0o777).toBe(0o600);
    expect(got.stdout).toContain(`may publish on ${subjects.submitExecute}`);
    expect(got.stdout).toMatch(/saved nats_servers \(nats:\/\/127\.0\.0\.1:\d+\), nats_creds in /);

    // A viewer may not execute, so it gets no credentials either.
    expect(expectOneLineError(await cli(['nats-credentials', '--no-save'], TOKENS.viewer), 77)).toMatch(/^error: viewer \(role viewer\) may not change executions/);

    const run = await cli(['execute', job, '--via', 'nats', '--wait']);
    expect(run.code, run.stdout + run.stderr).toBe(0);
    const id = /execution (\S+) dispatched: /.exec(run.stdout)![1]!;
    expect(run.stdout).toMatch(/SUCCEEDED/);
    const logs = await cli(['getlogs', id]);
    expect(logs.stdout).toBe('hello over nats\n');
    expect(auditLines().filter((l) => l.execution_id === id)).toEqual([
      expect.objectContaining({ via: 'nats', who: { kind: 'operator', name: 'operator', role: 'operator' }, action: 'execution.create', target: job, result: 'ok' }),
    ]);
  }, 90_000);

  it('refuses a request without a valid token, or whose token may not execute, with one line and a non-zero exit', async () => {
    await creds();
    expect(expectOneLineError(await cli(['execute', job, '--via', 'nats'], null), 77)).toMatch(/^error: no token given/);
    expect(expectOneLineError(await cli(['execute', job, '--via', 'nats'], 'not-a-valid-token-000000'), 77)).toBe(
      'error: the token was not accepted: check GRID_TOKEN or the client config',
    );
    expect(expectOneLineError(await cli(['execute', job, '--via', 'nats'], TOKENS.viewer), 77)).toMatch(/^error: viewer \(role viewer\) may not change executions/);
    const refused = auditLines().filter((l) => l.via === 'nats' && l.result !== 'ok');
    expect(refused.map((l) => [l.who.kind, l.result])).toEqual([
      ['anonymous', 'unauthenticated'],
      ['anonymous', 'unauthenticated'],
      ['operator', 'permission_denied'],
    ]);
    expect(JSON.stringify(refused)).not.toContain('not-a-valid-token');
    // Settings that are missing are named.
    const noUrl = await runCli(['execute', job, '--via', 'nats'], { address: controller.address, token: TOKENS.operator, env: { XDG_CONFIG_HOME: tempDir() } });
    expect(expectOneLineError(noUrl, 2)).toMatch(/^error: config nats_servers: missing: --via nats needs the URL of GRID's NATS/);
  }, 90_000);

  it("lets only a submitter publish on the intake subject: an unrestricted user could, an executor's user cannot", async () => {
    const h = headers();
    h.set(SUBMIT_HEADERS.replyTo, '_INBOX.nobody');
    const body = JSON.stringify({ job });
    // The unprotected path: a NATS user with every permission can put a request in the stream
    // (the controller then refuses it, as it carries no token: the second wall).
    const open = await connectAs(servers.natsUser);
    const ack = await jetstream(open.nc).publish(subjects.submitExecute, body, { msgID: uniqueName('unrestricted'), headers: h });
    expect(ack.stream).toBe('GRID_REQUESTS');
    await open.nc.close();

    // An executor's own user (what its state file holds) is refused by nats-server.
    const s = readExecutorState(executor.stateFile) as unknown as Record<string, string>;
    const ex = await connectAs({ jwt: s.nats_user_jwt!, seed: s.nats_user_seed! }, s.nats_inbox_prefix);
    await expect(jetstream(ex.nc).publish(subjects.submitExecute, body, { msgID: uniqueName('executor'), headers: h, timeout: 2_000 })).rejects.toThrow();
    await expect.poll(() => ex.errors.join('\n')).toMatch(new RegExp(`Permissions Violation for Publish to "${subjects.submitExecute.replace(/\./g, '\\.')}"`));
    await ex.nc.close();

    // The submitter's user from nats-credentials is accepted, and may hear nothing but its own inbox.
    const text = readFileSync((await creds()).file, 'utf8');
    const jwt = /BEGIN NATS USER JWT-+\n(\S+)/.exec(text)![1]!;
    const seed = /BEGIN USER NKEY SEED-+\n(\S+)/.exec(text)![1]!;
    const sub = await connectAs({ jwt, seed }, submitterInboxPrefix(keyFromSeed(seed).publicKey));
    const ok = await jetstream(sub.nc).publish(subjects.submitExecute, body, { msgID: uniqueName('submitter'), headers: h });
    expect(ok.stream).toBe('GRID_REQUESTS');
    sub.nc.subscribe('grid.job.>');
    await expect.poll(() => sub.errors.join('\n')).toMatch(/Permissions Violation for Subscription to "grid\.job\.>"/);
    await sub.nc.close();
    // The CLI with the executor's credentials says what is wrong (its user may not even hear the answer).
    const exCreds = join(tempDir(), 'executor.creds');
    writeFileSync(exCreds, text.replace(jwt, s.nats_user_jwt!).replace(seed, s.nats_user_seed!), { mode: 0o600 });
    const denied = await cli(['execute', job, '--via', 'nats', '--nats-creds', exCreds]);
    expect(expectOneLineError(denied, 77)).toMatch(/^error: NATS refused to let this user (publish on|subscribe to) /);
  }, 90_000);

  it('a request made while etcd is stopped waits in the stream and completes after etcd restarts', async () => {
    await creds();
    await servers.kill9('etcd');
    const running = cli(['execute', job, '--via', 'nats', '--retry-for', '120s', '--idempotency-key', uniqueName('outage')], TOKENS.operator, 150_000);
    await expect.poll(() => controller.logs(), { timeout: 30_000, interval: 200 }).toMatch(/intake request cannot be handled now; it stays queued/);
    await delay(1_500); // nak'ed at least once more while etcd is down
    await servers.restart('etcd');
    const r = await running;
    expect(r.code, r.stdout + r.stderr).toBe(0);
    expect(r.stderr).toMatch(/^waiting: etcd at .* is not answering; retry .*; the request stays queued and runs when a controller can take it$/m);
    const id = /execution (\S+) dispatched: /.exec(r.stdout)![1]!;
    await expect.poll(async () => (await cli(['status', id, '--output', 'json'])).stdout, { timeout: 60_000, interval: 500 }).toMatch(/"state": "SUCCEEDED"/);
    expect(auditLines().filter((l) => l.execution_id === id).map((l) => [l.via, l.result])).toEqual([['nats', 'ok']]);
    expect(controller.logs()).not.toMatch(/intake request failed/);
  }, 240_000);
});
