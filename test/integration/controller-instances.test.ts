// A controller holds controllers/<instance> on an etcd lease. When etcd is gone long enough for
// the lease to be lost, the controller asks for a new one in one loop, waiting longer after each
// refusal, and holds one again once etcd is back. (Each refused lease used to start two more
// loops: an etcd outage made thousands of attempts a second.)

import { setTimeout as delay } from 'node:timers/promises';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ControllerInstances } from '../../src/controller/instances.js';
import { Kv } from '../../src/store/kv.js';
import { createLogger } from '../../src/util/log.js';
import { eventually } from '../harness/eventually.js';
import { startServers, uniqueName, type TestServers } from '../harness/servers.js';

let servers: TestServers;

beforeAll(async () => {
  servers = await startServers();
});

afterAll(async () => {
  await servers?.stop();
});

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
      await eventually('the lease is lost', async () => lines.some((l) => l.includes('lost the controller liveness lease')), { timeoutMs: 40_000, everyMs: 200 });
      await delay(15_000);
      const refused = lines.filter((l) => l.includes('could not take a controller liveness lease')).length;
      // Waits of 1, 2, 4 and 8 s: at most five attempts in 15 s (one loop).
      expect(refused).toBeGreaterThan(0);
      expect(refused).toBeLessThanOrEqual(6);
      expect(lines.filter((l) => l.includes('lost the controller liveness lease'))).toHaveLength(1);

      await etcd.restart();
      await eventually('this instance holds a lease again', async () => (await instances.live().catch(() => new Set<string>())).has(instances.id), { timeoutMs: 30_000, everyMs: 200 });
    } finally {
      await instances.stop();
      kv.close();
    }
  }, 120_000);
});
