// What the registry refuses, each with one clear line and exit 77 (ExitCode.REFUSED, which
// systemd's RestartPreventExitStatus names): a wrong registration token, a forged executor
// secret, a removed executor's heartbeat, a taken name without --replace; `executor start`
// before `register` exits 1. Then, over everything these runs left behind:
// neither the registration token nor any executor secret is in etcd or in any log or CLI output.
//
// Needs the built programs: `npx tsc -p tsconfig.json`.

import { readFileSync, writeFileSync } from 'node:fs';
import { Etcd3 } from 'etcd3';
import { ExitCode } from '../../src/errors.js';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import {
  listExecutorsCli,
  readExecutorState,
  registerExecutor,
  runExecutorStart,
  startExecutor,
  stateOf,
  stopExecutors,
  writeExecutorConfig,
  type RunningExecutor,
} from '../harness/executor-process.js';
import { cleanupProcesses, REGISTRATION_TOKEN, runCli, startController, TOKENS, type RunningController, type RunResult } from '../harness/processes.js';
import { startServers, uniqueName, type TestServers } from '../harness/servers.js';

let servers: TestServers;
let controller: RunningController;
/** A registration token that lets executors join only the groups web and edge. */
const WEB_REGISTRATION_TOKEN = 'e2e-web-registration-token-555555';

/** Everything any process printed in this file, for the secrets check at the end. */
const outputs: Array<() => string> = [];
/** Every state file written by a successful register, for the secrets it holds. */
const stateFiles = new Set<string>();
const executors: RunningExecutor[] = [];

function keep(r: RunResult): RunResult {
  outputs.push(() => r.stdout + r.stderr);
  return r;
}

async function started(o: Parameters<typeof startExecutor>[0]): Promise<RunningExecutor> {
  const ex = await startExecutor({ pingIntervalSeconds: 1, ...o });
  executors.push(ex);
  outputs.push(ex.logs);
  stateFiles.add(ex.stateFile);
  return ex;
}

function cli(args: string[]): Promise<RunResult> {
  return runCli(args, { address: controller.address, token: TOKENS.admin }).then(keep);
}

/** The output's non-empty lines, each checked to be no stack trace. */
function lines(r: RunResult): string[] {
  const all = (r.stdout + r.stderr).split('\n').filter((l) => l.trim() !== '');
  for (const l of all) expect(l, `stack trace in output:\n${r.stdout}${r.stderr}`).not.toMatch(/^\s+at /);
  return all;
}

beforeAll(async () => {
  servers = await startServers();
  controller = await startController({
    natsUrl: servers.natsUrl,
    etcdEndpoint: servers.etcdEndpoint,
    config: {
      executor_ping_deadline_seconds: 3,
      registration_tokens: [REGISTRATION_TOKEN, { token: WEB_REGISTRATION_TOKEN, groups: ['web', 'edge'] }],
    },
  });
  outputs.push(controller.logs);
});

afterAll(async () => {
  await stopExecutors();
  await cleanupProcesses();
  await servers?.stop();
});

