// A controller restart (SIGTERM, then a new controller on the same etcd prefix and gRPC port)
// while three executors heartbeat: the registry is watched throughout — in-process every 100 ms
// and with grid-cli back to back — and no executor is ever EXPIRED or missing, and the list
// (names, ids, groups, states) is the same before and after.
//
// Needs the built programs: `npx tsc -p tsconfig.json`.

import { createServer } from 'node:net';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import {
  brief,
  listExecutorsCli,
  pollExecutors,
  startExecutor,
  stopExecutors,
  type ExecutorRow,
  type RunningExecutor,
} from '../harness/executor-process.js';
import { cleanupProcesses, startController, type RunningController } from '../harness/processes.js';
import { startServers, uniqueName, type TestServers } from '../harness/servers.js';

const PING_DEADLINE_S = 6;
const PING_INTERVAL_S = 1;

let servers: TestServers;

beforeAll(async () => {
  servers = await startServers();
});

afterAll(async () => {
  await stopExecutors();
  await cleanupProcesses();
  await servers?.stop();
});

function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const srv = createServer();
    srv.once('error', reject);
    srv.listen(0, '127.0.0.1', () => {
      const { port } = srv.address() as { port: number };
      srv.close(() => resolve(port));
    });
  });
}

function sorted(rows: ExecutorRow[]) {
  return rows.map(brief).sort((a, b) => a.name.localeCompare(b.name));
}

describe('controller restart', () => {
  it('keeps every executor ACTIVE, under the same id, with no false expiry', async () => {
    const port = await freePort();
    const base = {
      natsUrl: servers.natsUrl,
      etcdEndpoint: servers.etcdEndpoint,
      args: ['--grpc-address', `127.0.0.1:${port}`],
    };
    const first = await startController({ ...base, config: { executor_ping_deadline_seconds: PING_DEADLINE_S } });
    expect(first.address).toBe(`127.0.0.1:${port}`);

    const executors: RunningExecutor[] = [];
    const groups = [['web'], ['web', 'eu'], ['db']];
    for (const [i, g] of groups.entries()) {
      executors.push(await startExecutor({ controller: first.address, name: uniqueName(`exec-r${i}`), groups: g, pingIntervalSeconds: PING_INTERVAL_S }));
    }
    const names = executors.map((e) => e.name).sort();

    const before = sorted(await listExecutorsCli(first.address));
    expect(before.map((r) => r.name)).toEqual(names);
    expect(before.every((r) => r.state === 'ACTIVE')).toBe(true);
    for (const e of executors) expect(before.find((r) => r.name === e.name)?.id).toBe(e.id);

    // Watch from now until well after the restart: in-process every 100 ms, and grid-cli.
    const poller = pollExecutors(first.address, 100);
    const cliSeen: Array<{ rows?: ExecutorRow[]; error?: string }> = [];
    let cliStop = false;
    const cliLoop = (async () => {
      while (!cliStop) {
        try {
          cliSeen.push({ rows: await listExecutorsCli(first.address) });
        } catch (err) {
          cliSeen.push({ error: (err as Error).message });
        }
        await new Promise((r) => setTimeout(r, 150));
      }
    })();

    let second: RunningController | undefined;
    try {
      await new Promise((r) => setTimeout(r, 1_500));
      const stoppedAt = Date.now();
      expect(await first.stop('SIGTERM')).toBe(0);
      second = await startController({ ...base, configFile: first.configFile, prefix: first.prefix });
      expect(second.address).toBe(first.address);

      const upAt = Date.now();
      // Every executor's heartbeat reached the new controller (which keeps last-seen in memory);
      // a liveness bound, not a timing: a loaded machine may take longer than the deadline.
      await poller.waitFor((rows) => rows.length === 3 && rows.every((r) => Number(r.lastSeenAtMs) >= upAt), 2 * PING_DEADLINE_S * 1000);
      // Keep watching past the new controller's boot grace (one ping deadline from its start) and
      // past where a lease from before the restart would have lapsed: an expiry would show here.
      const watchUntil = Math.max(stoppedAt, upAt) + (PING_DEADLINE_S + 1) * 1000;
      await new Promise((r) => setTimeout(r, Math.max(0, watchUntil - Date.now())));
    } finally {
      cliStop = true;
      await cliLoop;
      await poller.stop();
    }

    const answered = [...poller.observations.filter((o) => o.rows), ...cliSeen.filter((o) => o.rows)];
    const unreachable = poller.observations.filter((o) => o.error).length;
    // It was watched before, during (the calls that failed) and after the restart.
    expect(unreachable).toBeGreaterThan(0);
    expect(answered.length).toBeGreaterThan(30);
    expect(cliSeen.filter((o) => o.rows).length).toBeGreaterThan(5);
    for (const o of answered) {
      // Same executors, ids, groups, and all ACTIVE, in every answer.
      expect(sorted(o.rows!)).toEqual(before);
    }

    const after = sorted(await listExecutorsCli(second!.address));
    expect(after).toEqual(before);
    expect(second!.logs()).not.toMatch(/executor expired/);
    for (const e of executors) {
      expect(e.logs()).not.toMatch(/refused/);
      expect(await e.stop()).toBe(0);
    }
  }, 120_000); // three executors, two controller starts and a ping deadline of watching
});
