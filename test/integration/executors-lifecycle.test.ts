// Executors against real etcd, NATS, controller and executor processes: an executor that is
// killed -9 is EXPIRED within the ping deadline (+1 s) and comes back ACTIVE under the same id
// when started again; one stopped with SIGTERM is STOPPED (never EXPIRED) and exits 0.
//
// Needs the built programs: `npx tsc -p tsconfig.json`.

import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { listExecutorsCli, pollExecutors, startExecutor, stateOf, stopExecutors, type Observation } from '../harness/executor-process.js';
import { cleanupProcesses, startController, type RunningController } from '../harness/processes.js';
import { startServers, uniqueName, type TestServers } from '../harness/servers.js';

const PING_DEADLINE_S = 3;
const PING_INTERVAL_S = 1;

let servers: TestServers;
let controller: RunningController;

beforeAll(async () => {
  servers = await startServers();
  controller = await startController({
    natsUrl: servers.natsUrl,
    etcdEndpoint: servers.etcdEndpoint,
    config: { executor_ping_deadline_seconds: PING_DEADLINE_S },
  });
});

afterAll(async () => {
  await stopExecutors();
  await cleanupProcesses();
  await servers?.stop();
});

/** Each observation's state of `name`, with consecutive repeats folded: the state history. */
function history(obs: Observation[], name: string): string[] {
  const out: string[] = [];
  for (const o of obs) {
    const s = o.rows ? (stateOf(o.rows, name) ?? 'MISSING') : 'UNREACHABLE';
    if (out[out.length - 1] !== s) out.push(s);
  }
  return out;
}

describe('executor liveness', () => {
  it('register → start → ACTIVE; kill -9 → EXPIRED within the ping deadline + 1 s; start again → ACTIVE, same id', async () => {
    const name = uniqueName('exec-k9');
    const ex = await startExecutor({ controller: controller.address, name, groups: ['web'], pingIntervalSeconds: PING_INTERVAL_S });

    const listed = await listExecutorsCli(controller.address);
    const row = listed.find((r) => r.name === name);
    expect(row, JSON.stringify(listed)).toMatchObject({ name, id: ex.id, groups: ['web'], state: 'ACTIVE' });

    // Steady state: it stays ACTIVE for longer than the deadline (no flapping).
    const steady = pollExecutors(controller.address, 100);
    await new Promise((r) => setTimeout(r, (PING_DEADLINE_S + 1) * 1000));
    expect(history(await steady.stop(), name)).toEqual(['ACTIVE']);

    const poller = pollExecutors(controller.address, 100);
    try {
      const killedAt = Date.now();
      expect(await ex.kill9()).toBe(137);
      const expired = await poller.waitFor((rows) => stateOf(rows, name) === 'EXPIRED', (PING_DEADLINE_S + 5) * 1000);
      const afterMs = expired.wallMs - killedAt;
      expect(afterMs, `EXPIRED first seen ${afterMs} ms after the kill`).toBeLessThanOrEqual((PING_DEADLINE_S + 1) * 1000);
      expect(history(poller.observations, name)).toEqual(['ACTIVE', 'EXPIRED']);
    } finally {
      await poller.stop();
    }
    expect(stateOf(await listExecutorsCli(controller.address), name)).toBe('EXPIRED');
    expect(controller.logs()).toMatch(new RegExp(`executor expired: no heartbeat within the ping deadline id=${ex.id} name=${name}`));

    await ex.restart();
    const again = (await listExecutorsCli(controller.address)).filter((r) => r.name === name);
    expect(again).toHaveLength(1);
    expect(again[0]).toMatchObject({ id: ex.id, state: 'ACTIVE', groups: ['web'] });

    expect(await ex.stop()).toBe(0);
  });

  it('SIGTERM → STOPPED (not EXPIRED), exit code 0', async () => {
    const name = uniqueName('exec-term');
    const ex = await startExecutor({ controller: controller.address, name, pingIntervalSeconds: PING_INTERVAL_S });
    expect(stateOf(await listExecutorsCli(controller.address), name)).toBe('ACTIVE');

    const poller = pollExecutors(controller.address, 100);
    try {
      expect(await ex.stop('SIGTERM')).toBe(0);
      await poller.waitFor((rows) => stateOf(rows, name) === 'STOPPED', 5_000);
      // Past the deadline its lease would have lapsed: it must still be STOPPED, never EXPIRED.
      await new Promise((r) => setTimeout(r, (PING_DEADLINE_S + 1) * 1000));
    } finally {
      await poller.stop();
    }
    const h = history(poller.observations, name);
    expect(h).not.toContain('EXPIRED');
    expect(h[h.length - 1]).toBe('STOPPED');
    expect(stateOf(await listExecutorsCli(controller.address), name)).toBe('STOPPED');
    expect(ex.logs()).toMatch(/reported STOPPED to the controller/);
    expect(controller.logs()).not.toMatch(new RegExp(`executor expired.*id=${ex.id}`));
  });
});