describe('executor refusals', () => {
  it('a wrong registration token: register exits non-zero with one line about the registration token', async () => {
    const files = writeExecutorConfig({ controller: controller.address, name: uniqueName('exec-badtoken'), registrationToken: 'not-the-token-xxxxxxxx' });
    const r = keep(await registerExecutor(files.configFile));
    expect(r.code).toBe(ExitCode.REFUSED);
    const out = lines(r);
    expect(out, out.join('\n')).toHaveLength(1);
    expect(out[0]).toMatch(/registration token was not accepted/);
    expect(out[0]).toMatch(/registration_token/);
    expect(out[0]).not.toContain('not-the-token-xxxxxxxx');
    expect(() => readFileSync(files.stateFile)).toThrow(); // nothing was saved
    expect(controller.logs()).toMatch(/registration refused: wrong registration token/);
  });

  it('executor start without register: a clear message to run register, non-zero exit', async () => {
    const files = writeExecutorConfig({ controller: controller.address, name: uniqueName('exec-unreg') });
    const r = keep(await runExecutorStart(files.configFile));
    expect(r.code).toBe(ExitCode.FAILURE); // not a refusal: registering mends it
    const out = lines(r);
    expect(out, out.join('\n')).toHaveLength(1);
    expect(out[0]).toMatch(/not registered yet/);
    expect(out[0]).toMatch(/run "executor register" first/);
  });

  it('a forged executor secret: executor start logs the refusal and exits non-zero', async () => {
    const ex = await started({ controller: controller.address, name: uniqueName('exec-forged') });
    expect(await ex.stop()).toBe(0);
    const state = readExecutorState(ex.stateFile);
    const real = state.executor_secret;
    const forged = { ...state, executor_secret: 'forged-' + real.slice(7) };
    writeFileSync(ex.stateFile, JSON.stringify(forged, null, 2));
    try {
      const r = keep(await runExecutorStart(ex.configFile));
      expect(r.code).toBe(ExitCode.REFUSED);
      const refusals = lines(r).filter((l) => /refused/.test(l));
      expect(refusals, r.stderr).toHaveLength(1);
      expect(refusals[0]).toMatch(/the controller refused this executor/);
      expect(refusals[0]).toMatch(/executor secret was not accepted/);
      expect(refusals[0]).toContain(ex.id);
      expect(r.stdout + r.stderr).not.toContain(forged.executor_secret);
      expect(controller.logs()).toMatch(new RegExp(`executor call refused: wrong secret id=${ex.id}`));
      // The refusal did not change the registry.
      expect(stateOf(await listExecutorsCli(controller.address), ex.name)).toBe('STOPPED');
    } finally {
      writeFileSync(ex.stateFile, JSON.stringify(state, null, 2)); // so the secrets check sees the real one
    }
  });

  it('a removed executor: its NATS user is revoked or its next heartbeat refused, it says it was removed and exits non-zero', async () => {
    const ex = await started({ controller: controller.address, name: uniqueName('exec-removed') });
    const r = await cli(['executors', 'remove', ex.name]);
    expect(r.code, r.stderr).toBe(0);
    expect(r.stdout).toContain(`removed executor ${ex.name} (${ex.id})`);

    const code = await Promise.race([ex.exited, new Promise<string>((res) => setTimeout(() => res('still running'), 10_000))]);
    expect(code, ex.logs()).toBe(ExitCode.REFUSED);
    expect(code).not.toBe('still running');
    // Whichever comes first says so, once: the revocation of its NATS user, or the heartbeat refused.
    const refusals = ex.logs().split('\n').filter((l) => /refused|revoked/.test(l));
    expect(refusals, ex.logs()).toHaveLength(1);
    expect(refusals[0]).toMatch(
      // A heartbeat over TLS is refused at its client certificate, which that line adds.
      new RegExp(`executor ${ex.id} was removed from the registry(; its client certificate is no longer accepted)?; register it again|NATS revoked this executor's user: it was removed from the registry or replaced; register it again`),
    );
    expect((await listExecutorsCli(controller.address)).some((e) => e.name === ex.name || e.id === ex.id)).toBe(false);
  });

  it('a taken name: refused without --replace (which it mentions); with --replace a new id, and the old one is refused', async () => {
    const name = uniqueName('exec-dup');
    const a = await started({ controller: controller.address, name });

    const b = writeExecutorConfig({ controller: controller.address, name });
    const refused = keep(await registerExecutor(b.configFile));
    expect(refused.code).toBe(ExitCode.REFUSED);
    const out = lines(refused);
    expect(out, out.join('\n')).toHaveLength(1);
    expect(out[0]).toContain(name);
    expect(out[0]).toMatch(/--replace/);
    expect(() => readFileSync(b.stateFile)).toThrow();
    // The one holding the name is untouched.
    expect((await listExecutorsCli(controller.address)).filter((e) => e.name === name)).toMatchObject([{ id: a.id, state: 'ACTIVE' }]);

    // --replace with only a registration token: refused, naming what it needs.
    const taken = keep(await registerExecutor(b.configFile, { replace: true }));
    expect(taken.code).toBe(ExitCode.REFUSED);
    const takenOut = lines(taken);
    expect(takenOut, takenOut.join('\n')).toHaveLength(1);
    expect(takenOut[0]).toContain(`--replace of executor ${name} (${a.id}) needs an admin token (executor register --token, or GRID_TOKEN) or that executor's own state file`);

    // With an admin token it takes the name over.
    const replaced = await started({ controller: controller.address, name, dir: b.dir, replace: true, env: { GRID_TOKEN: TOKENS.admin } });
    expect(replaced.id).not.toBe(a.id);
    const rows = (await listExecutorsCli(controller.address)).filter((e) => e.name === name);
    expect(rows).toMatchObject([{ id: replaced.id, state: 'ACTIVE' }]);

    // The executor that lost its name is told so (its NATS user is revoked, or its next heartbeat refused), and stops.
    const code = await Promise.race([a.exited, new Promise<string>((res) => setTimeout(() => res('still running'), 10_000))]);
    expect(code, a.logs()).toBe(ExitCode.REFUSED);
    expect(code).not.toBe('still running');
    expect(a.logs()).toMatch(
      new RegExp(`the controller refused this executor reason="executor ${a.id} was removed from the registry|NATS revoked this executor's user: it was removed from the registry or replaced`),
    );
    expect(await replaced.stop()).toBe(0);
  });
});

