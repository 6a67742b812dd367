// grid-cli health against a real controller: etcd's database size, every stream with its
// replica count, the retention policy; with etcd down, that is said and the exit code is 1
// while the NATS part is still reported.
//
// Needs the built programs: `npx tsc -p tsconfig.json`.

import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { cleanupProcesses, runCli, startController, TOKENS, type RunningController } from '../harness/processes.js';
import { startServers, type TestServers } from '../harness/servers.js';

let servers: TestServers;
let controller: RunningController;

beforeAll(async () => {
  servers = await startServers();
  controller = await startController({
    natsUrl: servers.natsUrl,
    etcdEndpoint: servers.etcdEndpoint,
    config: { execution_retention_hours: 48, execution_retention_max: 5000 },
  });
});

afterAll(async () => {
  await cleanupProcesses();
  await servers?.stop();
});

const health = (args: string[] = []) => runCli(['health', ...args], { address: controller.address, token: TOKENS.viewer });

describe('grid-cli health', () => {
  it("reports etcd's database, the streams and retention; with etcd down says so and exits 1", async () => {
    const ok = await health();
    expect(ok.code, ok.stderr).toBe(0);
    const lines = ok.stdout.trimEnd().split('\n');
    expect(lines[0]).toMatch(/^etcd +http:\/\/127\.0\.0\.1:\d+ +v3\.\d+\.\d+ +database [\d.]+ (KiB|MiB) \([\d.]+ (B|KiB|MiB) in use\)$/);
    expect(lines[1]).toMatch(/^nats +nats:\/\/127\.0\.0\.1:\d+$/);
    for (const stream of ['GRID_REQUESTS', 'GRID_JOBS', 'GRID_EVENTS', 'GRID_LOGS', 'OBJ_grid-files']) {
      expect(ok.stdout).toMatch(new RegExp(`^  ${stream} +\\d+ +[\\d.]+ (B|KiB|MiB) +R1 +- +-$`, 'm'));
    }
    expect(lines.at(-1)).toBe('retention  2 days, at most 5000 finished: 0 finished kept; none pruned yet');

    const asJson = JSON.parse((await health(['--output', 'json'])).stdout) as { nats: { streams: Array<{ name: string; replicas: number }> } };
    expect(asJson.nats.streams.map((s) => s.replicas)).toEqual([1, 1, 1, 1, 1]);

    process.kill(servers.etcdPid, 'SIGKILL');
    const down = await health();
    expect(down.code).toBe(1);
    expect(down.stdout.split('\n')[0]).toMatch(/^etcd +http:\/\/127\.0\.0\.1:\d+: etcd at http:\/\/127\.0\.0\.1:\d+ is not answering; retry/);
    expect(down.stdout).toMatch(/^  GRID_JOBS /m);
  }, 60_000);
});
