// A controller holds controllers/<instance> on an etcd lease. When etcd is gone long enough for
// the lease to be lost, the controller asks for a new one in one loop, waiting longer after each
// refusal, and holds one again once etcd is back. (Each refused lease used to start two more
// loops: an etcd outage made thousands of attempts a second.)

import { setTimeout as delay } from 'node:timers/promises';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ControllerInstances } from '../../src/controller/instances.js';
import { Kv } from '../../src/store/kv.js';
import { createLogger } from '../../src/util/log.js';
import { startServers, uniqueName, type TestServers } from '../harness/servers.js';

let servers: TestServers;

beforeAll(async () => {
  servers = await startServers();
});

afterAll(async () => {
  await servers?.stop();
});

async function until(what: string, ok: () => boolean | Promise<boolean>, ms: number): Promise<void> {
  const end = Date.now() + ms;
  while (!(await Promise.resolve().then(ok).catch(() => false))) {
    if (Date.now() > end) throw new Error(`not within ${ms} ms: ${what}`);
    await delay(200);
  }
}

describe('controller instances', () => {
  it('asks for a new lease with growing waits while etcd is down, and holds one again once it is back', async () => {
    const lines: string[] = [];
    const log = createLogger({ level: 'warn', name: 'test', write: (l) => void lines.push(l) });
    const kv = new Kv({ endpoints: [servers.etcdEndpoint], prefix: `/${uniqueName('instances')}/` });
    const instances = new ControllerInstances(kv, log);
    try {
      await instances.start();
      expect(await instances.live()).toContain(instances.id);

      const etcd = servers.nodes.etcd[0]!;
      await etcd.stop();
      await until('the lease is lost', () => lines.some((l) => l.includes('lost the controller liveness lease')), 40_000);
      await delay(15_000);
      const refused = lines.filter((l) => l.includes('could not take a controller liveness lease')).length;
      // Waits of 1, 2, 4 and 8 s: at most five attempts in 15 s (one loop).
      expect(refused).toBeGreaterThan(0);
      expect(refused).toBeLessThanOrEqual(6);
      expect(lines.filter((l) => l.includes('lost the controller liveness lease'))).toHaveLength(1);

      await etcd.restart();
      await until('this instance holds a lease again', async () => (await instances.live()).has(instances.id), 30_000);
    } finally {
      await instances.stop();
      kv.close();
    }
  }, 120_000);
});