describe('registration token groups', () => {
  it('an executor may join only the groups its registration token carries; inside them it registers', async () => {
    const outside = writeExecutorConfig({ controller: controller.address, name: uniqueName('exec-scoped'), groups: ['web', 'db'], registrationToken: WEB_REGISTRATION_TOKEN });
    const r = keep(await registerExecutor(outside.configFile));
    expect(r.code).toBe(ExitCode.REFUSED);
    const out = lines(r);
    expect(out, out.join('\n')).toHaveLength(1);
    expect(out[0]).toMatch(/the registration token is scoped to groups web, edge: executor exec-scoped-\S+ may not join group db/);
    const inside = writeExecutorConfig({ controller: controller.address, name: uniqueName('exec-scoped'), groups: ['web', 'edge'], registrationToken: WEB_REGISTRATION_TOKEN });
    const ok = keep(await registerExecutor(inside.configFile));
    expect(ok.code, ok.stdout + ok.stderr).toBe(0);
    stateFiles.add(inside.stateFile);
  });

  it('its own state file lets an executor --replace itself without an admin token', async () => {
    const ex = await started({ controller: controller.address, name: uniqueName('exec-self') });
    await ex.stop();
    const again = keep(await registerExecutor(ex.configFile, { replace: true }));
    expect(again.code, again.stdout + again.stderr).toBe(0);
    expect(readExecutorState(ex.stateFile).executor_id).not.toBe(ex.id);
  });
});

describe('secrets', () => {
  it('neither the registration token nor any executor secret is in etcd, a log, or CLI output; describe shows no secret', async () => {
    // A running executor to describe, besides everything registered above.
    const ex = await started({ controller: controller.address, name: uniqueName('exec-desc'), groups: ['web'] });
    for (const args of [
      ['executors', 'describe', ex.name],
      ['executors', 'describe', ex.id, '--output', 'json'],
      ['executors', 'list'],
      ['executors', 'list', '--output', 'json'],
    ]) {
      const r = await cli(args);
      expect(r.code, r.stderr).toBe(0);
      expect(r.stdout).toContain(ex.name);
      expect(r.stdout.toLowerCase()).not.toContain('secret');
    }
    const described = JSON.parse((await cli(['executors', 'describe', ex.name, '--output', 'json'])).stdout) as Record<string, unknown>;
    expect(Object.keys(described).filter((k) => /secret|hash|lease|token/i.test(k))).toEqual([]);
    expect(await ex.stop()).toBe(0);

    const secrets = new Map<string, string>([['registration token', REGISTRATION_TOKEN]]);
    for (const f of stateFiles) {
      const s = readExecutorState(f);
      expect(s.executor_secret.length).toBeGreaterThanOrEqual(32);
      secrets.set(`executor secret of ${s.name}`, s.executor_secret);
    }
    expect(secrets.size).toBeGreaterThanOrEqual(5);

    const etcd = new Etcd3({ hosts: servers.etcdEndpoint });
    let dump = '';
    try {
      const all = await etcd.getAll().prefix(controller.prefix).strings();
      expect(Object.keys(all).length).toBeGreaterThan(0);
      dump = Object.entries(all).map(([k, v]) => `${k}=${v}`).join('\n');
      // The whole keyspace, not only ours.
      dump += '\n' + Object.entries(await etcd.getAll().strings()).map(([k, v]) => `${k}=${v}`).join('\n');
    } finally {
      etcd.close();
    }
    expect(dump).toContain(ex.id); // the dump does hold the registry

    const logs = outputs.map((o) => o()).join('\n');
    expect(logs).toContain(ex.id);
    for (const [what, secret] of secrets) {
      expect(dump.includes(secret), `${what} is in etcd`).toBe(false);
      expect(logs.includes(secret), `${what} is in a log or CLI output`).toBe(false);
    }
  });
});
