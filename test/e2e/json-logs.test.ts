// `controller dev --log-format json`: the controller (with its embedded nats-server and etcd) and
// the local executor it runs print nothing but JSON objects, one a line, each with level, time,
// name and msg, from start through a job, refused calls and an access line per request, to stop.
// No token appears in the output.
//
// Needs the built programs: `npx tsc -p tsconfig.json`.

import { readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { Agent } from 'undici';
import { afterAll, describe, expect, it } from 'vitest';
import { cleanupProcesses, runCli, startProgram, tempDir, type RunResult } from '../harness/processes.js';

afterAll(cleanupProcesses);

type Line = Record<string, unknown> & { level: string; time: string; name: string; msg: string };

describe('controller dev with log_format json', () => {
  it('prints only JSON lines with level, time, name and msg, from both processes, with an access line per request', async () => {
    const dataDir = join(tempDir(), 'grid');
    const ca = { GRID_CA_FILE: join(dataDir, 'tls', 'ca.crt') };
    const controller = await startProgram(
      'controller',
      ['dev', '--data-dir', dataDir, '--grpc-address', '127.0.0.1:0', '--log-format', 'json', '--log-level', 'debug'],
      { env: ca, ready: /"msg":"GRID is up"/, readyTimeoutMs: 60_000 },
    );
    const parsed = (): Line[] => controller.logs().split('\n').filter((l) => l !== '').map((l) => JSON.parse(l) as Line);
    const find = (msg: string, name?: string): Line | undefined => parsed().find((l) => l.msg === msg && (name === undefined || l.name === name));
    const address = find('controller ready')!.address as string;
    const httpAddress = find('http ready')!.address as string;
    const dev = JSON.parse(readFileSync(join(dataDir, 'dev-credentials.json'), 'utf8')) as { admin_token: string; registration_token: string };
    const cli = (args: string[], token = dev.admin_token): Promise<RunResult> => runCli(args, { address, token, env: ca, timeoutMs: 60_000 });

    const job = join(dataDir, 'job.json');
    writeFileSync(job, JSON.stringify({ name: 'json-logs', command: ['echo', 'logged as json'] }));
    expect((await cli(['create', job])).code).toBe(0);
    await until('the local executor to be ACTIVE', async () => / ACTIVE /.test((await cli(['executors', 'list'])).stdout));
    const ran = await cli(['execute', 'json-logs', '--wait']);
    expect(ran.code, ran.stdout + ran.stderr).toBe(0);
    expect((await cli(['list'], 'not-a-token-of-this-controller')).code).not.toBe(0);
    const http = await fetch(`https://${httpAddress}/v1/jobs`, {
      headers: { authorization: `Bearer ${dev.admin_token}` },
      dispatcher: new Agent({ connect: { ca: readFileSync(ca.GRID_CA_FILE) } }),
    } as RequestInit);
    expect(http.status).toBe(200);

    expect(await controller.stop('SIGTERM', 60_000), controller.logs()).toBe(0);

    const raw = controller.logs().split('\n').filter((l) => l !== '');
    for (const l of raw) {
      let o: Line;
      expect(() => (o = JSON.parse(l) as Line), l).not.toThrow();
      expect(o!, l).toMatchObject({ level: expect.stringMatching(/^(debug|info|warn|error)$/), time: expect.stringMatching(/^\d{4}-\d\d-\d\dT/), name: expect.any(String), msg: expect.any(String) });
    }
    const lines = parsed();
    // Both processes: the controller's lines and the local executor's (another pid), start to stop.
    const pids = new Set(lines.map((l) => l.pid));
    expect(pids.size, 'the controller, `executor register` and `executor start`').toBe(3);
    for (const [name, msg] of [
      ['controller', 'embedded servers up'], ['controller', 'GRID is up'], ['executor', 'registered'],
      ['executor.worker', 'task finished'], ['executor', 'stopped'], ['controller', 'controller stopped'],
    ]) expect(find(msg!, name), `${name}: ${msg}`).toBeDefined();
    // An access line per request, gRPC and HTTP, naming the caller by the token's name.
    expect(lines).toContainEqual(expect.objectContaining({ name: 'controller.grpc', msg: 'call', method: '/grid.v1.ControllerService/Execute', code: 'OK', caller: 'dev-admin', duration_ms: expect.any(Number) }));
    expect(lines).toContainEqual(expect.objectContaining({ name: 'controller.grpc', msg: 'call', method: '/grid.v1.ControllerService/ListJobs', code: 'UNAUTHENTICATED', caller: '-' }));
    // The executor's calls too, and its heartbeat stream (one line, written when the stream ends).
    expect(lines).toContainEqual(expect.objectContaining({ name: 'controller.grpc', msg: 'call', method: '/grid.v1.ExecutorService/BeginTask', code: 'OK', caller: expect.stringMatching(/^executor:/) }));
    expect(lines).toContainEqual(expect.objectContaining({ name: 'controller.grpc', msg: 'call', method: '/grid.v1.ExecutorService/Heartbeats', caller: expect.stringMatching(/^executor:/) }));
    expect(lines).toContainEqual(expect.objectContaining({ name: 'controller.http', msg: 'request', method: 'GET', route: '/v1/jobs', status: 200, caller: 'dev-admin', duration_ms: expect.any(Number) }));
    // The executor's name is a field like any other, kept apart from the logger's name.
    expect(find('executor registered', 'controller.executors')).toMatchObject({ 'fields.name': expect.any(String) });
    expect(controller.logs()).not.toContain(dev.admin_token);
    expect(controller.logs()).not.toContain(dev.registration_token);
  }, 180_000);
});

async function until(what: string, ok: () => boolean | Promise<boolean>, timeoutMs = 30_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!(await ok())) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await sleep(200);
  }
}
