// Kv against a real etcd: paged reads of a large prefix return every key once, in order; an
// etcd that stops answering is an UnavailableError that says so, also once etcd3's breaker opens.

import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { join } from 'node:path';
import { startEtcd } from '../../src/embedded/index.js';
import { UnavailableError } from '../../src/errors.js';
import { Kv } from '../../src/store/kv.js';
import { cleanupProcesses, tempDir } from '../harness/processes.js';
import { startServers, uniqueName, type TestServers } from '../harness/servers.js';

let servers: TestServers;
let kv: Kv;

beforeAll(async () => {
  servers = await startServers();
  kv = new Kv({ endpoints: [servers.etcdEndpoint], prefix: `/${uniqueName('kv')}/` });
});

afterAll(async () => {
  kv?.close();
  await servers?.stop();
  await cleanupProcesses();
});

describe('rangeAll', () => {
  it('reads a prefix in pages: every key once, in order, nothing from outside the prefix', async () => {
    const prefix = kv.key('many', '');
    const keys = Array.from({ length: 1203 }, (_, i) => `${prefix}${String(i).padStart(5, '0')}`);
    for (let i = 0; i < keys.length; i += 100) await Promise.all(keys.slice(i, i + 100).map((k) => kv.client.put(k).value('x').exec()));
    await kv.client.put(kv.key('many-not', 'x')).value('outside').exec();
    const { kvs } = await kv.rangeAll(prefix, 100);
    expect(kvs.map((k) => k.key.toString())).toEqual(keys);
  });
});

describe('an etcd that stops answering', () => {
  it('is one UnavailableError that names it, before and after the client\'s circuit breaker opens', async () => {
    const etcd = await startEtcd({ dataDir: join(tempDir('grid-kv-down-'), 'etcd') });
    const down = new Kv({ endpoints: [etcd.endpoint], prefix: '/down/', dialTimeoutMs: 500 });
    try {
      await down.put(down.key('a'), 1);
      await etcd.stop();
      const errors: unknown[] = [];
      for (let i = 0; i < 6; i++) errors.push(await down.get(down.key('a')).catch((e: unknown) => e));
      // Several failures in a row open etcd3's breaker; its refusals must read the same to a user.
      expect(errors.some((e) => (e as Error).cause && ((e as Error).cause as { isBrokenCircuitError?: boolean }).isBrokenCircuitError)).toBe(true);
      for (const e of errors) {
        expect(e).toBeInstanceOf(UnavailableError);
        expect((e as Error).message).toMatch(new RegExp(`^etcd at ${etcd.endpoint.replace(/[.:/]/g, '\\$&')} is not answering; retry \\(`));
        expect((e as Error).message).not.toMatch(/\n/);
      }
    } finally {
      down.close();
    }
  }, 60_000);
});
