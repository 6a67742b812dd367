// The embedded default supervises its servers: `controller dev` (embedded nats-server and etcd,
// the controller, a local executor) has its nats-server and then its etcd killed with -9. The
// controller stays up, each server comes back on its ports, and a job still runs end to end.
//
// Needs the built programs: `npx tsc -p tsconfig.json`.

import { readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { afterAll, describe, expect, it } from 'vitest';
import { cleanupProcesses, runCli, startProgram, tempDir, type RunningProgram, type RunResult } from '../harness/processes.js';

afterAll(cleanupProcesses);

interface Ports {
  host: string;
  nats: number;
  etcdClient: number;
  etcdPeer: number;
}

describe('controller dev with its nats-server and etcd killed -9', () => {
  it('restarts each on the same ports, stays up, and runs a job after each restart', async () => {
    const dataDir = join(tempDir(), 'grid');
    const ca = { GRID_CA_FILE: join(dataDir, 'tls', 'ca.crt') }; // made at start; the local executor reads it
    const controller = await startProgram('controller', ['dev', '--data-dir', dataDir, '--grpc-address', '127.0.0.1:0'], {
      env: ca,
      ready: /controller ready address=(\S+)[\s\S]*GRID is up/,
      readyTimeoutMs: 60_000,
    });
    const address = controller.ready[1]!;
    const dev = JSON.parse(readFileSync(join(dataDir, 'dev-credentials.json'), 'utf8')) as { admin_token: string };
    const ports = (): Ports => JSON.parse(readFileSync(join(dataDir, 'embedded.json'), 'utf8')) as Ports;
    const pid = (server: 'nats-server' | 'etcd'): number => Number(readFileSync(join(dataDir, `${server}.pid`), 'utf8').trim());
    const cli = (args: string[], timeoutMs = 60_000): Promise<RunResult> =>
      runCli(args, { address, token: dev.admin_token, env: ca, timeoutMs });

    const job = join(dataDir, 'job.json');
    writeFileSync(job, JSON.stringify({ name: 'survivor', command: ['echo', 'still here'] }));
    const created = await cli(['create', job]);
    expect(created.code, created.stderr).toBe(0);
    await until('the local executor to be ACTIVE', async () => / ACTIVE /.test((await cli(['executors', 'list'])).stdout));

    const roundTrip = async (): Promise<void> => {
      const r = await cli(['execute', 'survivor', '--wait'], 90_000);
      expect(r.code, `${r.stdout}${r.stderr}\ncontroller:\n${controller.logs()}`).toBe(0);
      expect(r.stdout).toMatch(/^State:\s+SUCCEEDED$/m);
    };
    await roundTrip();
    const before = ports();

    for (const [server, name] of [['nats-server', 'nats'], ['etcd', 'etcd']] as const) {
      const old = pid(server);
      process.kill(old, 'SIGKILL');
      const restarted = new RegExp(`embedded server restarted server=${name} pid=(\\d+)`);
      await until(`${name} to be restarted`, async () => (await expectRunning(controller), restarted.test(controller.logs())), 60_000);
      expect(controller.logs()).toMatch(new RegExp(`WARN  controller\\.embedded: embedded server died; restarting it server=${name} pid=${old} signal=SIGKILL restart_in_ms=500 attempt=1`));
      expect(Number(controller.logs().match(restarted)![1])).toBe(pid(server));
      expect(pid(server)).not.toBe(old);
      expect(ports()).toEqual(before);
      await expectRunning(controller);
      // etcd3 pauses calls for a few seconds after repeated failures: wait until reads work again.
      await until('the controller to read from etcd', async () => (await cli(['list'])).code === 0);
      await roundTrip();
    }

    expect(await controller.stop('SIGTERM', 60_000), controller.logs()).toBe(0);
    for (const server of ['nats-server', 'etcd'] as const) expect(() => readFileSync(join(dataDir, `${server}.pid`))).toThrow();
  }, 300_000);
});

async function expectRunning(p: RunningProgram): Promise<void> {
  const exited = await Promise.race([p.exited, sleep(100, 'running')]);
  expect(exited, p.logs()).toBe('running');
}

async function until(what: string, ok: () => boolean | Promise<boolean>, timeoutMs = 30_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!(await ok())) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await sleep(200);
  }
}
